"""QLoRA module training: one module per attribute value, on one or several datasets.

    frozen base W0 (NF4 4-bit)          trained LoRA pair per projection
    y = W0·x + (alpha/r)·B·(A·x)        A: (r, d_in), B: (d_out, r)

Causal language modelling on the texts that carry one label (e.g. positive
reviews), packed into fixed rows (see `loracompose.packing`), with
transformers' Trainer, PEFT and bitsandbytes. Checkpoints go to `<out>.training/`;
the finished module is moved into `<out>` atomically, so a killed run never
leaves a directory that looks finished.
"""

from __future__ import annotations

import hashlib
import json
import logging
import resource
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

from loracompose import __version__
from loracompose.data import DataOptions, Mixing, SplitSizes, load_attribute_dataset, mix_sources
from loracompose.checkpoints import (atomic_trainer, disk_full, disk_full_error, divergence_guard, drop_partial,
                                     finite_history, latest_complete)
from loracompose.errors import LoraComposeError
from loracompose.modules import METADATA_FILE, finite_or_none, module_name, write_metadata
from loracompose.packing import PackedCollator, pack_documents, tokenize_documents
from loracompose.paths import atomic_directory, write_text_atomic

log = logging.getLogger(__name__)

RUN_FILE = "run.json"
UNITS = ("text", "sentence")
MIN_SENTENCE_WORDS = 4  # shorter "sentences" are mostly headings, names and list items


def sentence_units(texts: list[str]) -> list[str]:
    """Each text's sentences (pysbd's rule-based segmenter), in order; those of fewer than
    MIN_SENTENCE_WORDS words are dropped. An IMDb review's opening is mostly plot and its
    sentiment sits in a few verdict sentences; as units, a row holds many texts' verdicts."""
    import pysbd

    segmenter = pysbd.Segmenter(language="en", clean=False)
    return [s.strip() for text in texts for s in segmenter.segment(text) if len(s.split()) >= MIN_SENTENCE_WORDS]


@dataclass
class TrainConfig:
    """Everything that decides what a training run produces."""

    model: str  # model spec: packaged name, local directory or hub id
    datasets: list[str]  # built-in names or file paths; several = combined training
    label: str  # attribute value to model, e.g. "positive"
    mixing: str = "concat"  # concat | balanced | temperature:T (combined training)
    rank: int = 8  # LoRA rank r
    alpha: float = 16.0  # LoRA alpha; the update is scaled by alpha / r
    dropout: float = 0.05  # LoRA dropout on the adapter input
    target_modules: str | list[str] = "all-linear"  # PEFT targets: every attention and MLP projection
    learning_rate: float = 2e-4
    steps: int = 200  # optimiser steps
    batch_size: int = 8  # packed rows per step
    seq_len: int = 64  # tokens per packed row
    long_texts: str = "cut"  # texts longer than seq_len: "cut" (keep the opening) or "chunk" (use all of it)
    unit: str = "text"  # training unit: "text" (each text whole) or "sentence" (each sentence of it, pysbd)
    warmup_steps: int = 10
    weight_decay: float = 0.0
    seed: int = 42
    quantize: str | None = "nf4"  # frozen base: "nf4" (QLoRA) or None (dense)
    gradient_checkpointing: bool = False  # less memory, ~35% slower on CPU
    eval_every: int = 50  # steps between validation-loss measurements (0 = only at the end)
    eval_rows: int = 32  # packed validation rows
    save_every: int = 50  # steps between checkpoints (0 = none)
    min_examples: int = 16  # fewest training texts a label may have in each dataset
    text_column: str = "text"  # user files only
    label_column: str = "label"  # user files only
    attribute: str | None = None  # attribute name for user files
    min_confidence: float | None = None  # tweets only; None = the dataset's default
    validation_fraction: float = 0.05
    test_fraction: float = 0.10

    def __post_init__(self):
        Mixing.parse(self.mixing)
        for name in ("rank", "steps", "batch_size", "seq_len", "eval_rows", "min_examples"):
            if getattr(self, name) < 1:
                raise LoraComposeError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.quantize not in ("nf4", None):
            raise LoraComposeError(f"unknown quantize '{self.quantize}'; accepted: nf4, none")
        if self.long_texts not in ("cut", "chunk"):
            raise LoraComposeError(f"unknown long-texts '{self.long_texts}'; accepted: cut, chunk")
        if self.unit not in UNITS:
            raise LoraComposeError(f"unknown unit '{self.unit}'; accepted: {', '.join(UNITS)}")
        if not 0 <= self.dropout < 1:
            raise LoraComposeError(f"dropout must be in [0, 1), got {self.dropout}")
        if not self.datasets:
            raise LoraComposeError("no dataset given; name at least one with --data")

    def data_options(self) -> DataOptions:
        return DataOptions(self.text_column, self.label_column, self.attribute, self.min_confidence,
                           SplitSizes(self.validation_fraction, self.test_fraction))

    def settings(self) -> dict:
        """The settings a checkpoint must share with a run that resumes it."""
        return json.loads(json.dumps(asdict(self)))


