"""The four stages, each a cached call into the library: train, compose, generate, evaluate.

`run_unit(unit, workdir)` does a unit's stages that are not on disk yet and
returns what it did: `{"key", "kind", "ran": [stages run], "row": ...}` (cells
carry the results row with per-sample data; the driver stores it). Nothing here
writes the results database, so units can run in other processes (Ray).

Which base each stage uses: training the NF4 base (QLoRA); generation
the dense base by default (`generate.quantize: none`), as
`loracompose generate` does; weight merges and learn-weights the dense base.

Each stage takes its settings from the unit as the spec's typed dataclasses
(`TrainSettings` → `TrainConfig`, `MergeOptions`, `LearnSettings`,
`GenerateSettings`, `EvaluateSettings` → `EvalOptions`), unchanged. The cache key
of each stage covers the code listed for it in `cache.STAGE_CODE`, which names
the functions of this file each stage runs.

Imports: this module is loaded by the experiment commands only (never by
`loracompose --help`), so torch and transformers come in at module level.
"""

from __future__ import annotations

import functools
import json
import logging
import random
from pathlib import Path

from loracompose.compose.bank import ModuleBank
from loracompose.compose.learn import learn_weights
from loracompose.compose.merge import write_merged
from loracompose.data import BUILTIN_DATASETS, load_attribute_dataset
from loracompose.errors import LoraComposeError
from loracompose.evaluate.metrics import evaluate_generations, write_metrics
from loracompose.experiments.cache import content_key, stage_path, write_json
from loracompose.experiments.plan import CellUnit, ComposeUnit, TrainUnit, dataset_hash, unit_done, unit_output
from loracompose.experiments.spec import LearnSettings, train_config
from loracompose.experiments.tasksets import ModuleRecipe
from loracompose.generate import Steerer
from loracompose.models import load_base
from loracompose.paths import write_text_atomic
from loracompose.train import TrainConfig, train_module

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1)
def _inference_base(model: str, quantize: str | None):
    """The base model for generation, loaded once per process (stages detach their layers after use)."""
    return load_base(model, quantize=quantize)


@functools.lru_cache(maxsize=1)
def _reference_model(spec: str):
    """The perplexity reference model, loaded once per process (not once per cell)."""
    return load_base(spec, quantize=None)


def _derived_dataset(recipe: ModuleRecipe, workdir: Path, seed: int) -> Path:
    """The multi set's combined data: each (dataset, label) part's train and validation texts, equal
    counts per split, under one label."""
    key = content_key("data", {"parts": [list(p) for p in recipe.parts], "label": recipe.label, "seed": seed,
                               "data": {d: dataset_hash(d) for d, _ in recipe.parts}})
    path = stage_path(workdir, "data", key)
    if not path.is_file():
        rows = []
        # The split is a function of the text alone, so these texts fall back into the same train and
        # validation splits when the file is read, and no test text enters it.
        for split in ("train", "validation"):
            parts = [load_attribute_dataset(d).texts(split, label) for d, label in recipe.parts]
            n = min(len(p) for p in parts)
            rows += [t for i, p in enumerate(parts) for t in random.Random(f"{seed}:{split}:{i}").sample(p, n)]
        write_text_atomic(path, "".join(json.dumps({"text": t, "label": recipe.label}) + "\n" for t in rows))
    return path


def _train_config(unit: TrainUnit, workdir: Path) -> TrainConfig:
    recipe = unit.recipe
    if recipe.parts:
        data = _derived_dataset(recipe, workdir, unit.train.seed)
        return train_config(unit.train, model=unit.model, datasets=[str(data)], label=recipe.label,
                            attribute="+".join(dict.fromkeys(_attribute(d) for d, _ in recipe.parts)))
    mixing = recipe.mixing if len(recipe.datasets) > 1 else "concat"
    return train_config(unit.train, model=unit.model, datasets=list(recipe.datasets), label=recipe.label,
                        mixing=mixing)


def _attribute(dataset: str) -> str:
    return BUILTIN_DATASETS[dataset].attribute


def run_train(unit: TrainUnit, workdir: Path, progress: bool = True) -> dict:
    if unit_done(unit, workdir):
        return {"key": unit.key, "kind": "train", "ran": []}
    out = unit_output(unit, workdir)
    config = _train_config(unit, workdir)
    resume = (out.with_name(out.name + ".training") / "run.json").is_file()
    log.info("%s (%d steps)%s", unit.title, config.steps, " — resuming" if resume else "")
    try:
        trained = train_module(config, out, overwrite=True, resume=resume, progress=progress)
    except LoraComposeError:
        if not resume:
            raise
        log.info("could not resume the killed training of %s; starting it over", unit.recipe.name)
        trained = train_module(config, out, overwrite=True, progress=progress)
    del trained  # the trained model is not reused: generation loads modules onto the dense base
    return {"key": unit.key, "kind": "train", "ran": ["train"]}


