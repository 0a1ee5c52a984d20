"""One generations file per (prompt set, condition, direction), all from one loaded base.

Every method samples with the same `SamplingConfig` (top-k 50, top-p 0.95, T = 1, 40 new
tokens), the same seeds and `row_seed(seed, sample)` generators, so the base, prompting,
activation addition and the modules draw with the same randomness on the same prompts.
Files are written atomically and reused when present with the same settings (a settings
stamp per output directory); a killed run resumes at the first missing file.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

from loracompose.baselines import actadd
from loracompose.baselines.arithmetic import sample_arithmetic
from loracompose.baselines.prompting import instruction_template
from loracompose.compose.bank import ModuleBank, discover_modules
from loracompose.decoding import SamplingConfig, row_seed
from loracompose.generate import Steerer
from loracompose.errors import LoraComposeError
from loracompose.modules import ModuleInfo, read_module
from loracompose.paths import write_text_atomic
from loracompose.prompts import load_prompts
from loracompose.steer import resolve_steering, starter_modules_dir
from loracompose.versus.conditions import DIRECTIONS, MODULE_STRATEGY, Condition, VersusSettings

log = logging.getLogger(__name__)


def modules_dir(settings: VersusSettings) -> Path:
    return Path(settings.modules) if settings.modules else starter_modules_dir(settings.model)


def attribute_modules(directory: Path, attribute: str) -> dict[str, ModuleInfo]:
    """The modules in `directory` that steer `attribute` (a starter directory also holds the topic modules)."""
    infos = {name: read_module(path) for name, path in discover_modules(directory).items()}
    return {name: info for name, info in infos.items() if info.attribute == attribute}


def module_infos(settings: VersusSettings) -> dict[str, ModuleInfo]:
    return attribute_modules(modules_dir(settings), settings.attribute)


def folder_name(prompt_set: str) -> str:
    """The folder of a prompt set's files (a file path or `heldout:NAME` made one path component)."""
    return prompt_set.replace(":", "_").replace("/", "_")


def file_of(out: Path, prompt_set: str, condition: Condition, direction: str | None) -> Path:
    suffix = f"-{direction}" if direction else ""
    return out / "generations" / folder_name(prompt_set) / f"{condition.name}{suffix}.jsonl"


def planned_files(settings: VersusSettings, out: Path) -> list[tuple[str, Condition, str | None, Path]]:
    """(prompt set, condition, direction or None for the base, file) for everything the run generates."""
    return [(ps, c, d, file_of(out, ps, c, d)) for ps in settings.prompt_sets for c in settings.conditions()
            for d in ((None,) if c.method == "base" else DIRECTIONS)]


def _stamp(settings: VersusSettings) -> str:
    keep = ("model", "modules", "seeds", "max_new_tokens", "actadd_texts", "batch_size")
    return json.dumps({k: getattr(settings, k) for k in keep}, sort_keys=True, default=str)


