"""The study's model shapes, built from their configs with random weights (nothing is downloaded).

    llama-3-8b     Meta-Llama-3-8B          32 layers, hidden 4096, MLP 14336, 32/8 heads, vocab 128256
    llama-3.2-3b   Llama-3.2-3B             28 layers, hidden 3072, MLP 8192, 24/8 heads, vocab 128256, tied
    mistral-7b     Mistral-7B-v0.1          32 layers, hidden 4096, MLP 14336, 32/8 heads, vocab 32000

The config values are copied from each model's published config.json; `PARAMETERS`
holds the published parameter counts, and `check_shapes` builds every config on the
`meta` device (no memory) and compares, so a typo in a number fails on CPU.

`tiny` keeps a config's architecture (model type, RoPE settings, tied embeddings,
sliding window) at toy sizes, for the CPU dry run. Modules are random LoRA pairs
held in memory (rank 8, alpha 16, the seven projections of every block — what a
trained module costs; its values are irrelevant to timing).
"""

from __future__ import annotations

import torch

SHAPES: dict[str, dict] = {
    "llama-3-8b": dict(
        model_type="llama", vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192, rms_norm_eps=1e-5,
        rope_theta=500000.0, tie_word_embeddings=False, bos_token_id=128000, eos_token_id=128001),
    "llama-3.2-3b": dict(
        model_type="llama", vocab_size=128256, hidden_size=3072, intermediate_size=8192, num_hidden_layers=28,
        num_attention_heads=24, num_key_value_heads=8, head_dim=128, max_position_embeddings=131072,
        rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=True, bos_token_id=128000, eos_token_id=128001,
        rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 8192}),
    "mistral-7b": dict(
        model_type="mistral", vocab_size=32000, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=32768, rms_norm_eps=1e-5,
        rope_theta=10000.0, sliding_window=4096, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2),
}

# Published parameter counts (safetensors index totals / model cards).
PARAMETERS = {"llama-3-8b": 8_030_261_248, "llama-3.2-3b": 3_212_749_824, "mistral-7b": 7_241_732_096}

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
TINY = dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, head_dim=16)


def make_config(shape: dict):
    """A transformers config (LlamaConfig / MistralConfig) from one of the dicts above."""
    from transformers import LlamaConfig, MistralConfig

    values = dict(shape)
    config_class = {"llama": LlamaConfig, "mistral": MistralConfig}[values.pop("model_type")]
    return config_class(**values)


def tiny(shape: dict) -> dict:
    """The same architecture at toy sizes (hidden 64, 2 layers, vocabulary 512)."""
    values = {**shape, **TINY, "bos_token_id": 1, "eos_token_id": 2}
    if "rope_scaling" in values:
        values["max_position_embeddings"] = 16384  # must exceed the scaling's original 8192
    return values


def build(shape: dict, device: torch.device | str, dtype: torch.dtype = torch.bfloat16) -> torch.nn.Module:
    """A causal LM of this shape with random weights, allocated directly on `device` (`meta`: no memory).

    Built under the device context so an 8B model never passes through CPU memory;
    transformers' own initialisation draws the weights (normal, std 0.02) there.
    """
    from transformers import AutoModelForCausalLM

    with torch.device(device):
        model = AutoModelForCausalLM.from_config(make_config(shape), dtype=dtype)
    return model.eval()


def parameter_count(shape: dict) -> int:
    return sum(p.numel() for p in build(shape, "meta").parameters())


def check_shapes() -> dict[str, dict]:
    """Every study shape built on `meta`: its parameter count against the published one."""
    report = {}
    for name, shape in SHAPES.items():
        count = parameter_count(shape)
        report[name] = {"parameters": count, "published": PARAMETERS[name], "matches": count == PARAMETERS[name]}
    return report


def random_modules(model: torch.nn.Module, count: int, rank: int = 8, alpha: float = 16.0, seed: int = 0) -> list:
    """`count` in-memory modules (LoadedModule) with random A and B (B ≠ 0) on every projection of `model`.

    A ~ N(0, 1/d_in) and B ~ N(0, 0.02²), on the model's device in its dtype.
    """
    from loracompose.compose.bank import LoraPair
    from loracompose.compose.merge import merged_module
    from loracompose.models import linear_layers

    layers = {n: m for n, m in linear_layers(model).items() if n.rsplit(".", 1)[-1] in PROJECTIONS}
    weight = next(iter(layers.values())).weight
    generator = torch.Generator(device=weight.device).manual_seed(seed)
    modules = []
    for index in range(count):
        pairs = {}
        for name, layer in layers.items():
            A = torch.randn(rank, layer.in_features, generator=generator, device=weight.device) / layer.in_features ** 0.5
            B = 0.02 * torch.randn(layer.out_features, rank, generator=generator, device=weight.device)
            pairs[name] = LoraPair(A.to(weight.dtype), B.to(weight.dtype), alpha / rank)
        module = merged_module(pairs, f"random-{index}")
        module.info.adapter_config["lora_alpha"] = alpha
        modules.append(module)
    return modules


def peft_with(model: torch.nn.Module, modules: list, rank: int = 8, alpha: float = 16.0):
    """A PEFT model over `model` with `modules` loaded as adapters (same A and B, adapter dtype = model dtype).

    `autocast_adapter_dtype=False`: PEFT's default would keep bf16 adapters in float32 and
    cast every input, which measures a dtype choice rather than the composition method.
    """
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=list(PROJECTIONS), lora_dropout=0.0)
    names = [m.name for m in modules]
    peft_model = get_peft_model(model, config, adapter_name=names[0], autocast_adapter_dtype=False)
    for name in names[1:]:
        peft_model.add_adapter(name, config, autocast_adapter_dtype=False)
    layers = dict(peft_model.base_model.model.named_modules())
    with torch.no_grad():
        for module in modules:
            for layer, pair in module.layers.items():
                lora = layers[layer]
                lora.lora_A[module.name].weight.copy_(pair.A)
                lora.lora_B[module.name].weight.copy_(pair.B)
    return peft_model.eval()
