"""Experiment specs: a YAML file naming the grid, checked field by field.

    name: demo                       # the experiment's name in the results database
    workdir: runs/experiments        # cache/, results.sqlite, logs/, report/ (shared by experiments)
    models: [smollm2-135m]           # packaged names, local HF directories or hub ids
    tasks:                           # built-in task sets (see tasksets.py)
      - set: sentiment
        targets: [positive]          # default: every label of the set
        datasets: [imdb, rotten_tomatoes, tweets]
        conditions: [base, single, combined, weights-average, output-sum]
        samples: 20                  # optional: this task's continuations per prompt and seed
    prompts: [pplm, heldout]         # pplm | heldout (each of a task's datasets' test openings) | heldout:NAME | a file
    heldout: {prompts: 15, words: 4} # held-out prompt sets: how many openings, how many words each
    seeds: [0]
    samples: 2                       # continuations per prompt and seed
    train: {steps: 30, ...}          # TrainConfig fields (not model, datasets, label, mixing, attribute)
    generate: {max_new_tokens: 40, ...}
    compose: {density: 0.5, ...}     # weight merges (ties, dare-*)
    learn_weights: {steps: 40, examples: 64}
    evaluate: {reference: none, resamples: 2000, perplexity_samples: 2, judges: {...}}

Every error is one `LoraComposeError` that names the field by its path
(`tasks[0].conditions[2]`) and what is accepted.

The parsed spec holds the library's own typed settings — `TrainSettings` (the
`TrainConfig` fields the spec sets, generated from `TrainConfig` so their
defaults cannot drift), `GenerateSettings` (a `SamplingConfig`, the template and
the generation base), `MergeOptions`, `LearnSettings` (a `LearnConfig`) and
`EvaluateSettings` (a `JudgeSettings`) — which the plan carries to the stages
unchanged and the cache hashes with `dataclasses.asdict`.
"""

from __future__ import annotations

import re
import string
from dataclasses import MISSING, asdict, dataclass, field, fields, make_dataclass, replace
from pathlib import Path

from loracompose.compose.learn import LearnConfig
from loracompose.compose.weight_methods import MergeOptions
from loracompose.decoding import SamplingConfig
from loracompose.errors import LoraComposeError
from loracompose.evaluate.metrics import DEFAULT_REFERENCE, EvalOptions
from loracompose.evaluate.panel import JudgeSettings
from loracompose.experiments.tasksets import TaskSpec, check_task
from loracompose.experiments.validate import (MAX_TEXT, check_types, fail, integer, mapping, number, shown,
                                              str_list)
from loracompose.models import PACKAGED_MODELS
from loracompose.prompts import check_prompt_set
from loracompose.train import TrainConfig

TOP_LEVEL = {"name", "workdir", "models", "tasks", "prompts", "heldout", "max_prompts", "seeds", "samples",
             "train", "generate", "compose", "learn_weights", "evaluate", "description"}
REQUIRED = ("name", "models", "tasks")
GENERATE_KEYS = {"max_new_tokens", "top_k", "top_p", "temperature", "batch_size", "template", "quantize"}
COMPOSE_KEYS = {"density", "merge_seed", "svd_rank"}
LEARN_KEYS = {"steps", "learning_rate", "l1", "examples"}
EVALUATE_KEYS = {"reference", "resamples", "judge_input", "batch_size", "judges", "perplexity_samples"}
# TrainConfig fields the grid sets for each module (its model, data, label, the task's mixing and, for
# derived data, the attribute), so a spec's `train` mapping does not.
GRID_FIELDS = ("model", "datasets", "label", "mixing", "attribute")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")  # never '.', '..' or a path: it names files
MAX_SPEC_BYTES = 1_000_000
MAX_DEPTH = 32  # nesting of YAML mappings and lists


def _less(cls, excluded: tuple[str, ...], name: str) -> type:
    """A frozen dataclass with `cls`'s fields but `excluded`: the same types and defaults, generated from
    `cls` so they cannot drift from it."""
    specs = [(f.name, f.type, field(default=f.default) if f.default is not MISSING
              else field(default_factory=f.default_factory)) for f in fields(cls) if f.name not in excluded]
    made = make_dataclass(name, specs, frozen=True)
    made.__module__ = __name__  # pickled by name (Ray ships plan units to workers)
    return made


TrainSettings = _less(TrainConfig, GRID_FIELDS, "TrainSettings")
TrainSettings.__doc__ = "The `TrainConfig` fields an experiment spec sets (all but GRID_FIELDS), with its defaults."