class _Runner:
    """The loaded base with its modules, and what each method needs (vectors computed once)."""

    def __init__(self, settings: VersusSettings):
        from loracompose.models import load_base

        self.settings = settings
        self.base = load_base(settings.model, quantize=None)
        self.infos = module_infos(settings)
        paths = {name: info.path for name, info in self.infos.items()}
        self.steerer = Steerer(self.base.model, self.base.tokenizer,
                               ModuleBank(self.base.model, paths, self.base.fingerprint), settings.model)
        self.sampling = SamplingConfig(max_new_tokens=settings.max_new_tokens, batch_size=settings.batch_size)
        self.vectors: dict[int, actadd.SteeringVector] = {}

    def vector(self, layer: int) -> actadd.SteeringVector:
        """The positive-minus-negative vector at `layer`, from the corpus the modules learnt from."""
        if layer not in self.vectors:
            from loracompose.evaluate.independent import module_corpora

            corpus = sorted(module_corpora(self.infos))[0]
            n = self.settings.actadd_texts
            self.vectors[layer] = actadd.steering_vector(
                self.base.model, self.base.tokenizer, actadd.label_texts(corpus, "positive", n),
                actadd.label_texts(corpus, "negative", n), actadd.check_layer(self.base.model, layer))
            log.info("activation addition vector at layer %d from %s (%d texts per label)", layer, corpus, n)
        return self.vectors[layer]

    def generate(self, prompts: list[str], condition: Condition, direction: str | None) -> list[dict]:
        s, seeds = self.settings, list(self.settings.seeds)
        method = condition.method
        extra = {"versus": {"method": method, "strength": condition.strength, "layer": condition.layer,
                            "direction": direction}}
        if method == "base":
            records = self.steerer.generate(prompts, {}, "output-sum", seeds, 1, self.sampling, progress=True)
        elif method == "prompt":
            template = instruction_template(self.base.tokenizer, s.attribute, direction)
            records = self.steerer.generate(prompts, {}, "output-sum", seeds, 1, self.sampling, template=template,
                                            progress=True)
        elif method == "actadd":
            vector = self.vector(condition.layer)
            with actadd.added(self.base.model, vector, condition.strength, 1.0 if direction == "positive" else -1.0):
                records = self.steerer.generate(prompts, {}, "output-sum", seeds, 1, self.sampling, progress=True)
            extra["versus"]["vector"] = vector.record()
        elif method == "arithmetic":
            records = self._arithmetic(prompts, condition.strength, direction)
        else:
            plan = resolve_steering(self.infos, {s.attribute: direction}, condition.strength,
                                    MODULE_STRATEGY[method])
            records = self.steerer.generate(prompts, plan.composition, plan.method, seeds, 1, self.sampling,
                                            progress=True)
            extra["steer"] = plan.record()
        return [{**r, **extra} for r in records]

    def _arithmetic(self, prompts: list[str], strength: float, direction: str) -> list[dict]:
        tokenizer = self.base.tokenizer
        template = instruction_template(tokenizer, self.settings.attribute, direction)
        jobs = [(p, seed) for seed in self.settings.seeds for p in prompts]
        records = []
        per_batch = max(1, self.sampling.batch_size // 2)  # two rows a sequence
        for start in range(0, len(jobs), per_batch):
            chunk = jobs[start: start + per_batch]
            texts = sample_arithmetic(self.base.model, tokenizer, [p for p, _ in chunk],
                                      [template.format(prompt=p) for p, _ in chunk],
                                      [row_seed(seed, 0) for _, seed in chunk], self.sampling, strength)
            records += [{"prompt": p, "text": t, "seed": seed, "sample": 0,
                         "composition": {"method": "model-arithmetic", "weights": {}, "targets": {}},
                         "generation": {**asdict(self.sampling), "template": template},
                         "model": self.settings.model} for (p, seed), t in zip(chunk, texts)]
        return records


def generate_all(settings: VersusSettings, out: Path) -> list[tuple[str, Condition, str | None, Path]]:
    """Generate every missing file of the run; returns the plan (see `planned_files`)."""
    plan = planned_files(settings, out)
    stamp = out / "generations" / "settings.json"
    wanted = _stamp(settings)
    if stamp.is_file() and stamp.read_text() != wanted:
        raise LoraComposeError(f"{stamp.parent} holds generations made with other settings ({stamp.read_text()}); "
                               "use another --out, or delete that directory to regenerate")
    todo = [entry for entry in plan if not entry[3].is_file()]
    if not todo:
        return plan
    runner = _Runner(settings)
    write_text_atomic(stamp, wanted)
    prompts = {ps: load_prompts(ps) for ps in settings.prompt_sets}
    for prompt_set, condition, direction, path in todo:
        log.info("generating %s: %s%s", prompt_set, condition.name, f" toward {direction}" if direction else "")
        records = runner.generate(prompts[prompt_set], condition, direction)
        write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in records))
    return plan

