"""Apply a weight-level method to modules of a bank, in memory or to a new module directory."""

from __future__ import annotations

from pathlib import Path

from loracompose import __version__
from loracompose.compose.bank import LoadedModule, LoraPair, ModuleBank
from loracompose.compose.export import write_adapter
from loracompose.compose.methods import WEIGHT_METHODS, Method, get_method
from loracompose.compose.weight_methods import MergeOptions
from loracompose.errors import LoraComposeError
from loracompose.modules import ModuleInfo


def merge_composition(bank: ModuleBank, composition: dict[str, float], method_name: str,
                      layer_order: list[str], options: MergeOptions = MergeOptions()) -> dict[str, LoraPair]:
    """Per-layer (A, B) of the merged adapter. `layer_order` is the base model's layer order
    (dare's random masks are drawn layer by layer in that order, as PEFT does)."""
    method = get_method(method_name)
    if method.level != "weight":
        raise LoraComposeError(f"'{method_name}' is a {method.level}-level method, not a weight merge; "
                               f"weight-level methods: {', '.join(WEIGHT_METHODS)}")
    return merge_prepared(bank, method.prepare(composition), method, layer_order, options)


def merge_prepared(bank: ModuleBank, weights: dict[str, float], method: Method, layer_order: list[str],
                   options: MergeOptions) -> dict[str, LoraPair]:
    """`method.merge` over `weights` as applied (already `method.prepare`d), layers in `layer_order`."""
    modules = [bank[name] for name in weights]
    touched = {layer for m in modules for layer in m.layers}
    layers = [layer for layer in layer_order if layer in touched]
    return method.merge(modules, list(weights.values()), layers, options)


def merged_module(pairs: dict[str, LoraPair], name: str) -> LoadedModule:
    """Wrap merged pairs as a module that a ModuleBank/ComposedModel can use without touching disk."""
    rank = max(p.rank for p in pairs.values())
    info = ModuleInfo(Path("<in memory>"), name, {"r": rank, "lora_alpha": rank}, {})
    return LoadedModule(info, pairs)


def write_merged(bank: ModuleBank, composition: dict[str, float], method_name: str, layer_order: list[str],
                 out: str | Path, *, base_model_name: str, fingerprint: dict, options: MergeOptions = MergeOptions(),
                 overwrite: bool = False) -> Path:
    if Path(out).exists() and not overwrite:
        raise LoraComposeError(f"'{out}' already exists; choose another --out or pass --overwrite")
    pairs = merge_composition(bank, composition, method_name, layer_order, options)
    sources = {m.name: m.info.metadata for m in bank.modules if m.name in composition}
    metadata = {
        "name": Path(out).name,
        "attribute": "+".join(dict.fromkeys(str(s.get("attribute")) for s in sources.values() if s)) or None,
        "label": "+".join(str(s.get("label")) for s in sources.values() if s) or None,
        "composition": {"method": method_name, "weights": composition, "options": vars(options),
                        "modules": {n: str(bank[n].info.path) for n in composition}},
        "base": fingerprint,
        "loracompose_version": __version__,
    }
    return write_adapter(pairs, out, base_model_name=base_model_name, metadata=metadata, overwrite=overwrite)
