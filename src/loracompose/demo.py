"""The end-to-end demo: train a positive and a negative module on IMDb, then generate.

On 2 CPU cores it takes about 10 minutes the first time (two QLoRA modules on the
packaged SmolLM2-135M) and about a minute on later runs, which reuse the modules.
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
PROMPTS = ["The movie", "I watched this film", "The acting was", "This is a story about",
           "The director", "My wife and I", "The ending", "Honestly,"]
LABELS = ("positive", "negative")
DEFAULT_STEPS = 60


def demo_config(label: str, steps: int) -> TrainConfig:
    # A short run: a higher learning rate than the 2e-4 default so 60 steps move the model.
    return TrainConfig(model=MODEL, datasets=["imdb"], label=label, steps=steps, learning_rate=1e-3,
                       warmup_steps=5, eval_every=20, save_every=30)


def _ensure_module(label: str, out: Path, steps: int, retrain: bool) -> Path:
    config = demo_config(label, steps)
    meta_file = out / METADATA_FILE
    if meta_file.exists() and not retrain:
        recorded = json.loads(meta_file.read_text())["training"]["settings"]
        if recorded == config.settings():
            log.info("reusing %s (trained earlier with the same settings; --retrain to train again)", out)
            return out
    log.info("training %s@imdb on %s: %d steps", label, MODEL, steps)
    resume = (out.with_name(out.name + ".training") / "run.json").exists()
    try:
        train_module(config, out, overwrite=True, resume=resume)
    except LoraComposeError as exc:  # e.g. the killed run had other settings
        if not resume:
            raise
        log.info("could not resume the earlier run (%s); starting over", exc)
        train_module(config, out, overwrite=True)
    return out


CONDITIONS = {"base": {}, "positive": {"positive@imdb": 1.0}, "negative": {"negative@imdb": 1.0}}


def run_demo(out: Path, steps: int | None = None, retrain: bool = False, samples: int = 4) -> list[dict]:
    """Train (or reuse) both modules, generate from base / positive / negative, print and save."""
    from loracompose.compose.bank import ModuleBank
    from loracompose.generate import Steerer
    from loracompose.models import load_base

    steps = steps or DEFAULT_STEPS
    paths = {f"{label}@imdb": _ensure_module(label, out / "modules" / f"{label}@imdb", steps, retrain)
             for label in LABELS}

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
            print(f"- {r['prompt']}{' '.join(r['text'].split())}")
