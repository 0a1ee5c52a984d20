"""The end-to-end demo: train three modules, then generate under single modules and a composition.

Modules: positive and negative (IMDb) and sport (BBC), each a 60-step QLoRA run on
the packaged SmolLM2-135M. Conditions: the base, each module alone, and
positive + sport composed by output-sum. On 2 CPU cores the first run takes about
15 minutes; later runs reuse the modules and take about a minute.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from loracompose.errors import LoraComposeError
from loracompose.decoding import SamplingConfig
from loracompose.modules import METADATA_FILE
from loracompose.train import TrainConfig, train_module

log = logging.getLogger(__name__)

MODEL = "smollm2-135m"
PROMPTS = ["Once upon a time", "The book", "The city", "The country", "The movie", "The painting", "The road",
           "The year is 1910."]  # 8 of the 15 PPLM prompts
MODULES = {"positive@imdb": ("positive", "imdb"), "negative@imdb": ("negative", "imdb"),
           "sport@bbc": ("sport", "bbc")}
CONDITIONS = {"base": {}, "positive": {"positive@imdb": 1.0}, "negative": {"negative@imdb": 1.0},
              "sport": {"sport@bbc": 1.0}, "positive + sport": {"positive@imdb": 1.0, "sport@bbc": 1.0}}
DEFAULT_STEPS = 60


def demo_config(label: str, dataset: str, steps: int) -> TrainConfig:
    # A short run: a higher learning rate than the 2e-4 default so 60 steps move the model.
    return TrainConfig(model=MODEL, datasets=[dataset], label=label, steps=steps, learning_rate=1e-3,
                       warmup_steps=5, eval_every=20, save_every=30)


def _ensure_module(label: str, dataset: str, out: Path, steps: int, retrain: bool) -> Path:
    config = demo_config(label, dataset, steps)
    meta_file = out / METADATA_FILE
    if meta_file.exists() and not retrain:
        recorded = json.loads(meta_file.read_text())["training"]["settings"]
        if recorded == config.settings():
            log.info("reusing %s (trained earlier with the same settings; --retrain to train again)", out)
            return out
    log.info("training %s on %s: %d steps", out.name, MODEL, steps)
    resume = (out.with_name(out.name + ".training") / "run.json").exists()
    try:
        train_module(config, out, overwrite=True, resume=resume)
    except LoraComposeError as exc:  # e.g. the killed run had other settings
        if not resume:
            raise
        log.info("could not resume the earlier run (%s); starting over", exc)
        train_module(config, out, overwrite=True)
    return out


def run_demo(out: Path, steps: int | None = None, retrain: bool = False, samples: int = 4) -> list[dict]:
    """Train (or reuse) the modules, generate under each condition, print and save."""
    from loracompose.compose.bank import ModuleBank
    from loracompose.generate import Steerer
    from loracompose.models import load_base

    steps = steps or DEFAULT_STEPS
    paths = {name: _ensure_module(label, dataset, out / "modules" / name, steps, retrain)
             for name, (label, dataset) in MODULES.items()}

    # Generation uses the dense base: the modules were trained on its NF4 copy, but
    # re-quantised SmolLM2 writes noticeably more repetitive text (STACK-NOTES).
    base = load_base(MODEL, quantize=None)
    steerer = Steerer(base.model, base.tokenizer, ModuleBank(base.model, paths, base.fingerprint), MODEL)
    config = SamplingConfig(max_new_tokens=40)
    records = []
    for condition, composition in CONDITIONS.items():
        generated = steerer.generate(PROMPTS, composition, "output-sum", seeds=[0], samples=samples, sampling=config)
        records += [{**r, "condition": condition} for r in generated]

    out.mkdir(parents=True, exist_ok=True)
    gens = out / "generations.jsonl"
    gens.write_text("".join(json.dumps(r) + "\n" for r in records))
    _print_examples(records)
    print(f"\n{len(records)} generations written to {gens}; modules in {out / 'modules'}")
    return records


def _print_examples(records: list[dict], per_condition: int = 4) -> None:
    for condition in CONDITIONS:
        print(f"\n=== {condition} ===")
        shown = [r for r in records if r["condition"] == condition and r["sample"] == 0][:per_condition]
        for r in shown:
            space = " " if r["text"][:1].isspace() else ""
            print(f"- {r['prompt']}{space}{' '.join(r['text'].split())}")
