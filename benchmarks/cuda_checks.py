"""Correctness of the bfloat16 path, as functions of the device: run on CUDA by tests/test_cuda.py and
scripts/gpu-check.sh, on CPU by the script's --dry-run (so the same code runs in CI).

    output_sum    fused output-sum (ComposedModel, bf16)  ==  PEFT's forward with every adapter active,
                  each adapter's scale multiplied by its weight (bf16 base)
    mixed_batch   one batch of sequences with different compositions  ==  each composition alone
    export        the delta-sum adapter written by compose/export, loaded by plain PEFT  ==  fused output-sum
    train_step    one QLoRA step (NF4 base where bitsandbytes runs on the device, else a bf16 LoRA step):
                  finite loss, LoRA weights move, base weights frozen

Each returns a record (what was compared, the largest difference, the tolerance and
`passed`); nothing here needs pytest, pandas or a packaged model, so it runs on a bare
GPU machine with torch, transformers, PEFT and accelerate.

Tolerance for bf16 (one for all three comparisons). bf16 keeps 8 significant bits:
rounding a value x costs up to u·|x|, u = 2⁻⁸ ≈ 0.0039. The two sides do not
round at the same places — the fused layer rounds A_cat, B_cat and h = x·A_catᵀ to
bf16; PEFT runs its LoRA branch in float32 and rounds once when adding it to W0·x;
a batch of 3 and a batch of 1 may use different matmul blockings — so every
adapted layer's output may differ by a few u relative, and the difference then
travels through the following layers (norms, attention, residual adds all round
again) to logits that are themselves bf16 (one ulp of a logit of size 2–4 is 4u).
On CPU the largest difference measured is 3–4u × max|logit| (2 blocks). GPU
kernels accumulate in other orders (tensor cores, split-K), so the tolerance is
12u × max|logit|, 3× what CPU shows. An error in the maths moves the logits by far
more: each check requires the modules to move the logits by more than 10× the
tolerance, and e.g. a 10% error in one module's scale moves them by ~0.1× that effect.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

BF16_UNIT = 2.0 ** -8  # bf16 unit roundoff (8 significant bits)
TOLERANCE_UNITS = 12  # see the module docstring
IDS = [[1, 17, 300, 400, 52, 9, 8, 77], [5, 6, 7, 8, 9, 10, 11, 12], [3, 4, 5, 6, 100, 200, 300, 500]]
WEIGHTS = {"pos": 0.7, "neg": -0.4, "topic": 1.3}
MIXED = [{"pos": 1.0}, {"neg": 0.5, "topic": 1.0}, {"pos": -0.3, "neg": 0.2, "topic": 0.9}]


def tiny_model(out: Path) -> Path:
    """A 2-block random llama (hidden 64, vocabulary 512) with a word-level tokenizer built here.

    Shapes are multiples of 64 so bitsandbytes can quantise every projection to NF4.
    The tokenizer exists because `load_base` loads one; its words are never used.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from benchmarks.shapes import SHAPES, tiny

    values = tiny(SHAPES["llama-3-8b"])
    values.pop("model_type")
    config = LlamaConfig(**values, pad_token_id=0, initializer_range=0.1)  # 0.1: logits of order 1, not 0.01
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out)
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, **{f"w{i}": i for i in range(4, config.vocab_size)}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                            unk_token="<unk>").save_pretrained(out)
    return out


def tiny_adapters(model_dir: Path, root: Path) -> dict[str, Path]:
    """Three PEFT adapters with different ranks, alphas and target layers, B ~ N(0, 0.5²)."""
    from loracompose.testing import random_adapter

    specs = {"pos": (1, 4, 8.0, ["q_proj", "v_proj", "down_proj"]), "neg": (2, 8, 4.0, ["q_proj", "o_proj", "up_proj"]),
             "topic": (3, 2, 2.0, ["q_proj", "v_proj", "down_proj"])}
    return {name: random_adapter(model_dir, root / name, seed, rank, alpha, targets, b_std=0.5)
            for name, (seed, rank, alpha, targets) in specs.items()}


def _base(model_dir: Path, device: str, quantize: str | None = None):
    """The project's own loader (bf16 on CUDA, float32 on CPU), then bf16 on every device."""
    from loracompose.models import load_base

    base = load_base(str(model_dir), quantize=quantize, device=device)
    if quantize is None:
        base.model.to(torch.bfloat16)
    return base


def _composed(model_dir: Path, adapters: dict[str, Path], device: str):
    from loracompose.compose.bank import ModuleBank
    from loracompose.compose.fused import ComposedModel

    base = _base(model_dir, device)
    bank = ModuleBank(base.model, adapters, base.fingerprint)
    return ComposedModel(base.model, bank, dtype=torch.bfloat16), base


@torch.no_grad()
def _logits(model, ids: torch.Tensor) -> torch.Tensor:
    return model(input_ids=ids).logits.float()


def _compare(name: str, got: torch.Tensor, expected: torch.Tensor, bare: torch.Tensor, device: str) -> dict:
    """A record: largest |got − expected| against 12u·max|expected|, and how far the modules moved the logits."""
    scale = float(expected.abs().max())
    tolerance = TOLERANCE_UNITS * BF16_UNIT * scale
    difference = float((got - expected).abs().max())
    effect = float((expected - bare).abs().max())
    passed = math.isfinite(difference) and difference <= tolerance and effect > 10 * tolerance
    return {"check": name, "device": device, "dtype": "bfloat16", "max_abs_difference": difference,
            "difference_in_units": difference / (BF16_UNIT * scale), "tolerance": tolerance,
            "logit_scale": scale, "module_effect": effect, "passed": passed}