def train_config(settings, *, model: str, datasets: list[str], label: str, mixing: str = "concat",
                 attribute: str | None = None) -> TrainConfig:
    """One module's `TrainConfig`: the spec's `TrainSettings` plus what the grid sets."""
    return TrainConfig(model=model, datasets=list(datasets), label=label, mixing=mixing, attribute=attribute,
                       **asdict(settings))


@dataclass(frozen=True)
class GenerateSettings:
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    template: str = "plain"  # plain | instruct | a format text with {prompt} (and optionally {targets})
    quantize: str | None = None  # generation base: None (dense, as `loracompose generate`) or "nf4"


@dataclass(frozen=True)
class LearnSettings:
    config: LearnConfig = field(default_factory=LearnConfig)
    examples: int = 32  # example texts per module's dataset and label


@dataclass(frozen=True)
class EvaluateSettings:
    reference: str | None = DEFAULT_REFERENCE  # perplexity model; None: not measured
    resamples: int = 2000  # bootstrap resamples of each cell's intervals (the report draws its own)
    judge_input: str = "full"  # "full" (prompt + continuation) or "continuation"
    batch_size: int = 8  # texts per reference-model forward
    judges: JudgeSettings = field(default_factory=JudgeSettings)
    perplexity_samples: int | None = None  # perplexity of samples 0..K-1 of each prompt and seed (None: all)

    def options(self) -> EvalOptions:
        return EvalOptions(reference=self.reference, judge_input=self.judge_input, settings=self.judges,
                           batch_size=self.batch_size, resamples=self.resamples, seed=0, progress=False,
                           perplexity_samples=self.perplexity_samples)


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
    train: TrainSettings = field(default_factory=TrainSettings)
    generate: GenerateSettings = field(default_factory=GenerateSettings)
    compose: MergeOptions = field(default_factory=MergeOptions)  # weight merges
    learn_weights: LearnSettings = field(default_factory=LearnSettings)
    evaluate: EvaluateSettings = field(default_factory=EvaluateSettings)
    source: str = ""  # the spec file's text, kept with the run

    @property
    def db_path(self) -> Path:
        return self.workdir / "results.sqlite"


def _check_model(spec: str, path: str) -> None:
    if spec in PACKAGED_MODELS:
        return
    if len(spec) > 500 or "\0" in spec:
        raise fail(path, f"{shown(spec)} is not a model name, path or hub id")
    local = Path(spec).expanduser()
    try:
        exists = local.exists()
    except (OSError, ValueError):
        raise fail(path, f"{shown(spec)} is not a usable path") from None
    if exists:
        if not (local / "config.json").is_file():
            raise fail(path, f"{shown(spec)} is a path without config.json; give a Hugging Face model directory")
        return
    if spec.count("/") == 1 and not spec.startswith((".", "/", "~")):
        return  # a hub id; fetched (or refused, offline) when first loaded
    raise fail(path, f"unknown model {shown(spec)}; accepted: a packaged model ({', '.join(PACKAGED_MODELS)}), "
                     "a local Hugging Face model directory, or a hub id org/name")


def _check_train(values: dict, path: str) -> TrainSettings:
    values = dict(mapping(values, path, {f.name for f in fields(TrainSettings)}))
    if "quantize" in values and values["quantize"] in ("none", None):
        values["quantize"] = None
    check_types(values, TrainConfig, path)
    try:  # TrainConfig checks its own values
        TrainConfig(model="m", datasets=["d"], label="l", **values)
    except (LoraComposeError, TypeError, ValueError) as exc:
        raise fail(path, str(exc)) from None
    return TrainSettings(**values)


def _check_generate(values: dict, path: str) -> GenerateSettings:
    values = dict(mapping(values, path, GENERATE_KEYS))
    values.setdefault("template", "plain")
    values.setdefault("quantize", "none")
    if values["quantize"] not in ("none", "nf4"):
        raise fail(f"{path}.quantize", f"must be none or nf4, got {shown(values['quantize'])}")
    _check_template(values["template"], f"{path}.template")
    sampling = {k: v for k, v in values.items() if k not in ("template", "quantize")}
    check_types(sampling, SamplingConfig, path)
    try:
        config = SamplingConfig(**sampling)
    except (LoraComposeError, TypeError, ValueError) as exc:
        raise fail(path, str(exc)) from None
    return GenerateSettings(config, values["template"], None if values["quantize"] == "none" else values["quantize"])


