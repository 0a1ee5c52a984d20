"""Shared fixtures: a tiny random llama built here (fast training tests) and small user data files."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest
import torch

logging.getLogger("bitsandbytes").setLevel(logging.ERROR)


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The packaged SmolLM2, dequantised once into the user cache (about 30 s the first time)."""
    from loracompose.models import convert_packaged

    return convert_packaged("smollm2-135m")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, smollm2_dir) -> Path:
    """A 2-layer llama with hidden size 64 and random weights, with SmolLM2's tokenizer.

    Shapes are multiples of 64 so bitsandbytes can quantise every projection to NF4.
    """
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=True,
        initializer_range=0.1,  # larger than the default 0.02 so a few LoRA steps move the loss visibly
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    out = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture()
def labelled_frame() -> pd.DataFrame:
    """40 short texts, 20 per label, plus one duplicate and one HTML line break."""
    good = [f"A wonderful film number {i}, truly great." for i in range(20)]
    bad = [f"A dreadful film number {i}, truly awful." for i in range(20)]
    frame = pd.DataFrame({"review": good + bad + [good[0]], "stars": ["good"] * 20 + ["bad"] * 20 + ["good"]})
    frame.loc[1, "review"] = "Line one<br /><br />line two"
    return frame
