"""A module bank: several LoRA modules read (with safetensors only) and checked against one base.

Each module becomes, per adapted layer, a pair (A, B) and a scale s:

    ΔW = s · B · A        A: (r, d_in), B: (d_out, r)
    s  = alpha / r        (alpha / sqrt(r) for rsLoRA; alpha and r may differ per layer)

Modules may differ in rank, alpha and target layers. A module is refused, with a
message that names it, if its files cannot be read or point outside its directory,
a tensor is not a 2-D float matrix or holds NaN/Inf, a scale or ΔW is not finite
in float32, a target layer is missing from the base, a shape disagrees with the
base's layer, or the base fingerprint it recorded does not match.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from loracompose.errors import LoraComposeError
from loracompose.models import fingerprint_differences, linear_layers
from loracompose.modules import ADAPTER_WEIGHTS, ModuleInfo, is_module, module_file, read_module

_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<layer>.+)\.lora_(?P<side>[AB])(?:\.[^.]+)?\.weight$")
_UNSUPPORTED = {"use_dora": "DoRA", "lora_bias": "LoRA bias"}
_FLOAT32_MAX = float(torch.finfo(torch.float32).max)


@dataclass
class LoraPair:
    """One module's update at one layer: ΔW = scale · B @ A."""

    A: torch.Tensor  # (r, d_in)
    B: torch.Tensor  # (d_out, r)
    scale: float

    @property
    def rank(self) -> int:
        return self.A.shape[0]

    def delta(self) -> torch.Tensor:
        """ΔW (d_out, d_in), in float32."""
        return self.scale * (self.B.float() @ self.A.float())


@dataclass
class LoadedModule:
    info: ModuleInfo
    layers: dict[str, LoraPair]  # base-model layer name → pair

    @property
    def name(self) -> str:
        return self.info.name


def _layer_scale(config: dict, layer: str, rank: int) -> float:
    from peft.utils.other import get_pattern_key  # PEFT's own alpha_pattern lookup (a layer-name suffix)

    patterns = config.get("alpha_pattern") or {}
    alpha = float(patterns.get(get_pattern_key(list(patterns), layer), config["lora_alpha"]))
    return alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank


def _load_tensors(info: ModuleInfo) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(module_file(info.path, ADAPTER_WEIGHTS)))
    except LoraComposeError:
        raise
    except Exception as exc:  # safetensors' own errors: truncated, empty, not a safetensors file
        raise LoraComposeError(f"module '{info.name}': {ADAPTER_WEIGHTS} cannot be read (truncated, empty or not "
                               f"a safetensors file: {str(exc)[:80]})") from None


def read_lora_pairs(info: ModuleInfo) -> dict[str, LoraPair]:
    """Group an adapter's tensors into per-layer (A, B) pairs with their scales.

    Refused, naming the module: unreadable weights, a tensor that is not a 2-D floating-point
    LoRA A/B of rank >= 1, NaN/Inf values, and a scale or an update ΔW that is not finite in float32.
    """
    config = info.adapter_config
    for flag, what in _UNSUPPORTED.items():
        if config.get(flag):
            raise LoraComposeError(f"module '{info.name}' uses {what}, which composition does not support")
    if config.get("modules_to_save"):
        raise LoraComposeError(
            f"module '{info.name}' saves whole modules ({str(config['modules_to_save'])[:80]}); "
            "only additive LoRA updates can be composed"
        )
    tensors = _load_tensors(info)
    sides: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        match = _KEY.match(key)
        if match is None:
            raise LoraComposeError(f"module '{info.name}' has a tensor '{key[:120]}' that is not a LoRA A/B weight "
                                   "(embedding LoRA and other adapter kinds are not supported)")
        if not tensor.is_floating_point() or tensor.ndim != 2 or 0 in tensor.shape:
            raise LoraComposeError(f"module '{info.name}' tensor '{key[:120]}' is {tensor.dtype} of shape "
                                   f"{tuple(tensor.shape)}; a LoRA weight is a 2-D floating-point matrix of rank >= 1")
        if not torch.isfinite(tensor).all():
            raise LoraComposeError(f"module '{info.name}' has NaN or Inf values in tensor '{key[:120]}'")
        sides.setdefault(match["layer"], {})[match["side"]] = tensor
    if not sides:
        raise LoraComposeError(f"module '{info.name}': {ADAPTER_WEIGHTS} holds no LoRA tensors")
    pairs = {}
    for layer, ab in sides.items():
        if set(ab) != {"A", "B"}:
            raise LoraComposeError(f"module '{info.name}' has lora_A or lora_B missing at layer {layer[:120]}")
        A, B = ab["A"], ab["B"]
        if A.shape[0] != B.shape[1]:
            raise LoraComposeError(f"module '{info.name}' layer {layer[:120]}: A is {tuple(A.shape)} but B is "
                                   f"{tuple(B.shape)}; their ranks must agree")
        pair = LoraPair(A, B, _layer_scale(config, layer, A.shape[0]))
        if not abs(pair.scale) < _FLOAT32_MAX or not torch.isfinite(pair.delta()).all():
            raise LoraComposeError(f"module '{info.name}' layer {layer[:120]}: its update alpha/r · B·A is not "
                                   f"finite in float32 (scale {pair.scale:.3g}); check lora_alpha and the weights")
        pairs[layer] = pair
    return pairs