def _check_template(template, path: str) -> None:
    """plain, instruct, or a format string whose only fields are {prompt} and {targets}."""
    accepted = "accepted: plain, instruct, or a text with {prompt} (and optionally {targets})"
    if not isinstance(template, str) or len(template) > MAX_TEXT:
        raise fail(path, f"must be a string; {accepted}, got {shown(template)}")
    if template in ("plain", "instruct"):
        return
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise fail(path, f"is not a valid format text ({exc}); {accepted}") from None
    if "prompt" not in names or set(names) - {"prompt", "targets"}:
        raise fail(path, f"{accepted}; got {shown(template)}")


def _check_compose(values, path: str) -> MergeOptions:
    values = dict(mapping(values, path, COMPOSE_KEYS))
    for name, low, high, whole in (("density", 0.0, 1.0, False), ("merge_seed", 0, None, True),
                                   ("svd_rank", 1, None, True)):
        if name in values:
            number(values, path, name, low, high, whole)
    if "merge_seed" in values:  # the spec's name for MergeOptions.seed (dare's drop mask)
        values["seed"] = values.pop("merge_seed")
    return MergeOptions(**values)


def _check_learn(values, path: str) -> LearnSettings:
    values = dict(mapping(values, path, LEARN_KEYS))
    for name, low, whole in (("steps", 1, True), ("examples", 8, True), ("learning_rate", 0.0, False),
                             ("l1", 0.0, False)):
        if name in values:
            number(values, path, name, low, None, whole)
    examples = values.pop("examples", LearnSettings.examples)
    return LearnSettings(LearnConfig(**values), examples)


def _check_evaluate(values: dict, path: str) -> EvaluateSettings:
    values = dict(mapping(values, path, EVALUATE_KEYS))
    values.setdefault("reference", EvaluateSettings.reference)
    if isinstance(values["reference"], str) and values["reference"].lower() == "none":
        values["reference"] = None
    if values["reference"] is not None and not isinstance(values["reference"], str):
        raise fail(f"{path}.reference", f"must be a model name or none, got {shown(values['reference'])}")
    if values["reference"] is not None:
        _check_model(values["reference"], f"{path}.reference")
    values["resamples"] = integer(values.get("resamples", EvaluateSettings.resamples), f"{path}.resamples", 100,
                                  1_000_000)
    values["batch_size"] = integer(values.get("batch_size", EvaluateSettings.batch_size), f"{path}.batch_size", 1,
                                   4096)
    if values.get("perplexity_samples") is not None:
        values["perplexity_samples"] = integer(values["perplexity_samples"], f"{path}.perplexity_samples", 1, 10_000)
    values.setdefault("judge_input", EvaluateSettings.judge_input)
    if values["judge_input"] not in ("full", "continuation"):
        raise fail(f"{path}.judge_input", f"must be full or continuation, got {shown(values['judge_input'])}")
    judges = dict(mapping(values.get("judges"), f"{path}.judges", {f.name for f in fields(JudgeSettings)}))
    check_types(judges, JudgeSettings, f"{path}.judges")
    try:
        values["judges"] = JudgeSettings(**judges)
    except (LoraComposeError, TypeError, ValueError) as exc:
        raise fail(f"{path}.judges", str(exc)) from None
    return EvaluateSettings(**values)


def _check_prompts(value, path: str) -> list[str]:
    sets = []
    for i, entry in enumerate(str_list(value, path)):
        if entry == "heldout":  # each task: one held-out set per dataset of that task (see task_prompt_sets)
            sets.append(entry)
            continue
        try:
            check_prompt_set(entry)
        except LoraComposeError as exc:
            raise fail(f"{path}[{i}]", f"{exc}; in a spec also 'heldout' (one held-out set per task dataset)") \
                from None
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
            raise fail(f"{path}.set", f"must be the name of a task set, got {shown(entry['set'])}")
        if "mixing" in entry and not isinstance(entry["mixing"], str):
            raise fail(f"{path}.mixing", f"must be concat, balanced or temperature:T, got {shown(entry['mixing'])}")
        for key in ("targets", "datasets", "conditions"):
            if key in entry:
                str_list(entry[key], f"{path}.{key}")
    elif not isinstance(entry, str):
        raise fail(path, f"must be a task set name or a mapping like {{set: sentiment}}, got {shown(entry)}")
    return entry


