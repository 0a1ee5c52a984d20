"""The conditions of a side-by-side run: each method across its strength sweep, both directions.

    base                 no steering (one file, judged toward each direction)
    prompt               an instruction through the chat template (instruct models)
    actadd L c           activation addition at layer L, scale c (× the median residual norm)
    dexperts S           the `logit-contrast` steer strategy: log p_base + S·(log p_expert − log p_anti)
    arithmetic S         model arithmetic: log p_plain + S·(log p_instructed − log p_plain)
    contrast S           the default steer strategy: S·expert − S·anti-expert, summed at every layer
    expert S             the target's module alone at weight S
"""

from __future__ import annotations

from dataclasses import dataclass

from loracompose.baselines import actadd, arithmetic
from loracompose.errors import LoraComposeError
from loracompose.steer import STRENGTH_RANGE

METHODS = ("base", "prompt", "actadd", "dexperts", "arithmetic", "contrast", "expert")
DIRECTIONS = ("positive", "negative")
MODULE_STRATEGY = {"dexperts": "logit-contrast", "contrast": "contrast", "expert": "expert"}


@dataclass(frozen=True)
class Condition:
    method: str
    strength: float | None = None  # S, or c for actadd; None for base and prompt
    layer: int | None = None  # actadd only

    @property
    def name(self) -> str:
        if self.strength is None:
            return self.method
        layer = f"-l{self.layer}" if self.layer is not None else ""
        return f"{self.method}{layer}-{self.strength:g}"

    @property
    def label(self) -> str:
        """How a table names it."""
        if self.method == "actadd":
            return f"activation addition, layer {self.layer}, c = {self.strength:g}"
        names = {"dexperts": "DExperts (logit-contrast)", "arithmetic": "model arithmetic",
                 "contrast": "modules: contrast", "expert": "modules: expert alone"}
        if self.strength is None:
            return {"base": "base (no steering)", "prompt": "prompting (chat instruction)"}[self.method]
        return f"{names[self.method]}, S = {self.strength:g}"


def parse_floats(text: str, what: str) -> tuple[float, ...]:
    """"1,2.5" → (1.0, 2.5); one message naming the flag otherwise."""
    if not text.strip():
        return ()
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise LoraComposeError(f"{what} '{text}' is not a comma-separated list of numbers") from None


@dataclass(frozen=True)
class VersusSettings:
    model: str = "smollm2-135m"
    modules: str | None = None  # modules directory; None: the base's starter modules
    attribute: str = "sentiment"
    prompt_sets: tuple[str, ...] = ("pplm35", "neutral")
    seeds: tuple[int, ...] = (1, 2, 3)
    max_new_tokens: int = 40
    methods: tuple[str, ...] = METHODS
    contrast: tuple[float, ...] = (1.0, 2.0)
    expert: tuple[float, ...] = (2.0,)
    dexperts: tuple[float, ...] = (1.0,)
    arithmetic: tuple[float, ...] = (2.0,)
    actadd_layers: tuple[int, ...] = (22,)  # of SmolLM2's 30; the sweep's first point found it (README)
    actadd_scales: tuple[float, ...] = (0.2, 0.4)
    actadd_texts: int = 200  # texts per label for the steering vector
    reference: str | None = "gemma3-270m"  # perplexity model
    perplexity_seeds: tuple[int, ...] = (1,)  # the seeds whose texts get perplexity (the same in every condition)
    independent: str = "auto"  # the independent judge (evaluate/independent.py)
    resamples: int = 2000
    batch_size: int = 16
    judges: object = None  # JudgeSettings of the sentiment panel (None: the defaults)

    def __post_init__(self):
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise LoraComposeError(f"unknown method '{unknown[0] if unknown else ''}'; accepted: {', '.join(METHODS)}")
        if self.attribute != "sentiment":
            raise LoraComposeError(f"versus compares sentiment steering (both directions); got attribute "
                                   f"'{self.attribute}'; accepted: sentiment")
        low, high = STRENGTH_RANGE
        for name in ("contrast", "expert", "dexperts"):
            for s in getattr(self, name):
                if not low < s <= high:
                    raise LoraComposeError(f"--{name} strength {s:g} is out of range; accepted: above {low:g} and "
                                           f"at most {high:g}")
        for s in self.arithmetic:
            arithmetic.check_strength(s)
        for c in self.actadd_scales:
            actadd.check_scale(c)
        if not self.seeds or not self.prompt_sets:
            raise LoraComposeError("versus needs at least one seed and one prompt set")
        missing = [s for s in self.perplexity_seeds if s not in self.seeds]
        if missing:
            raise LoraComposeError(f"--perplexity-seeds {missing[0]} is not one of --seeds "
                                   f"({', '.join(map(str, self.seeds))})")

    def conditions(self) -> list[Condition]:
        out = []
        for method in self.methods:
            if method in ("base", "prompt"):
                out.append(Condition(method))
            elif method == "actadd":
                out += [Condition("actadd", c, layer) for layer in self.actadd_layers for c in self.actadd_scales]
            else:
                out += [Condition(method, s) for s in getattr(self, method)]
        return out