@dataclass
class TrainingTexts:
    """The label's texts from each dataset, mixed, with the provenance the module records."""

    train: list[str]
    validation: list[str]
    attribute: str
    sources: list[dict] = field(default_factory=list)
    data_hash: str = ""


def collect_texts(config: TrainConfig) -> TrainingTexts:
    """Load each dataset, check the label, take its texts and mix them (no model needed)."""
    train_sources, validation_sources, provenance, attributes = [], [], [], []
    for spec in config.datasets:
        dataset = load_attribute_dataset(spec, config.data_options())
        dataset.check_label(config.label)
        train = dataset.texts("train", config.label)
        validation = dataset.texts("validation", config.label)
        if config.unit == "sentence":
            train, validation = sentence_units(train), sentence_units(validation)
        if len(train) < config.min_examples:
            raise LoraComposeError(
                f"label '{config.label}' has {len(train)} training examples in dataset '{dataset.name}'; "
                f"at least {config.min_examples} are needed (see --min-examples)"
            )
        train_sources.append(train)
        validation_sources.append(validation)
        attributes.append(dataset.attribute)
        provenance.append({"name": dataset.name, "source": dataset.source, "content_hash": dataset.content_hash,
                           "train_texts": len(train)})
    mixing = Mixing.parse(config.mixing)
    for entry, share in zip(provenance, mixing.shares([len(s) for s in train_sources])):
        entry["share"] = round(share, 6)
    # Validation draws equally from each dataset that has validation texts (none: no validation loss).
    validation_sources = [texts for texts in validation_sources if texts]
    validation = mix_sources(validation_sources, Mixing("balanced"), config.seed) if validation_sources else []
    hashed = json.dumps({"label": config.label, "mixing": str(mixing), "unit": config.unit,
                         "datasets": [p["content_hash"] for p in provenance]}, sort_keys=True)
    return TrainingTexts(mix_sources(train_sources, mixing, config.seed), validation,
                         "+".join(dict.fromkeys(attributes)), provenance, hashlib.sha256(hashed.encode()).hexdigest())


def pack_rows(texts: TrainingTexts, tokenizer, config: TrainConfig) -> tuple[list[dict], list[dict]]:
    """Tokenize and pack; train rows are marked so the collator counts their tokens."""
    def pack(items):
        return pack_documents(tokenize_documents(tokenizer, items, config.seq_len, config.long_texts),
                              config.seq_len, tokenizer.pad_token_id)

    train_rows = [{**row, "train": True} for row in pack(texts.train)]
    return train_rows, pack(texts.validation)[: config.eval_rows]


def _work_dir(out: Path) -> Path:
    return out.with_name(out.name + ".training")