def _check_against_base(module: LoadedModule, base_layers: dict[str, torch.nn.Module],
                        base_fingerprint: dict | None) -> None:
    recorded = module.info.metadata.get("base")
    if recorded and base_fingerprint:
        try:
            problems = fingerprint_differences(recorded, base_fingerprint)
        except (AttributeError, TypeError, ValueError):
            raise LoraComposeError(f"module '{module.name}' records a malformed base fingerprint "
                                   "(loracompose.json 'base')") from None
        if problems:
            raise LoraComposeError(f"module '{module.name}' was made for another base: " + "; ".join(problems[:3]))
    for layer, pair in module.layers.items():
        if layer not in base_layers:
            raise LoraComposeError(f"module '{module.name}' targets layer {layer[:120]}, which the base does not "
                                   "have")
        target = base_layers[layer]
        expected = (int(target.out_features), int(target.in_features))
        got = (pair.B.shape[0], pair.A.shape[1])
        if got != expected:
            raise LoraComposeError(
                f"module '{module.name}' layer {layer}: the adapter is for a {got[0]}×{got[1]} (out×in) layer, "
                f"the base's is {expected[0]}×{expected[1]}"
            )


def discover_modules(directory: str | Path, refused: dict[str, str] | None = None) -> dict[str, Path]:
    """Module directories directly under `directory`, by module name.

    Two directories claiming one name are an error naming both (neither wins). With a
    `refused` dict, a bad module is recorded there (directory name → message) and skipped
    instead of raising: a server then serves the good ones.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise LoraComposeError(f"modules directory '{directory}' does not exist")
    found: dict[str, Path] = {}
    claims: dict[str, list[Path]] = {}
    for child in sorted(directory.iterdir()):
        if not is_module(child):
            continue
        try:
            claims.setdefault(read_module(child).name, []).append(child)
        except LoraComposeError as exc:
            if refused is None:
                raise
            refused[child.name] = str(exc)
    for name, children in claims.items():
        if len(children) > 1:
            message = (f"module name '{name}' is claimed by {len(children)} directories "
                       f"({', '.join(c.name for c in children)}); give each module its own name")
            if refused is None:
                raise LoraComposeError(message)
            refused.update({c.name: message for c in children})
        else:
            found[name] = children[0]
    if not found and not refused:
        raise LoraComposeError(f"no modules in '{directory}' (a module is a PEFT LoRA adapter directory)")
    return found


class ModuleBank:
    """Modules loaded for one base model, in a fixed order (their index in weight vectors)."""

    def __init__(self, model: torch.nn.Module, paths: dict[str, Path] | list[Path], fingerprint: dict | None = None,
                 refused: dict[str, str] | None = None):
        """`refused`: record a module that fails its checks there (name → message) and go on without it."""
        if isinstance(paths, list):
            paths = {read_module(p).name: Path(p) for p in paths}
        base_layers = linear_layers(model)
        self.modules: list[LoadedModule] = []
        for name, path in paths.items():
            try:
                info = read_module(path)
                info.name = name
                module = LoadedModule(info, read_lora_pairs(info))
                _check_against_base(module, base_layers, fingerprint)
            except LoraComposeError as exc:
                if refused is None:
                    raise
                refused[name] = str(exc)
                continue
            self.modules.append(module)
        self.names = [m.name for m in self.modules]

    @classmethod
    def from_loaded(cls, modules: list[LoadedModule]) -> "ModuleBank":
        """A bank of modules already in memory (e.g. a merge result), checked by whoever made them."""
        bank = cls.__new__(cls)
        bank.modules, bank.names = list(modules), [m.name for m in modules]
        return bank

    def index(self, name: str) -> int:
        if name not in self.names:
            raise LoraComposeError(f"unknown module '{name}'; known modules: {', '.join(self.names)}")
        return self.names.index(name)

    def __getitem__(self, name: str) -> LoadedModule:
        return self.modules[self.index(name)]

    def __len__(self) -> int:
        return len(self.modules)