def _bank(model: str, quantize: str | None, modules: dict[str, Path]):
    base = _inference_base(model, quantize)
    bank = ModuleBank(base.model, modules, base.fingerprint)
    return Steerer(base.model, base.tokenizer, bank, model), base


def run_compose(unit: ComposeUnit, workdir: Path, quantize: str | None = None) -> dict:
    paths = {name: stage_path(workdir, "train", key) for name, key in unit.modules.items()}
    if unit_done(unit, workdir):
        return {"key": unit.key, "kind": "compose", "ran": []}
    out = unit_output(unit, workdir)
    log.info("%s", unit.title)
    steerer, base = _bank(unit.model, quantize, paths)
    composition = {name: 1.0 for name in unit.modules}
    if isinstance(unit.settings, LearnSettings):
        per_part = unit.settings.examples  # example texts per module's dataset and label
        texts = []
        for name, recipe in unit.recipes.items():
            for dataset in recipe.datasets:
                pool = load_attribute_dataset(dataset).texts("train", recipe.label)
                texts += random.Random(f"learn:{name}:{dataset}").sample(pool, min(per_part, len(pool)))
        result = learn_weights(base.model, base.tokenizer, steerer.bank, texts, unit.settings.config)
        write_json(out, result)
    else:  # a weight merge with the spec's MergeOptions
        write_merged(steerer.bank, composition, unit.method, steerer.layer_order, out,
                     base_model_name=unit.model, fingerprint=base.fingerprint, options=unit.settings)
    return {"key": unit.key, "kind": "compose", "ran": ["compose"]}


def _composition(unit: CellUnit, workdir: Path) -> tuple[dict[str, Path], dict[str, float], str]:
    """(module paths, composition weights, method) that generate this cell's condition."""
    if unit.method is None:
        return {}, {}, "output-sum"
    if unit.method == "learn-weights":
        learned = json.loads(stage_path(workdir, "learn", unit.compose_key).read_text())["weights"]
        paths = {name: stage_path(workdir, "train", key) for name, key in unit.modules.items()}
        return paths, {name: float(learned[name]) for name in unit.modules}, "output-sum"
    if unit.compose_key is not None:  # a weight merge, written once by its compose stage
        name = f"{unit.method}({'+'.join(unit.modules)})"
        return {name: stage_path(workdir, "compose", unit.compose_key)}, {name: 1.0}, "output-sum"
    paths = {name: stage_path(workdir, "train", key) for name, key in unit.modules.items()}
    return paths, {name: 1.0 for name in unit.modules}, unit.method


def run_generate(unit: CellUnit, workdir: Path) -> bool:
    out = stage_path(workdir, "generate", unit.generate_key)
    if out.is_file():
        return False
    paths, composition, method = _composition(unit, workdir)
    settings = unit.generate
    steerer, _ = _bank(unit.model, settings.quantize, paths)
    records = steerer.generate(unit.prompts, composition, method, [unit.seed], unit.samples, settings.sampling,
                               settings.template)
    write_text_atomic(out, "".join(json.dumps({**r, "condition": unit.condition}) + "\n" for r in records))
    return True


def run_evaluate(unit: CellUnit, workdir: Path) -> bool:
    if unit_done(unit, workdir):
        return False
    out = unit_output(unit, workdir)
    settings = unit.evaluate
    reference = _reference_model(settings.reference) if settings.reference else None
    metrics = evaluate_generations(stage_path(workdir, "generate", unit.generate_key), unit.targets,
                                   settings.options(), reference=reference)
    write_metrics(metrics, out)
    return True


def cell_row(unit: CellUnit, workdir: Path) -> dict:
    """The results row of a finished cell: its identity, summary metrics and per-sample data."""
    metrics = json.loads(stage_path(workdir, "evaluate", unit.key).read_text())
    texts = {}
    for line in stage_path(workdir, "generate", unit.generate_key).read_text().splitlines():
        r = json.loads(line)
        texts[(r["prompt"], r["sample"])] = r["text"]
    for sample in metrics["samples"]:
        sample["text"] = texts[(sample["prompt"], sample["sample"])]
    return {"experiment": unit.experiment, "model": unit.model, "task": unit.task, "prompt_set": unit.prompt_set,
            "condition": unit.condition, "target": unit.target, "seed": unit.seed,
            "generate_key": unit.generate_key, "evaluate_key": unit.key, "metrics": metrics}


def run_cell(unit: CellUnit, workdir: Path) -> dict:
    ran = []
    if run_generate(unit, workdir):
        ran.append("generate")
    if run_evaluate(unit, workdir):
        ran.append("evaluate")
    return {"key": unit.key, "kind": "cell", "ran": ran, "row": cell_row(unit, workdir)}


def run_unit(unit, workdir: str | Path, progress: bool = True) -> dict:
    workdir = Path(workdir)
    if isinstance(unit, TrainUnit):
        return run_train(unit, workdir, progress)
    if isinstance(unit, ComposeUnit):
        return run_compose(unit, workdir)
    return run_cell(unit, workdir)
