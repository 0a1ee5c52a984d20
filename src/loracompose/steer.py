"""Attribute-level steering: `sentiment=positive,topic=sport` → a composition of modules.

A user names attribute values, not modules. Each value resolves to the modules
whose metadata (`loracompose.json`: attribute, label) carry it, and a strategy
turns them into a composition the planner already runs:

    strategy         method       composition for target t at strength S
    contrast         output-sum   Σ_{e ∈ experts(t)} S·e  −  Σ_{a ∈ anti(t)} λ·S·a
    expert           output-sum   Σ_{e ∈ experts(t)} S·e
    logit-contrast   logit-sum    log p ∝ log p_base + Σ_e S·log p_e − Σ_a λ·S·log p_a   (DExperts)

experts(t): the modules of t's attribute labelled t's value. anti(t): for a
*two-valued* attribute (sentiment: negative/positive), the modules of the other
value; for an attribute with more values (topic's five) none, so `contrast` is
`expert` there. Several targets (sentiment and topic) add up.

Why subtract: a module trained on one label's texts learns the label *and* its
corpus (review phrasing). The opposite label's module learnt the same corpus, so
positive − negative keeps what tells them apart and cancels what they share —
DExperts' expert/anti-expert contrast, here inside every layer at the cost of one
forward pass. Measured (README "Steering"): on SmolLM2 with the starter modules,
contrast at S = 2 beats the expert alone in both directions, and logit-contrast
(DExperts' own form) at S = 1; for a topic, subtracting the mean of the four
other topics' modules (the same idea for k > 2 values) lost to the expert alone
(0.43 vs 0.71 judged sport at S = 1, 0.82 vs 0.88 at S = 2), so it is not done.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from loracompose.errors import LoraComposeError
from loracompose.evaluate.attributes import ATTRIBUTES, parse_pairs
from loracompose.modules import ModuleInfo

STRENGTH_RANGE = (0.0, 4.0)  # exclusive lower bound, inclusive upper bound
DEFAULT_STRENGTH = 2.0  # measured: S = 1 leaves the negative direction and the topics short (README "Steering")


@dataclass(frozen=True)
class SteerStrategy:
    name: str
    method: str  # composition method run for it
    anti: float  # λ: anti-expert weight per unit of strength (0 = no anti-experts)
    base: float | None  # logit-sum: the bare base member's λ (None for output-level strategies)
    summary: str


STRATEGIES: dict[str, SteerStrategy] = {
    s.name: s
    for s in [
        SteerStrategy("contrast", "output-sum", 1.0, None,
                      "experts minus the opposite label's modules, summed at every layer"),
        SteerStrategy("expert", "output-sum", 0.0, None, "the target label's modules alone"),
        SteerStrategy("logit-contrast", "logit-sum", 1.0, 1.0,
                      "DExperts: base log-probabilities plus experts minus anti-experts"),
    ]
}
DEFAULT_STRATEGY = "contrast"


@dataclass(frozen=True)
class Steering:
    """What a steer request resolved to: the composition and method to run, and how."""

    targets: dict[str, str]  # attribute → value
    strength: dict[str, float]  # attribute → S
    strategy: str
    method: str
    composition: dict[str, float]  # module name → weight (logit-sum may hold `base`)
    experts: dict[str, list[str]]  # attribute → modules pulled toward
    anti_experts: dict[str, list[str]]  # attribute → modules pushed away from

    def record(self) -> dict:
        return asdict(self)


def parse_steer(text: str) -> dict[str, str]:
    """`"sentiment=positive,topic=sport"` → {"sentiment": "positive", "topic": "sport"}."""
    targets = parse_pairs(text, what="steer target", value="value", repeated="steered")
    if not targets:
        raise LoraComposeError("--steer needs attribute=value pairs, e.g. sentiment=positive,topic=sport")
    return targets


def attribute_labels(modules: dict[str, ModuleInfo]) -> dict[str, dict[str, list[str]]]:
    """attribute → label → module names, from the modules' metadata (modules without both are skipped)."""
    table: dict[str, dict[str, list[str]]] = {}
    for name, info in modules.items():
        if info.attribute and info.label:
            table.setdefault(info.attribute, {}).setdefault(info.label, []).append(name)
    return table


def _describe(table: dict[str, dict[str, list[str]]]) -> str:
    return "; ".join(f"{a}: {', '.join(sorted(labels))}" for a, labels in sorted(table.items())) or "none"


def _check_strength(strength) -> float:
    low, high = STRENGTH_RANGE
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not low < strength <= high:
        raise LoraComposeError(f"--strength {strength!r} is out of range; accepted: above {low} and at most {high}")
    return float(strength)


def resolve_steering(modules: dict[str, ModuleInfo], targets: dict[str, str],
                     strength: float | dict[str, float] = DEFAULT_STRENGTH, strategy: str = DEFAULT_STRATEGY) -> Steering:
    """The composition that steers toward `targets` with the modules available.

    `strength`: one S for every target, or {attribute: S} (attributes not named get the default).
    """
    if strategy not in STRATEGIES:
        raise LoraComposeError(f"unknown steer strategy '{strategy}'; accepted: {', '.join(STRATEGIES)}")
    if isinstance(strength, dict):
        unknown = sorted(set(strength) - set(targets))
        if unknown:
            raise LoraComposeError(f"strength given for '{unknown[0]}', which is not steered; steered: "
                                   f"{', '.join(targets)}")
        strengths = {a: _check_strength(strength.get(a, DEFAULT_STRENGTH)) for a in targets}
    else:
        strengths = dict.fromkeys(targets, _check_strength(strength))
    plan = STRATEGIES[strategy]
    table = attribute_labels(modules)
    composition: dict[str, float] = {"base": plan.base} if plan.base is not None else {}
    experts, anti_experts = {}, {}
    for attribute, value in targets.items():
        if attribute not in table:
            raise LoraComposeError(f"no module steers attribute '{attribute}'; attributes and values with modules: "
                                   f"{_describe(table)}")
        labels = table[attribute]
        if value not in labels:
            raise LoraComposeError(f"no module steers {attribute}={value}; values of '{attribute}' with modules: "
                                   f"{', '.join(sorted(labels))}")
        experts[attribute] = sorted(labels[value])
        others = [label for label in labels if label != value]
        two_valued = len(others) == 1 and len(ATTRIBUTES[attribute].labels if attribute in ATTRIBUTES else labels) == 2
        anti_experts[attribute] = sorted(labels[others[0]]) if plan.anti and two_valued else []
        for name in experts[attribute]:
            composition[name] = composition.get(name, 0.0) + strengths[attribute]
        for name in anti_experts[attribute]:
            composition[name] = composition.get(name, 0.0) - plan.anti * strengths[attribute]
    return Steering(dict(targets), strengths, strategy, plan.method, composition, experts, anti_experts)


STARTER_ROOT = Path(__file__).resolve().parent / "starter"


def starter_modules_dir(model_spec: str) -> Path:
    """The starter modules shipped for a packaged base (configs/starter.yaml built them)."""
    directory = STARTER_ROOT / model_spec
    if not any(directory.glob("*/loracompose.json")):
        shipped = sorted(p.name for p in STARTER_ROOT.iterdir() if p.is_dir() and any(p.glob("*/loracompose.json")))
        raise LoraComposeError(f"no starter modules ship for base '{model_spec}' (starter modules exist for: "
                               f"{', '.join(shipped) or 'none'}); pass --modules DIR with modules trained on it")
    return directory
