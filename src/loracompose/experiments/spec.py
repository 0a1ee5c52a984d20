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

import math
import re
import string
import types
import typing
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
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")  # never '.', '..' or a path: it names files
MAX_SPEC_BYTES = 1_000_000
MAX_DEPTH = 32  # nesting of YAML mappings and lists
MAX_INT = 2**31 - 1  # whole numbers above this are refused (a 400-digit `samples` would only fail later)
MAX_TEXT = 1000  # characters of a string field


def _shown(value, limit: int = 60) -> str:
    """A value as a message may show it: its repr, at most `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fail(path: str, message: str) -> LoraComposeError:
    path, message = path[:200], message if len(message) <= 500 else message[:499] + "…"
    return LoraComposeError(f"spec field '{path}': {message}")


def _mapping(value, path: str, allowed: set[str]) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(path, f"must be a mapping, got {type(value).__name__}")
    unknown = sorted(_shown(k, 60).strip("'") for k in set(value) - allowed)  # keys may be any YAML scalar
    if unknown:
        raise _fail(f"{path}.{unknown[0]}" if path else unknown[0],
                    f"unknown field; accepted: {', '.join(sorted(allowed))}")
    return value


def _str_list(value, path: str, *, allow_empty: bool = False) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v and len(v) <= MAX_TEXT for v in value):
        raise _fail(path, f"must be a list of names (non-empty strings of at most {MAX_TEXT} characters)")
    if len(value) > 1000:
        raise _fail(path, f"has {len(value)} entries; at most 1000 are accepted")
    if not value and not allow_empty:
        raise _fail(path, "must name at least one entry")
    return list(value)


def _int(value, path: str, minimum: int, maximum: int = MAX_INT) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise _fail(path, f"must be a whole number from {minimum} to {maximum}, got {_shown(value)}")
    return value


def _fits(value, expected) -> bool:
    """Whether a YAML value has a dataclass field's annotated type (int, float, str, bool, None, list[str], unions)."""
    if typing.get_origin(expected) in (typing.Union, types.UnionType):
        return any(_fits(value, option) for option in typing.get_args(expected))
    if typing.get_origin(expected) is list:
        (item,) = typing.get_args(expected)
        return isinstance(value, list) and len(value) <= 1000 and all(_fits(v, item) for v in value)
    if expected is type(None):
        return value is None
    if expected is bool:
        return isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool) and abs(value) <= MAX_INT
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and \
            abs(value) <= 1e30
    if expected is str:
        return isinstance(value, str) and len(value) <= MAX_TEXT
    return True  # a type this check does not know: the dataclass checks it


def _describe(expected) -> str:
    if typing.get_origin(expected) in (typing.Union, types.UnionType):
        return " or ".join(_describe(option) for option in typing.get_args(expected))
    if typing.get_origin(expected) is list:
        return f"a list of {_describe(typing.get_args(expected)[0]).removeprefix('a ')}s"
    return {bool: "true/false", int: "a whole number", float: "a finite number", str: "a string",
            type(None): "null"}.get(expected, getattr(expected, "__name__", str(expected)))


def _check_types(values: dict, cls, path: str) -> None:
    hints = typing.get_type_hints(cls)
    for name, value in values.items():
        if name in hints and not _fits(value, hints[name]):
            raise _fail(f"{path}.{name}", f"must be {_describe(hints[name])}, got {_shown(value)}")


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
    if len(spec) > 500 or "\0" in spec:
        raise _fail(path, f"{_shown(spec)} is not a model name, path or hub id")
    local = Path(spec).expanduser()
    try:
        exists = local.exists()
    except (OSError, ValueError):
        raise _fail(path, f"{_shown(spec)} is not a usable path") from None
    if exists:
        if not (local / "config.json").is_file():
            raise _fail(path, f"{_shown(spec)} is a path without config.json; give a Hugging Face model directory")
        return
    if spec.count("/") == 1 and not spec.startswith((".", "/", "~")):
        return  # a hub id; fetched (or refused, offline) when first loaded
    raise _fail(path, f"unknown model {_shown(spec)}; accepted: a packaged model ({', '.join(PACKAGED_MODELS)}), "
                      "a local Hugging Face model directory, or a hub id org/name")


