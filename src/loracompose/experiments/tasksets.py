"""Built-in task sets: which modules a task trains and which conditions it compares.

    set        targets                      conditions
    sentiment  positive, negative           base; single:<dataset> (one module per dataset); combined (one
                                            module on all datasets); weights-average, output-sum, delta-sum,
                                            ties, logit-sum of the single-dataset modules
    topic      the five BBC topics          base; single:bbc
    multi      <sentiment>+<topic> pairs    base; output-sum, weights-average, logit-sum and learn-weights of
                                            the sentiment module and the topic module; combined (one module
                                            trained on both label sets together)

A module is named as `loracompose train` names it: `label@dataset`, or
`label@d1+d2+d3` for combined training; the multi set's combined module is
`sentiment+topic@sentdata+topicdata`. All weights are 1 (weights-average
normalises them to the mean).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from loracompose.data import BUILTIN_DATASETS, Mixing
from loracompose.errors import LoraComposeError
from loracompose.evaluate.attributes import ATTRIBUTES
from loracompose.experiments.validate import fail, integer, mapping, str_list
from loracompose.modules import module_name

SETS = {
    "sentiment": {"attributes": ("sentiment",), "datasets": ("imdb", "rotten_tomatoes", "tweets"),
                  "conditions": ("base", "single", "combined", "weights-average", "output-sum", "delta-sum",
                                 "ties", "logit-sum")},
    "topic": {"attributes": ("topic",), "datasets": ("bbc",), "conditions": ("base", "single")},
    "multi": {"attributes": ("sentiment", "topic"), "datasets": ("imdb", "bbc"),
              "conditions": ("base", "output-sum", "weights-average", "combined", "logit-sum", "learn-weights")},
}
COMPOSED = ("weights-average", "output-sum", "delta-sum", "ties", "logit-sum", "learn-weights")
TASK_KEYS = {"set", "targets", "datasets", "conditions", "mixing", "samples"}


@dataclass
class TaskSpec:
    """One `tasks[i]` entry of a spec, checked and with its defaults expanded."""

    set: str  # built-in task set
    targets: list[str]  # labels (sentiment, topic) or "label+label" pairs (multi)
    datasets: list[str]  # datasets whose modules are trained (multi: sentiment datasets; topic: bbc)
    conditions: list[str]  # condition names, already expanded (`single` → `single:<dataset>`)
    mixing: str = "balanced"  # combined training: concat | balanced | temperature:T
    samples: int | None = None  # continuations per prompt and seed for this task (None: the spec's `samples`)


@dataclass(frozen=True)
class ModuleRecipe:
    """A module to train: a label on one or more datasets (`parts` for the multi set's derived data)."""

    name: str
    label: str
    datasets: tuple[str, ...]
    mixing: str = "concat"
    parts: tuple[tuple[str, str], ...] = ()  # multi combined: (dataset, label) sources of one derived file


@dataclass(frozen=True)
class Condition:
    name: str
    method: str | None  # None: the base model alone; "learn-weights": output-sum with learned weights
    modules: tuple[str, ...] = ()  # module names, each with weight 1


@dataclass
class Cell:
    """One task × target: its modules and conditions, and what the judges should see."""

    task: str
    target: str  # "positive" or "positive+sport"
    targets: dict[str, str]  # attribute → label, for the judges
    modules: dict[str, ModuleRecipe] = field(default_factory=dict)
    conditions: list[Condition] = field(default_factory=list)


def _attribute_datasets(attribute: str) -> list[str]:
    return [name for name, d in BUILTIN_DATASETS.items() if d.attribute == attribute]


def _labels(attribute: str) -> tuple[str, ...]:
    return ATTRIBUTES[attribute].labels


def _all_targets(set_name: str) -> list[str]:
    if set_name == "multi":
        return [f"{s}+{t}" for s in _labels("sentiment") for t in _labels("topic")]
    return list(_labels(SETS[set_name]["attributes"][0]))


def check_task(entry, path: str) -> TaskSpec:
    """Validate one `tasks[i]` entry; expand its defaults and `single`."""
    if isinstance(entry, str):
        entry = {"set": entry}
    entry = mapping(entry, path, TASK_KEYS)
    if "set" not in entry:
        raise fail(f"{path}.set", f"missing; accepted task sets: {', '.join(SETS)}")
    set_name = entry["set"]
    if set_name not in SETS:
        raise fail(f"{path}.set", f"unknown task set {set_name!r}; accepted: {', '.join(SETS)}")
    definition = SETS[set_name]
    datasets = str_list(entry.get("datasets", list(definition["datasets"])), f"{path}.datasets")
    allowed = [d for a in definition["attributes"] for d in _attribute_datasets(a)]
    for i, d in enumerate(datasets):
        if d not in allowed:
            raise fail(f"{path}.datasets[{i}]", f"unknown dataset {d!r} for task set {set_name}; "
                                                 f"accepted: {', '.join(allowed)}")
    for attribute in definition["attributes"]:
        if not any(BUILTIN_DATASETS[d].attribute == attribute for d in datasets):
            raise fail(f"{path}.datasets", f"task set {set_name} needs a {attribute} dataset; "
                                            f"accepted: {', '.join(_attribute_datasets(attribute))}")
    targets = str_list(entry.get("targets", _all_targets(set_name)), f"{path}.targets")
    for i, target in enumerate(targets):
        if target not in _all_targets(set_name):
            raise fail(f"{path}.targets[{i}]", f"unknown target {target!r} for task set {set_name}; "
                                                f"accepted: {', '.join(_all_targets(set_name))}")
    conditions = []
    singles = [f"single:{d}" for d in datasets]
    for i, name in enumerate(str_list(entry.get("conditions", list(definition["conditions"])),
                                       f"{path}.conditions")):
        if name == "single" and "single" in definition["conditions"]:
            conditions += singles
        elif name in definition["conditions"] and name != "single" or name in singles:
            conditions.append(name)
        else:
            accepted = [c for c in definition["conditions"]] + (singles if "single" in definition["conditions"] else [])
            raise fail(f"{path}.conditions[{i}]", f"unknown condition {name!r} for task set {set_name}; "
                                                   f"accepted: {', '.join(accepted)}")
    mixing = entry.get("mixing", "balanced")
    try:
        Mixing.parse(mixing)
    except LoraComposeError as exc:
        raise fail(f"{path}.mixing", str(exc)) from None
    samples = None if entry.get("samples") is None else integer(entry["samples"], f"{path}.samples", 1, 10_000)
    return TaskSpec(set_name, targets, datasets, list(dict.fromkeys(conditions)), mixing, samples)


def cells(task: TaskSpec) -> list[Cell]:
    """The task's cells, one per target, with their modules and conditions."""
    mixing = task.mixing
    out = []
    for target in task.targets:
        if task.set == "multi":
            sentiment, topic = target.split("+")
            by_attr = {a: [d for d in task.datasets if BUILTIN_DATASETS[d].attribute == a]
                       for a in ("sentiment", "topic")}
            members = [ModuleRecipe(module_name(sentiment, by_attr["sentiment"]), sentiment,
                                    tuple(by_attr["sentiment"]), mixing),
                       ModuleRecipe(module_name(topic, by_attr["topic"]), topic, tuple(by_attr["topic"]), mixing)]
            combined = ModuleRecipe(module_name(target, by_attr["sentiment"] + by_attr["topic"]), target,
                                    tuple(task.datasets), "balanced",
                                    parts=tuple([(d, sentiment) for d in by_attr["sentiment"]]
                                                + [(d, topic) for d in by_attr["topic"]]))
            cell = Cell(task.set, target, {"sentiment": sentiment, "topic": topic})
        else:
            attribute = SETS[task.set]["attributes"][0]
            members = [ModuleRecipe(module_name(target, [d]), target, (d,)) for d in task.datasets]
            combined = ModuleRecipe(module_name(target, task.datasets), target, tuple(task.datasets), mixing)
            cell = Cell(task.set, target, {attribute: target})
        for name in task.conditions:
            if name == "base":
                cell.conditions.append(Condition("base", None))
                continue
            if name.startswith("single:"):
                recipe = next(m for m in members if m.datasets == (name.split(":", 1)[1],))
                used = [recipe]
                condition = Condition(name, "output-sum", (recipe.name,))
            elif name == "combined":
                used = [combined]
                condition = Condition(name, "output-sum", (combined.name,))
            else:
                used = members
                condition = Condition(name, name, tuple(m.name for m in members))
            cell.modules.update({m.name: m for m in used})
            cell.conditions.append(condition)
        out.append(cell)
    return out
