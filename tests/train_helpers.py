"""A short training run on the tiny model and real packaged data (Rotten Tomatoes, positive)."""

from __future__ import annotations

from loracompose.train import TrainConfig


def tiny_train_config(model_dir, **overrides) -> TrainConfig:
    """8 steps of 4 × 32 tokens at a high learning rate (the random tiny model moves fast), checkpoint every 4."""
    settings = dict(model=str(model_dir), datasets=["rotten_tomatoes"], label="positive", steps=8,
                    batch_size=4, seq_len=32, learning_rate=1e-2, warmup_steps=0, eval_every=4, eval_rows=4,
                    save_every=4, dropout=0.1)
    settings.update(overrides)
    return TrainConfig(**settings)