def _check_train(values: dict, path: str) -> dict:
    from loracompose.train import TrainConfig

    allowed = {f.name for f in fields(TrainConfig)} - TRAIN_EXCLUDED
    values = dict(_mapping(values, path, allowed))
    if "quantize" in values and values["quantize"] in ("none", None):
        values["quantize"] = None
    _check_types(values, TrainConfig, path)
    try:  # TrainConfig checks its own values
        TrainConfig(model="m", datasets=["d"], label="l", **values)
    except (LoraComposeError, TypeError, ValueError) as exc:
        raise _fail(path, str(exc)) from None
    return values


def _check_generate(values: dict, path: str) -> dict:
    from loracompose.decoding import SamplingConfig

    values = dict(_mapping(values, path, GENERATE_KEYS))
    values.setdefault("template", "plain")
    values.setdefault("quantize", "none")
    if values["quantize"] not in ("none", "nf4"):
        raise _fail(f"{path}.quantize", f"must be none or nf4, got {_shown(values['quantize'])}")
    _check_template(values["template"], f"{path}.template")
    sampling = {k: v for k, v in values.items() if k not in ("template", "quantize")}
    _check_types(sampling, SamplingConfig, path)
    try:
        SamplingConfig(**sampling)
    except (LoraComposeError, TypeError, ValueError) as exc:
        raise _fail(path, str(exc)) from None
    return values


def _check_template(template, path: str) -> None:
    """plain, instruct, or a format string whose only fields are {prompt} and {targets}."""
    accepted = "accepted: plain, instruct, or a text with {prompt} (and optionally {targets})"
    if not isinstance(template, str) or len(template) > MAX_TEXT:
        raise _fail(path, f"must be a string; {accepted}, got {_shown(template)}")
    if template in ("plain", "instruct"):
        return
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise _fail(path, f"is not a valid format text ({exc}); {accepted}") from None
    if "prompt" not in names or set(names) - {"prompt", "targets"}:
        raise _fail(path, f"{accepted}; got {_shown(template)}")


def _number(values: dict, path: str, name: str, low: float, high: float | None = None, whole: bool = False):
    value = values[name]
    high = MAX_INT if high is None and whole else high
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and \
        value >= low and (high is None or value <= high) and (not whole or isinstance(value, int))
    if not ok:
        kind = "a whole number" if whole else "a number"
        raise _fail(f"{path}.{name}", f"must be {kind} >= {low}{f' and <= {high}' if high is not None else ''}, "
                                      f"got {_shown(value)}")


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
    if values["reference"] is not None and not isinstance(values["reference"], str):
        raise _fail(f"{path}.reference", f"must be a model name or none, got {_shown(values['reference'])}")
    if values["reference"] is not None:
        _check_model(values["reference"], f"{path}.reference")
    values["resamples"] = _int(values.get("resamples", 2000), f"{path}.resamples", 100, 1_000_000)
    values["batch_size"] = _int(values.get("batch_size", 8), f"{path}.batch_size", 1, 4096)
    values.setdefault("judge_input", "full")
    if values["judge_input"] not in ("full", "continuation"):
        raise _fail(f"{path}.judge_input", f"must be full or continuation, got {_shown(values['judge_input'])}")
    judges = dict(_mapping(values.get("judges"), f"{path}.judges",
                           {f.name for f in fields(JudgeSettings)}))
    _check_types(judges, JudgeSettings, f"{path}.judges")
    try:
        JudgeSettings(**judges)
    except (LoraComposeError, TypeError, ValueError) as exc:
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


def _task_shape(entry, path: str):
    """The types of a task entry's fields, before the task set's own checks look at their values."""
    if isinstance(entry, dict):
        if "set" in entry and not isinstance(entry["set"], str):
            raise _fail(f"{path}.set", f"must be the name of a task set, got {_shown(entry['set'])}")
        if "mixing" in entry and not isinstance(entry["mixing"], str):
            raise _fail(f"{path}.mixing", f"must be concat, balanced or temperature:T, got {_shown(entry['mixing'])}")
        for key in ("targets", "datasets", "conditions"):
            if key in entry:
                _str_list(entry[key], f"{path}.{key}")
    elif not isinstance(entry, str):
        raise _fail(path, f"must be a task set name or a mapping like {{set: sentiment}}, got {_shown(entry)}")
    return entry


