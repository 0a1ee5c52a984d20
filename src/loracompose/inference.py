"""A base model with one module attached, ready to generate (composition: issue #3)."""

from __future__ import annotations

from loracompose.errors import LoraComposeError
from loracompose.models import fingerprint_differences, load_base
from loracompose.modules import check_finite, read_module


def load_for_inference(model_spec: str, module_path: str | None = None, quantize: str | None = None):
    """Load the base (dense by default) and, if given, one module on top of it.

    The module is checked first: its tensors must be finite and the base
    fingerprint it recorded must match the base's layer shapes.
    Returns (model, tokenizer).
    """
    base = load_base(model_spec, quantize=quantize)
    if module_path is None:
        return base.model, base.tokenizer
    from peft import PeftModel

    info = read_module(module_path)
    check_finite(info.path)
    recorded = info.metadata.get("base")
    if recorded:
        problems = fingerprint_differences(recorded, base.fingerprint)
        if problems:
            raise LoraComposeError(
                f"module '{info.name}' was made for another base than '{model_spec}': " + "; ".join(problems[:5])
            )
    model = PeftModel.from_pretrained(base.model, str(info.path), adapter_name="module")
    model.eval()
    return model, base.tokenizer