def _check_resume(work: Path, settings: dict) -> Path:
    checkpoint = latest_complete(work)  # a checkpoint a crash left half-written is ignored
    if checkpoint is None:
        raise LoraComposeError(f"--resume: no checkpoint to resume in '{work}'; run without --resume to start")
    if not (work / RUN_FILE).is_file():
        raise LoraComposeError(f"--resume: '{work}' has checkpoints but no {RUN_FILE}; drop --resume to start over")
    try:
        recorded = json.loads((work / RUN_FILE).read_text())["settings"]
    except (ValueError, KeyError, TypeError):
        raise LoraComposeError(f"--resume: '{work / RUN_FILE}' is unreadable; drop --resume to start over") from None
    differing = sorted(k for k in settings.keys() | recorded.keys() if settings.get(k) != recorded.get(k))
    if differing:
        details = "; ".join(f"{k}: checkpoint {recorded.get(k)!r}, now {settings.get(k)!r}" for k in differing)
        raise LoraComposeError(
            f"--resume: settings differ from the checkpoint's in '{work}' ({details}); "
            "use the same settings, or drop --resume to start over"
        )
    return checkpoint


def _peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


@dataclass
class TrainedModule:
    path: Path  # the module directory
    model: object  # the trained PeftModel, still in memory
    metadata: dict  # what was written to loracompose.json