def parse_spec(data, source: str = "") -> ExperimentSpec:
    """Validate a spec's parsed YAML and return it with defaults filled in."""
    data = mapping(data, "", TOP_LEVEL)
    for name in REQUIRED:
        if name not in data or data[name] in (None, "", []):
            raise fail(name, "missing; a spec needs name, models and tasks")
    if not isinstance(data["name"], str) or not _NAME.match(data["name"]):
        raise fail("name", f"must be 1 to 100 letters, digits, '.', '_' or '-', starting with a letter or digit "
                            f"(it names files), got {shown(data['name'])}")
    if not isinstance(data.get("description", ""), str):
        raise fail("description", f"must be a string, got {shown(data['description'])}")
    workdir = data.get("workdir", "runs/experiments")
    if not isinstance(workdir, str) or not workdir or len(workdir) > MAX_TEXT or "\0" in workdir:
        raise fail("workdir", f"must be a directory path (a string), got {shown(workdir)}")
    models = str_list(data["models"], "models")
    for i, model in enumerate(models):
        _check_model(model, f"models[{i}]")
    if not isinstance(data["tasks"], list) or not data["tasks"]:
        raise fail("tasks", "must be a list of task entries, e.g. [{set: sentiment}]")
    if len(data["tasks"]) > 100:
        raise fail("tasks", f"has {len(data['tasks'])} entries; at most 100 are accepted")
    tasks = [check_task(_task_shape(entry, f"tasks[{i}]"), f"tasks[{i}]") for i, entry in enumerate(data["tasks"])]
    heldout = mapping(data.get("heldout"), "heldout", {"prompts", "words"})
    seeds = data.get("seeds", [0])
    if not isinstance(seeds, list) or not 1 <= len(seeds) <= 1000 or \
            not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= 2**63 - 1 for s in seeds):
        raise fail("seeds", f"must be a list of 1 to 1000 whole numbers from 0 to 2^63-1, got {shown(seeds)}")
    spec = ExperimentSpec(
        name=data["name"], models=models, tasks=tasks,
        prompts=_check_prompts(data.get("prompts", ["pplm"]), "prompts"),
        workdir=Path(workdir).expanduser(),
        heldout_prompts=integer(heldout.get("prompts", 15), "heldout.prompts", 1, 100_000),
        heldout_words=integer(heldout.get("words", 4), "heldout.words", 1, 1000),
        max_prompts=None if data.get("max_prompts") is None else integer(data["max_prompts"], "max_prompts", 1,
                                                                      1_000_000),
        seeds=list(dict.fromkeys(seeds)),
        samples=integer(data.get("samples", 2), "samples", 1, 10_000),
        train=_check_train(data.get("train"), "train"),
        generate=_check_generate(data.get("generate"), "generate"),
        compose=_check_compose(data.get("compose"), "compose"),
        learn_weights=_check_learn(data.get("learn_weights"), "learn_weights"),
        evaluate=_check_evaluate(data.get("evaluate"), "evaluate"),
        source=source,
    )
    return spec


def select(spec: ExperimentSpec, *, models: list[str] | None = None, sets: list[str] | None = None) -> ExperimentSpec:
    """The part of `spec`'s grid on `models` and in the task entries of task sets `sets` (None: all).

    A part's units have the keys they have in the whole grid (keys hash a unit's inputs, not the spec),
    so a part run alone, on another machine or in another session, fills the same cache and results
    as the whole run would: `loracompose run SPEC --models gemma3-270m --sets topic,multi`.
    """
    for name, wanted, offered in (("--models", models, spec.models),
                                  ("--sets", sets, list(dict.fromkeys(t.set for t in spec.tasks)))):
        if wanted is not None and not wanted:
            raise LoraComposeError(f"{name} names nothing; give one or more of: {', '.join(offered)}")
        unknown = [w for w in wanted or [] if w not in offered]
        if unknown:
            raise LoraComposeError(f"{name}: {', '.join(map(repr, unknown))} not in experiment '{spec.name}'; "
                                   f"it has: {', '.join(offered)}")
    if models is None and sets is None:
        return spec
    part = " ".join(f"{flag} {','.join(names)}" for flag, names in (("--models", models), ("--sets", sets)) if names)
    # The run keeps the spec's text (the report prints it): say which part of it ran.
    source = spec.source.rstrip("\n") + f"\n# this run: the part {part} of this spec's grid\n"
    return replace(spec, models=[m for m in spec.models if models is None or m in models],
                   tasks=[t for t in spec.tasks if sets is None or t.set in sets], source=source)


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
    try:  # PyYAML is an optional extra ('experiments'): imported where a spec file is read
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