def _peft_all_active(model_dir: Path, adapters: dict[str, Path], weights: dict[str, float], device: str):
    """PEFT's forward with every adapter active and each layer's scale multiplied by the adapter's weight."""
    from peft import PeftModel

    from loracompose.testing import activate_weighted

    names = list(weights)
    model = PeftModel.from_pretrained(_base(model_dir, device).model, str(adapters[names[0]]), adapter_name=names[0])
    for name in names[1:]:
        model.load_adapter(str(adapters[name]), adapter_name=name)
    return activate_weighted(model, weights).eval()


def check_output_sum(model_dir: Path, adapters: dict[str, Path], device: str) -> dict:
    ids = torch.tensor(IDS, device=device)
    expected = _logits(_peft_all_active(model_dir, adapters, WEIGHTS, device), ids)
    composed, base = _composed(model_dir, adapters, device)
    bare = _logits(base.model, ids)
    with composed.composition(composed.weights_for([WEIGHTS])):
        got = _logits(composed.model, ids)
    return _compare("output_sum", got, expected, bare, device)


def check_mixed_batch(model_dir: Path, adapters: dict[str, Path], device: str) -> dict:
    ids = torch.tensor(IDS, device=device)
    composed, base = _composed(model_dir, adapters, device)
    bare = _logits(base.model, ids)
    with composed.composition(composed.weights_for(MIXED)):
        mixed = _logits(composed.model, ids)
    alone = []
    for row, composition in enumerate(MIXED):
        with composed.composition(composed.weights_for([composition])):
            alone.append(_logits(composed.model, ids[row : row + 1]))
    return _compare("mixed_batch", mixed, torch.cat(alone), bare, device)


def check_export(model_dir: Path, adapters: dict[str, Path], device: str, scratch: Path) -> dict:
    from peft import PeftModel

    from loracompose.compose.merge import write_merged
    from loracompose.models import linear_layers

    ids = torch.tensor(IDS, device=device)
    composed, base = _composed(model_dir, adapters, device)
    bare = _logits(base.model, ids)
    with composed.composition(composed.weights_for([WEIGHTS])):
        output_sum = _logits(composed.model, ids)
    layer_order = list(linear_layers(composed.detach()))
    out = write_merged(composed.bank, WEIGHTS, "delta-sum", layer_order, scratch / f"exported-{device}",
                       base_model_name=str(model_dir), fingerprint=base.fingerprint, overwrite=True)
    plain = PeftModel.from_pretrained(_base(model_dir, device).model, str(out)).eval()
    return _compare("export", _logits(plain, ids), output_sum, bare, device)


def nf4_support(device: str) -> tuple[bool, str]:
    """Whether bitsandbytes quantises and dequantises NF4 on `device`, and why not."""
    try:
        import bitsandbytes.functional as bnbf

        weight = torch.randn(64, 64, device=device)
        packed, state = bnbf.quantize_4bit(weight, quant_type="nf4")
        error = float((bnbf.dequantize_4bit(packed, state) - weight).abs().max())
        return error < 1.0, f"bitsandbytes NF4 round trip on {device}: max error {error:.3f}"
    except Exception as exc:  # missing package or no build for this device
        return False, f"bitsandbytes NF4 unavailable on {device}: {type(exc).__name__}: {str(exc)[:160]}"


def check_train_step(model_dir: Path, device: str, steps: int = 2) -> dict:
    """`steps` AdamW steps of LoRA (rank 8, the seven projections) on the base as train.py prepares it."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    from benchmarks.shapes import PROJECTIONS

    nf4, why = nf4_support(device)
    base = _base(model_dir, device, quantize="nf4" if nf4 else None)
    model = base.model
    model.config.use_cache = False
    if nf4:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    torch.manual_seed(0)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=list(PROJECTIONS), lora_dropout=0.0))
    model.train()
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    before = {n: p.detach().clone() for n, p in trainable.items()}
    optimizer = torch.optim.AdamW(trainable.values(), lr=1e-3)
    ids = torch.randint(4, model.config.vocab_size, (4, 32), generator=torch.Generator().manual_seed(0)).to(device)
    losses = []
    for _ in range(steps):
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    lora_moved = all(not torch.equal(p.detach(), before[n]) for n, p in trainable.items() if "lora_B" in n)
    base_frozen = all(torch.equal(p.detach(), frozen[n]) for n, p in model.named_parameters() if n in frozen)
    only_lora = all("lora_" in n for n in trainable)
    passed = all(math.isfinite(v) for v in losses) and lora_moved and base_frozen and only_lora
    return {"check": "train_step", "device": device,
            "kind": "nf4" if nf4 else ("bf16" if device != "cpu" else "bf16 (CPU)"), "why": why,
            "compute_dtype": str(getattr(model.get_base_model().config, "dtype", None)), "losses": losses,
            "lora_weights_moved": lora_moved, "base_weights_frozen": base_frozen, "trainable_only_lora": only_lora,
            "passed": passed}


def run_all(device: str, scratch: Path) -> list[dict]:
    """Every check on `device`, with the tiny model and adapters built under `scratch`."""
    model_dir = tiny_model(scratch / "tiny-llama")
    adapters = tiny_adapters(model_dir, scratch / "adapters")
    return [check_output_sum(model_dir, adapters, device), check_mixed_batch(model_dir, adapters, device),
            check_export(model_dir, adapters, device, scratch), check_train_step(model_dir, device)]