def train_module(config: TrainConfig, out: str | Path, *, overwrite: bool = False, resume: bool = False,
                 callbacks: list | None = None, progress: bool = True) -> TrainedModule:
    """Train one QLoRA module and write it to `out` (a PEFT adapter + loracompose.json).

    The steps: check `out`; read and pack the data (bad data fails before the model loads); wrap
    the base in a LoRA adapter (`_adapted_model`); run transformers' Trainer (`_run_trainer`);
    write the adapter and its metadata atomically (`_write_module`). `callbacks` are extra
    transformers TrainerCallbacks (tests use one to kill a run).
    """
    from loracompose.models import load_base

    out = Path(out)
    _check_out(out, overwrite)
    work = _work_dir(out)
    settings = config.settings()
    checkpoint = _check_resume(work, settings) if resume else None

    data = collect_texts(config)  # bad data fails here, before the model is loaded
    base = load_base(config.model, quantize=config.quantize)
    train_rows, validation_rows = pack_rows(data, base.tokenizer, config)
    if not resume and work.exists():
        log.info("starting over: removing the earlier unfinished run in %s", work)
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    drop_partial(work)
    write_text_atomic(work / RUN_FILE, json.dumps({"settings": settings, "data_hash": data.data_hash}, indent=2))

    model = _adapted_model(base.model, config)
    record = {"settings": settings, **_run_trainer(model, config, out, work, train_rows, validation_rows,
                                                    checkpoint, resume, callbacks, progress)}
    metadata = {
        "name": module_name(config.label, [d["name"] for d in data.sources]),
        "attribute": data.attribute,
        "label": config.label,
        "datasets": data.sources,
        "mixing": str(Mixing.parse(config.mixing)),
        "data_hash": data.data_hash,
        "base": base.fingerprint,
        "training": record,
        "loracompose_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    _write_module(model, metadata, out, work)
    log.info("module written to %s (%d steps, validation loss %s)", out, record["steps"], record["validation_loss"])
    model.eval()
    return TrainedModule(out, model, metadata)


def _check_out(out: Path, overwrite: bool) -> None:
    if (out / METADATA_FILE).exists() and not overwrite:
        raise LoraComposeError(f"'{out}' already holds a module; pass --overwrite to replace it")
    if out.exists() and not (out / METADATA_FILE).exists() and any(out.iterdir()) and not overwrite:
        raise LoraComposeError(f"'{out}' exists and is not empty; choose another --out or pass --overwrite")


def _adapted_model(model, config: TrainConfig):
    """The base wrapped in a fresh LoRA adapter (PEFT), ready for k-bit training when quantised."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import set_seed

    model.config.use_cache = False  # a KV cache would disable the packed (block-diagonal) attention mask
    if config.quantize == "nf4":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=config.gradient_checkpointing)
    elif config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    lora = LoraConfig(r=config.rank, lora_alpha=config.alpha, lora_dropout=config.dropout,
                      target_modules=config.target_modules, bias="none", task_type="CAUSAL_LM")
    set_seed(config.seed)  # LoRA A is initialised randomly here, before Trainer seeds anything
    return get_peft_model(model, lora)


def _training_arguments(config: TrainConfig, work: Path, has_validation: bool, resume: bool):
    from transformers import TrainingArguments

    evaluating = bool(config.eval_every and has_validation)
    return TrainingArguments(
        output_dir=str(work),
        max_steps=config.steps,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay,
        logging_steps=max(1, min(10, config.steps // 20)),
        logging_nan_inf_filter=False,  # a NaN loss is logged as NaN (and stops the run), not hidden by an average
        eval_strategy="steps" if evaluating else "no",
        eval_steps=config.eval_every or None,
        eval_on_start=evaluating and not resume,  # the untrained baseline
        save_strategy="steps" if config.save_every else "no",
        save_steps=config.save_every or config.steps,
        save_total_limit=2,
        seed=config.seed,
        data_seed=config.seed,
        report_to="none",
        use_cpu=not torch.cuda.is_available(),
        remove_unused_columns=False,  # position_ids and labels are ours, not in the model signature
        dataloader_num_workers=0,
        disable_tqdm=True,  # LossProgressCallback draws the bar
    )


def _run_trainer(model, config: TrainConfig, out: Path, work: Path, train_rows, validation_rows, checkpoint,
                 resume: bool, callbacks: list | None, progress: bool) -> dict:
    """Train with transformers' Trainer; returns the training record (losses, throughput, memory)."""
    from transformers import PrinterCallback, Trainer

    from loracompose.progress import LossProgressCallback

    collator = PackedCollator()
    guard = divergence_guard()
    args = _training_arguments(config, work, bool(validation_rows), resume)
    trainer = atomic_trainer(Trainer)(model=model, args=args, train_dataset=train_rows,
                                      eval_dataset=validation_rows or None, data_collator=collator,
                                      callbacks=[LossProgressCallback(enabled=progress), guard, *(callbacks or [])])
    trainer.remove_callback(PrinterCallback)  # it prints raw log dicts; the bar shows the losses
    started = time.perf_counter()
    try:
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    except OSError as exc:
        if disk_full(exc):
            raise disk_full_error(out, work) from None
        raise
    if guard.diverged:
        step, loss = guard.diverged
        shutil.rmtree(work, ignore_errors=True)
        raise LoraComposeError(f"training diverged: the training loss was {loss} at step {step}, so no module was "
                               f"written; lower --learning-rate (now {config.learning_rate:g})")
    elapsed = time.perf_counter() - started
    evals = [e for e in trainer.state.log_history if "eval_loss" in e and e["step"] == trainer.state.global_step]
    if evals:  # already measured at the last step
        validation_loss = evals[-1]["eval_loss"]
    else:
        validation_loss = trainer.evaluate()["eval_loss"] if validation_rows else None

    history = finite_history([e for e in trainer.state.log_history if "loss" in e or "eval_loss" in e])
    train_losses = [entry["loss"] for entry in history if "loss" in entry]
    return {
        "steps": trainer.state.global_step,
        "resumed_from": checkpoint.name if checkpoint else None,
        "train_loss": finite_or_none(train_losses[-1] if train_losses else None),
        "first_train_loss": finite_or_none(train_losses[0] if train_losses else None),
        "initial_validation_loss": finite_or_none(next(
            (e["eval_loss"] for e in history if "eval_loss" in e and e["step"] == 0), None)),
        "validation_loss": finite_or_none(validation_loss),
        "loss_history": history,
        "train_rows": len(train_rows),
        "real_tokens_trained": collator.real_train_tokens,
        "seconds": round(elapsed, 2),
        "real_tokens_per_second": round(collator.real_train_tokens / elapsed, 1) if elapsed > 0 else None,
        "peak_memory_mb": round(_peak_memory_mb(), 1),
        "device": str(model.device),
    }


def _write_module(model, metadata: dict, out: Path, work: Path) -> None:
    """The adapter and loracompose.json, written atomically; the run's work directory removed after."""
    try:
        with atomic_directory(out, overwrite=True) as staging:
            model.save_pretrained(staging)
            write_metadata(staging, metadata)
    except OSError as exc:
        if disk_full(exc):
            raise disk_full_error(out, work) from None
        raise
    shutil.rmtree(work, ignore_errors=True)
