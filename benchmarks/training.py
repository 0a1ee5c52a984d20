"""Figure 3 — training: the project's packed QLoRA step vs a plain Trainer + PEFT + bitsandbytes reference.

    project    `loracompose.train.train_module` as the CLI runs it: texts cut to seq_len,
               EOS-ended, packed several to a row (position ids restart per text)
    reference  the standard QLoRA recipe: the same NF4 base, `prepare_model_for_kbit_training`,
               the same LoraConfig (rank, alpha, dropout, all linear projections), the same
               TrainingArguments (batch, learning rate, schedule, seed); one text per row,
               `tokenizer(..., truncation=True, max_length=seq_len)` and transformers'
               `DataCollatorForLanguageModeling` (padding to the longest row of each batch)

Both train on the same texts (the label's training texts, in the same order).
Each runs in its own child process, so its peak resident memory (ru_maxrss) is
its own; the two runs of a dataset are back to back, in alternating order.

Throughput counts real text tokens only (no padding): per optimiser step k,
tokens_k / (t_end(k) − t_end(k−1)); the first step is warm-up and not counted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import REPO, Settings, summary

MARKER = "BENCH-TRAINING-RESULT "
LABEL = "positive"


def _recording(collator_cls):
    """A subclass of a collator that records the real tokens of each batch it builds, in order."""

    class Recording(collator_cls):
        counts: list[int] = []

        def __call__(self, rows, *args, **kwargs):
            batch = super().__call__(rows, *args, **kwargs)
            if "attention_mask" in batch:  # reference rows: one text each, padded
                Recording.counts.append(int(batch["attention_mask"].sum()))
            else:  # packed rows know their real tokens
                Recording.counts.append(sum(r["n_tokens"] for r in rows if r.get("train")))
            return batch

    return Recording


def _timer():
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        """Wall-clock time at the start of training and at the end of every optimiser step."""

        def __init__(self):
            self.marks: list[float] = []

        def on_train_begin(self, args, state, control, **kwargs):
            self.marks = [time.perf_counter()]

        def on_step_end(self, args, state, control, **kwargs):
            self.marks.append(time.perf_counter())

    return StepTimer()


def _train_config(job: dict):
    from loracompose.train import TrainConfig

    return TrainConfig(model=job["model"], datasets=[job["dataset"]], label=LABEL, steps=job["steps"],
                       eval_every=0, save_every=0)


def _project(job: dict, timer, work: Path) -> list[int]:
    import loracompose.train as train

    recording = _recording(train.PackedCollator)
    train.PackedCollator = recording  # count each batch's real tokens in the project's own run
    train.train_module(_train_config(job), work / "module", callbacks=[timer], progress=False)
    return recording.counts


def _reference(job: dict, timer, work: Path) -> list[int]:
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments, set_seed

    from loracompose.models import load_base
    from loracompose.train import collect_texts

    config = _train_config(job)
    texts = collect_texts(config).train
    base = load_base(config.model, quantize=config.quantize)  # the same NF4 loading as the project
    tokenizer = base.tokenizer
    rows = [{"input_ids": ids} for ids in tokenizer(texts, truncation=True, max_length=config.seq_len)["input_ids"]]
    model = base.model
    model.config.use_cache = False
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    set_seed(config.seed)
    model = get_peft_model(model, LoraConfig(r=config.rank, lora_alpha=config.alpha, lora_dropout=config.dropout,
                                             target_modules=config.target_modules, bias="none",
                                             task_type="CAUSAL_LM"))
    recording = _recording(DataCollatorForLanguageModeling)
    args = TrainingArguments(
        output_dir=str(work / "reference"), max_steps=config.steps, per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate, lr_scheduler_type="cosine", warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay, logging_steps=max(1, min(10, config.steps // 20)), eval_strategy="no",
        save_strategy="no", seed=config.seed, data_seed=config.seed, report_to="none",
        use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0, disable_tqdm=True)
    Trainer(model=model, args=args, train_dataset=rows, data_collator=recording(tokenizer, mlm=False),
            callbacks=[timer]).train()
    return recording.counts


def child(job: dict) -> dict:
    """One training run in this process; returns its per-step tokens/s and peak memory."""
    import logging

    from loracompose.train import _peak_memory_mb

    logging.disable(logging.WARNING)
    timer = _timer()
    with tempfile.TemporaryDirectory() as tmp:
        counts = (_project if job["method"] == "project" else _reference)(job, timer, Path(tmp))
    durations = [b - a for a, b in zip(timer.marks, timer.marks[1:])]
    steps = len(durations)
    counts = counts[:steps]  # the data loader may have built one batch ahead
    timed = range(1, steps)  # step 0 is warm-up
    return {"steps": steps, "timed_steps": len(timed),
            "real_tokens_per_step": summary([counts[k] for k in timed]),
            "step_s": summary([durations[k] for k in timed]),
            "real_tokens_per_s_per_step": summary([counts[k] / durations[k] for k in timed]),
            "real_tokens_per_s": sum(counts[k] for k in timed) / sum(durations[k] for k in timed),
            "peak_memory_mb": _peak_memory_mb()}


def _spawn(job: dict) -> dict:
    env = {**os.environ, "TRANSFORMERS_VERBOSITY": "error", "TQDM_DISABLE": "1"}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.training", "--child", json.dumps(job)], cwd=REPO,
                          env=env, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARKER)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"training benchmark child {job} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len(MARKER):])


def run(settings: Settings, model_dir: str) -> dict:
    from loracompose.train import TrainConfig

    defaults = TrainConfig(model=settings.model, datasets=["x"], label=LABEL)
    report = {"setting": {"label": LABEL, "steps_per_run": settings.train_steps, "timed_steps": settings.train_steps - 1,
                          "batch_size": defaults.batch_size, "seq_len": defaults.seq_len, "rank": defaults.rank,
                          "alpha": defaults.alpha, "targets": defaults.target_modules, "quantize": defaults.quantize,
                          "reference": "Trainer + PEFT + bitsandbytes NF4, prepare_model_for_kbit_training, "
                                       "truncation to seq_len, DataCollatorForLanguageModeling (dynamic padding)"}}
    for i, dataset in enumerate(settings.train_datasets):
        order = ("project", "reference") if i % 2 == 0 else ("reference", "project")
        results = {method: _spawn({"model": settings.model, "dataset": dataset,
                                   "method": method, "steps": settings.train_steps}) for method in order}
        project, reference = results["project"], results["reference"]
        report[dataset] = {
            "project": project, "reference": reference,
            "ratio_tokens_per_s": project["real_tokens_per_s"] / reference["real_tokens_per_s"],
            "ratio_peak_memory": project["peak_memory_mb"] / reference["peak_memory_mb"],
        }
    return report


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(MARKER + json.dumps(child(json.loads(sys.argv[2]))), flush=True)
    else:
        sys.exit("usage: python -m benchmarks.training --child JOB_JSON (run by benchmarks.run)")