def parse_spec(data, source: str = "") -> ExperimentSpec:
    """Validate a spec's parsed YAML and return it with defaults filled in."""
    from loracompose.experiments.tasksets import check_task

    data = _mapping(data, "", TOP_LEVEL)
    for name in REQUIRED:
        if name not in data or data[name] in (None, "", []):
            raise _fail(name, "missing; a spec needs name, models and tasks")
    if not isinstance(data["name"], str) or not _NAME.match(data["name"]):
        raise _fail("name", f"must be 1 to 100 letters, digits, '.', '_' or '-', starting with a letter or digit "
                            f"(it names files), got {_shown(data['name'])}")
    if not isinstance(data.get("description", ""), str):
        raise _fail("description", f"must be a string, got {_shown(data['description'])}")
    workdir = data.get("workdir", "runs/experiments")
    if not isinstance(workdir, str) or not workdir or len(workdir) > MAX_TEXT or "\0" in workdir:
        raise _fail("workdir", f"must be a directory path (a string), got {_shown(workdir)}")
    models = _str_list(data["models"], "models")
    for i, model in enumerate(models):
        _check_model(model, f"models[{i}]")
    if not isinstance(data["tasks"], list) or not data["tasks"]:
        raise _fail("tasks", "must be a list of task entries, e.g. [{set: sentiment}]")
    if len(data["tasks"]) > 100:
        raise _fail("tasks", f"has {len(data['tasks'])} entries; at most 100 are accepted")
    tasks = [check_task(_task_shape(entry, f"tasks[{i}]"), f"tasks[{i}]") for i, entry in enumerate(data["tasks"])]
    heldout = _mapping(data.get("heldout"), "heldout", {"prompts", "words"})
    seeds = data.get("seeds", [0])
    if not isinstance(seeds, list) or not 1 <= len(seeds) <= 1000 or \
            not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= 2**63 - 1 for s in seeds):
        raise _fail("seeds", f"must be a list of 1 to 1000 whole numbers from 0 to 2^63-1, got {_shown(seeds)}")
    spec = ExperimentSpec(
        name=data["name"], models=models, tasks=tasks,
        prompts=_check_prompts(data.get("prompts", ["pplm"]), "prompts", tasks),
        workdir=Path(workdir).expanduser(),
        heldout_prompts=_int(heldout.get("prompts", 15), "heldout.prompts", 1, 100_000),
        heldout_words=_int(heldout.get("words", 4), "heldout.words", 1, 1000),
        max_prompts=None if data.get("max_prompts") is None else _int(data["max_prompts"], "max_prompts", 1,
                                                                      1_000_000),
        seeds=list(dict.fromkeys(seeds)),
        samples=_int(data.get("samples", 2), "samples", 1, 10_000),
        train=_check_train(data.get("train"), "train"),
        generate=_check_generate(data.get("generate"), "generate"),
        compose=_check_compose(data.get("compose"), "compose"),
        learn_weights=_check_learn(data.get("learn_weights"), "learn_weights"),
        evaluate=_check_evaluate(data.get("evaluate"), "evaluate"),
        source=source,
    )
    return spec


def _check_yaml_shape(text: str, yaml) -> None:
    """Refuse aliases and deep nesting from the event stream, before anything is built (a few
    lines of aliases expand to gigabytes; a cycle or deep nesting overflows the stack)."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            raise LoraComposeError(f"YAML aliases (*{str(event.anchor)[:40]}) are not accepted in experiment specs; "
                                   "write the value out")
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise LoraComposeError(f"the spec nests mappings and lists deeper than {MAX_DEPTH} levels")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def load_spec(path: str | Path) -> ExperimentSpec:
    try:
        import yaml
    except ImportError:
        raise LoraComposeError("experiment specs need PyYAML: pip install 'loracompose[experiments]'") from None

    path = Path(path)
    if not path.is_file():
        raise LoraComposeError(f"experiment spec '{path}' does not exist (a YAML file, e.g. configs/demo.yaml)")
    if path.stat().st_size > MAX_SPEC_BYTES:
        raise LoraComposeError(f"experiment spec '{path}' is {path.stat().st_size} bytes; at most {MAX_SPEC_BYTES} "
                               "are accepted")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LoraComposeError(f"experiment spec '{path}' is not UTF-8 text (byte {exc.start})") from None
    try:
        _check_yaml_shape(text, yaml)
        data = yaml.safe_load(text)
    except LoraComposeError as exc:
        raise LoraComposeError(f"experiment spec '{path}': {exc}") from None
    except yaml.YAMLError as exc:
        mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None) or str(exc)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = " ".join(str(problem).split())[:200]  # one line
        raise LoraComposeError(f"experiment spec '{path}' is not valid YAML: {problem}{where}") from None
    except RecursionError:
        raise LoraComposeError(f"experiment spec '{path}' nests too deeply") from None
    try:
        return parse_spec(data, text)
    except RecursionError:
        raise LoraComposeError(f"experiment spec '{path}' nests too deeply") from None
