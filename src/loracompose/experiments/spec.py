"""Experiment specs: a YAML file naming the grid, checked field by field.

    name: demo                       # the experiment's name in the results database
    workdir: runs/experiments        # cache/, results.sqlite, logs/, report/ (shared by experiments)
    models: [smollm2-135m]           # packaged names, local HF directories or hub ids
    tasks:                           # built-in task sets (see tasksets.py)
      - set: sentiment
        targets: [positive]          # default: every label of the set
        datasets: [imdb, rotten_tomatoes, tweets]
        conditions: [base, single, combined, weights-average, output-sum]
    prompts: [pplm, heldout]         # pplm | heldout (each of a task's datasets' test openings) | heldout:NAME | a file
    heldout: {prompts: 15, words: 4} # held-out prompt sets: how many openings, how many words each
    seeds: [0]
    samples: 2                       # continuations per prompt and seed
    train: {steps: 30, ...}          # TrainConfig fields (not model, datasets, label)
    generate: {max_new_tokens: 40, ...}
    compose: {density: 0.5, ...}     # weight merges (ties, dare-*)
    learn_weights: {steps: 40, examples: 64}
    evaluate: {reference: none, resamples: 2000, judges: {...}}

Every error is one `LoraComposeError` that names the field by its path
(`tasks[0].conditions[2]`) and what is accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path

from loracompose.errors import LoraComposeError

TOP_LEVEL = {"name", "workdir", "models", "tasks", "prompts", "heldout", "max_prompts", "seeds", "samples",
             "train", "generate", "compose", "learn_weights", "evaluate", "description"}
REQUIRED = ("name", "models", "tasks")
GENERATE_KEYS = {"max_new_tokens", "top_k", "top_p", "temperature", "batch_size", "template", "quantize"}
COMPOSE_KEYS = {"density", "merge_seed", "svd_rank"}
LEARN_KEYS = {"steps", "learning_rate", "l1", "examples"}
EVALUATE_KEYS = {"reference", "resamples", "judge_input", "batch_size", "judges"}
TRAIN_EXCLUDED = {"model", "datasets", "label"}  # set by the grid, not the spec
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def _fail(path: str, message: str) -> LoraComposeError:
    return LoraComposeError(f"spec field '{path}': {message}")


def _mapping(value, path: str, allowed: set[str]) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(path, f"must be a mapping, got {type(value).__name__}")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise _fail(f"{path}.{unknown[0]}" if path else unknown[0],
                    f"unknown field; accepted: {', '.join(sorted(allowed))}")
    return value


def _str_list(value, path: str, *, allow_empty: bool = False) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _fail(path, "must be a list of names (strings)")
    if not value and not allow_empty:
        raise _fail(path, "must name at least one entry")
    return list(value)


def _int(value, path: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(path, f"must be a whole number >= {minimum}, got {value!r}")
    return value


@dataclass
class TaskSpec:
    set: str  # built-in task set
    targets: list[str]  # labels (sentiment, topic) or "label+label" pairs (multi)
    datasets: list[str]  # datasets whose modules are trained (multi: sentiment datasets; topic: bbc)
    conditions: list[str]  # condition names, already expanded (`single` → `single:<dataset>`)
    mixing: str = "balanced"  # combined training: concat | balanced | temperature:T


@dataclass
class ExperimentSpec:
    name: str
    models: list[str]
    tasks: list[TaskSpec]
    prompts: list[str] = field(default_factory=lambda: ["pplm"])
    workdir: Path = Path("runs/experiments")
    heldout_prompts: int = 15
    heldout_words: int = 4
    max_prompts: int | None = None  # first N prompts of each set (None: all)
    seeds: list[int] = field(default_factory=lambda: [0])
    samples: int = 2
    train: dict = field(default_factory=dict)
    generate: dict = field(default_factory=dict)
    compose: dict = field(default_factory=dict)
    learn_weights: dict = field(default_factory=dict)
    evaluate: dict = field(default_factory=dict)
    source: str = ""  # the spec file's text, kept with the run

    @property
    def db_path(self) -> Path:
        return self.workdir / "results.sqlite"


def _check_model(spec: str, path: str) -> None:
    from loracompose.models import PACKAGED_MODELS

    if spec in PACKAGED_MODELS:
        return
    local = Path(spec).expanduser()
    if local.exists():
        if not (local / "config.json").is_file():
            raise _fail(path, f"'{spec}' is a path without config.json; give a Hugging Face model directory")
        return
    if spec.count("/") == 1 and not spec.startswith((".", "/", "~")):
        return  # a hub id; fetched (or refused, offline) when first loaded
    raise _fail(path, f"unknown model '{spec}'; accepted: a packaged model ({', '.join(PACKAGED_MODELS)}), "
                      "a local Hugging Face model directory, or a hub id org/name")


def _check_train(values: dict, path: str) -> dict:
    from loracompose.train import TrainConfig

    allowed = {f.name for f in fields(TrainConfig)} - TRAIN_EXCLUDED
    values = dict(_mapping(values, path, allowed))
    if "quantize" in values and values["quantize"] in ("none", None):
        values["quantize"] = None
    try:  # TrainConfig checks its own values
        TrainConfig(model="m", datasets=["d"], label="l", **values)
    except LoraComposeError as exc:
        raise _fail(path, str(exc)) from None
    except TypeError as exc:
        raise _fail(path, str(exc)) from None
    return values


def _check_generate(values: dict, path: str) -> dict:
    from loracompose.decoding import SamplingConfig

    values = dict(_mapping(values, path, GENERATE_KEYS))
    values.setdefault("template", "plain")
    values.setdefault("quantize", "none")
    if values["quantize"] not in ("none", "nf4"):
        raise _fail(f"{path}.quantize", f"must be none or nf4, got {values['quantize']!r}")
    sampling = {k: v for k, v in values.items() if k not in ("template", "quantize")}
    try:
        SamplingConfig(**sampling)
    except (LoraComposeError, TypeError) as exc:
        raise _fail(path, str(exc)) from None
    return values


def _number(values: dict, path: str, name: str, low: float, high: float | None = None, whole: bool = False):
    value = values[name]
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= low and \
        (high is None or value <= high) and (not whole or isinstance(value, int))
    if not ok:
        kind = "a whole number" if whole else "a number"
        raise _fail(f"{path}.{name}", f"must be {kind} >= {low}{f' and <= {high}' if high is not None else ''}, "
                                      f"got {value!r}")


def _check_compose(values, path: str) -> dict:
    values = dict(_mapping(values, path, COMPOSE_KEYS))
    for name, low, high, whole in (("density", 0.0, 1.0, False), ("merge_seed", 0, None, True),
                                   ("svd_rank", 1, None, True)):
        if name in values:
            _number(values, path, name, low, high, whole)
    return values


def _check_learn(values, path: str) -> dict:
    values = dict(_mapping(values, path, LEARN_KEYS))
    for name, low, whole in (("steps", 1, True), ("examples", 8, True), ("learning_rate", 0.0, False),
                             ("l1", 0.0, False)):
        if name in values:
            _number(values, path, name, low, None, whole)
    return values


def _check_evaluate(values: dict, path: str) -> dict:
    from loracompose.evaluate.panel import JudgeSettings

    values = dict(_mapping(values, path, EVALUATE_KEYS))
    values.setdefault("reference", "gemma3-270m")
    if isinstance(values["reference"], str) and values["reference"].lower() == "none":
        values["reference"] = None
    if values["reference"] is not None:
        _check_model(values["reference"], f"{path}.reference")
    values["resamples"] = _int(values.get("resamples", 2000), f"{path}.resamples", 100)
    values["batch_size"] = _int(values.get("batch_size", 8), f"{path}.batch_size", 1)
    values.setdefault("judge_input", "full")
    if values["judge_input"] not in ("full", "continuation"):
        raise _fail(f"{path}.judge_input", f"must be full or continuation, got {values['judge_input']!r}")
    judges = dict(_mapping(values.get("judges"), f"{path}.judges",
                           {f.name for f in fields(JudgeSettings)}))
    try:
        JudgeSettings(**judges)
    except LoraComposeError as exc:
        raise _fail(f"{path}.judges", str(exc)) from None
    values["judges"] = judges
    return values


def _check_prompts(value, path: str, tasks: list[TaskSpec]) -> list[str]:
    from loracompose.experiments.prompts import check_prompt_set

    sets = []
    for i, entry in enumerate(_str_list(value, path)):
        if entry == "heldout":  # each task: one held-out set per dataset of that task (see task_prompt_sets)
            sets.append(entry)
            continue
        check_prompt_set(entry, f"{path}[{i}]")
        sets.append(entry)
    return list(dict.fromkeys(sets))


def task_prompt_sets(spec: "ExperimentSpec", task: TaskSpec) -> list[str]:
    """The task's prompt sets: `heldout` becomes `heldout:<d>` for each of the task's own datasets."""
    sets = []
    for entry in spec.prompts:
        sets += [f"heldout:{d}" for d in task.datasets] if entry == "heldout" else [entry]
    return list(dict.fromkeys(sets))


def parse_spec(data, source: str = "") -> ExperimentSpec:
    """Validate a spec's parsed YAML and return it with defaults filled in."""
    from loracompose.experiments.tasksets import check_task

    data = _mapping(data, "", TOP_LEVEL)
    for name in REQUIRED:
        if name not in data or data[name] in (None, "", []):
            raise _fail(name, "missing; a spec needs name, models and tasks")
    if not isinstance(data["name"], str) or not _NAME.match(data["name"]):
        raise _fail("name", f"must be letters, digits, '.', '_' or '-', got {data['name']!r}")
    models = _str_list(data["models"], "models")
    for i, model in enumerate(models):
        _check_model(model, f"models[{i}]")
    if not isinstance(data["tasks"], list) or not data["tasks"]:
        raise _fail("tasks", "must be a list of task entries, e.g. [{set: sentiment}]")
    tasks = [check_task(entry, f"tasks[{i}]") for i, entry in enumerate(data["tasks"])]
    heldout = _mapping(data.get("heldout"), "heldout", {"prompts", "words"})
    seeds = data.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool)
                                                          for s in seeds):
        raise _fail("seeds", f"must be a non-empty list of whole numbers, got {seeds!r}")
    spec = ExperimentSpec(
        name=data["name"], models=models, tasks=tasks,
        prompts=_check_prompts(data.get("prompts", ["pplm"]), "prompts", tasks),
        workdir=Path(str(data.get("workdir", "runs/experiments"))).expanduser(),
        heldout_prompts=_int(heldout.get("prompts", 15), "heldout.prompts", 1),
        heldout_words=_int(heldout.get("words", 4), "heldout.words", 1),
        max_prompts=None if data.get("max_prompts") is None else _int(data["max_prompts"], "max_prompts", 1),
        seeds=list(dict.fromkeys(seeds)),
        samples=_int(data.get("samples", 2), "samples", 1),
        train=_check_train(data.get("train"), "train"),
        generate=_check_generate(data.get("generate"), "generate"),
        compose=_check_compose(data.get("compose"), "compose"),
        learn_weights=_check_learn(data.get("learn_weights"), "learn_weights"),
        evaluate=_check_evaluate(data.get("evaluate"), "evaluate"),
        source=source,
    )
    return spec


def load_spec(path: str | Path) -> ExperimentSpec:
    try:
        import yaml
    except ImportError:
        raise LoraComposeError("experiment specs need PyYAML: pip install 'loracompose[experiments]'") from None

    path = Path(path)
    if not path.is_file():
        raise LoraComposeError(f"experiment spec '{path}' does not exist (a YAML file, e.g. configs/study-small.yaml)")
    text = path.read_text()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise LoraComposeError(f"experiment spec '{path}' is not valid YAML: {exc}") from None
    return parse_spec(data, text)
