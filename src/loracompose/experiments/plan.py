"""A spec → the units of work of its grid, each keyed by the content hash of its inputs.

    TrainUnit    one module (model × label × datasets × training settings)
    ComposeUnit  one weight merge (weights-average, delta-sum, ties) or one learn-weights search
    CellUnit     one condition's generation and evaluation for one prompt set and seed

A CellUnit holds two stages (generate, then evaluate) with keys of their own:
the evaluation key covers the generation key, so a changed generation setting
reruns both, a changed evaluation setting only the evaluation. Units are plain
data (picklable), so an executor can ship them to another process or machine.

Settings travel as the spec's typed dataclasses (`TrainSettings`, `MergeOptions`,
`LearnSettings`, `GenerateSettings`, `EvaluateSettings`) and enter the keys as
`dataclasses.asdict` of them, defaults included: a changed library default
changes the keys it affects.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from pathlib import Path

from loracompose.compose.methods import WEIGHT_METHODS
from loracompose.compose.weight_methods import MergeOptions
from loracompose.data import load_attribute_dataset
from loracompose.experiments.cache import content_key, stage_path
from loracompose.experiments.spec import (EvaluateSettings, ExperimentSpec, GenerateSettings, LearnSettings,
                                          TrainSettings, task_prompt_sets)
from loracompose.experiments.tasksets import ModuleRecipe, cells
from loracompose.modules import METADATA_FILE
from loracompose.prompts import load_prompts



@dataclass
class TrainUnit:
    key: str
    model: str
    recipe: ModuleRecipe
    train: TrainSettings
    deps: tuple[str, ...] = ()
    kind: str = "train"

    @property
    def title(self) -> str:
        return f"train {self.recipe.name} on {self.model}"


@dataclass
class ComposeUnit:
    key: str
    model: str
    method: str  # a weight merge, or "learn-weights"
    modules: dict[str, str]  # module name → train key (in composition order)
    recipes: dict[str, ModuleRecipe]  # learn-weights draws example texts from their data
    settings: MergeOptions | LearnSettings  # spec.compose (merges) or spec.learn_weights
    deps: tuple[str, ...] = ()
    kind: str = "compose"

    @property
    def title(self) -> str:
        return f"{self.method} of {' + '.join(self.modules)} on {self.model}"


@dataclass
class CellUnit:
    key: str  # = the evaluation key
    generate_key: str
    model: str
    experiment: str
    task: str
    target: str
    targets: dict[str, str]
    condition: str
    prompt_set: str
    prompts: list[str]
    seed: int
    samples: int
    method: str | None  # None: the base model alone
    modules: dict[str, str]  # module name → train key (single, combined, logit-sum, output-sum)
    compose_key: str | None  # merged module or learned weights
    generate: GenerateSettings
    evaluate: EvaluateSettings
    deps: tuple[str, ...] = ()
    kind: str = "cell"

    @property
    def title(self) -> str:
        return f"{self.condition} → {self.target} on {self.prompt_set}, seed {self.seed} ({self.model})"


@dataclass
class Plan:
    """The grid's units in the order they run (`units`), and by kind (`trains`, `composes`, `cells`).

    That order is the spec's, piece by piece: model by model, and within a model task by task, each
    task's modules and merges just before its cells. A unit always follows the units it reads, and an
    interrupted run leaves whole pieces done (the first model's first task before anything of the
    second), which the report can already show.
    """

    units: list = field(default_factory=list)

    @property
    def trains(self) -> list[TrainUnit]:
        return [u for u in self.units if u.kind == "train"]

    @property
    def composes(self) -> list[ComposeUnit]:
        return [u for u in self.units if u.kind == "compose"]

    @property
    def cells(self) -> list[CellUnit]:
        return [u for u in self.units if u.kind == "cell"]


def unit_output(unit, workdir: Path) -> Path:
    """Where the unit's stage writes its output: a module or merged-module directory, a learned-weights
    file, or (a cell) its metrics file."""
    if unit.kind == "train":
        return stage_path(workdir, "train", unit.key)
    if unit.kind == "compose":
        return stage_path(workdir, "compose" if unit.method != "learn-weights" else "learn", unit.key)
    return stage_path(workdir, "evaluate", unit.key)


def unit_done(unit, workdir: Path) -> bool:
    """Whether the unit's output is in the cache: what the stages check before running, and what
    `--plan` counts. Outputs are moved into place only when complete (see `cache`), so it exists
    means it is finished; a module when its metadata does, a cell when its evaluation does."""
    out = unit_output(unit, workdir)
    if unit.kind == "train":
        return (out / METADATA_FILE).is_file()
    return out.exists() if unit.kind == "compose" else out.is_file()


@functools.lru_cache(maxsize=None)
def dataset_hash(name: str) -> str:
    return load_attribute_dataset(name).content_hash


def train_key(model: str, recipe: ModuleRecipe, train: TrainSettings) -> str:
    return content_key("train", {"model": model, "label": recipe.label, "datasets": list(recipe.datasets),
                                 "mixing": recipe.mixing if len(recipe.datasets) > 1 and not recipe.parts else None,
                                 "parts": [list(p) for p in recipe.parts], "train": asdict(train),
                                 "data": {d: dataset_hash(d) for d in recipe.datasets}})


def build_plan(spec: ExperimentSpec) -> Plan:
    plan = Plan()
    seen: set[str] = set()
    loaded = {p: load_prompts(p, heldout_n=spec.heldout_prompts, heldout_words=spec.heldout_words,
                              limit=spec.max_prompts) for t in spec.tasks for p in task_prompt_sets(spec, t)}
    for model in spec.models:
        for task in spec.tasks:
            prompt_sets = {p: loaded[p] for p in task_prompt_sets(spec, task)}
            samples = task.samples or spec.samples
            for cell in cells(task):
                keys = {}
                for name, recipe in cell.modules.items():
                    keys[name] = train_key(model, recipe, spec.train)
                    if keys[name] not in seen:
                        seen.add(keys[name])
                        plan.units.append(TrainUnit(keys[name], model, recipe, spec.train))
                for condition in cell.conditions:
                    modules = {n: keys[n] for n in condition.modules}
                    compose_key = None
                    if condition.method in WEIGHT_METHODS or condition.method == "learn-weights":
                        settings = spec.learn_weights if condition.method == "learn-weights" else spec.compose
                        recipes = {n: cell.modules[n] for n in condition.modules}
                        compose_key = content_key("compose", {"model": model, "method": condition.method,
                                                              "modules": modules, "settings": asdict(settings),
                                                              "recipes": {n: [r.label, list(r.datasets)]
                                                                          for n, r in recipes.items()}})
                        if compose_key not in seen:
                            seen.add(compose_key)
                            plan.units.append(ComposeUnit(compose_key, model, condition.method, modules, recipes,
                                                        settings, tuple(modules.values())))
                    deps = (compose_key,) if compose_key else tuple(modules.values())
                    for prompt_set, prompts in prompt_sets.items():
                        for seed in spec.seeds:
                            gen_key = content_key("generate", {
                                "model": model, "method": condition.method, "modules": modules,
                                "compose": compose_key, "prompts": prompts, "seed": seed, "samples": samples,
                                "generate": asdict(spec.generate)})
                            eval_key = content_key("evaluate", {"generate": gen_key, "targets": cell.targets,
                                                                "evaluate": asdict(spec.evaluate)})
                            if eval_key in seen:  # the same cell listed by two task entries
                                continue
                            seen.add(eval_key)
                            plan.units.append(CellUnit(
                                eval_key, gen_key, model, spec.name, task.set, cell.target, cell.targets,
                                condition.name, prompt_set, prompts, seed, samples, condition.method, modules,
                                compose_key, spec.generate, spec.evaluate, deps))
    return plan
