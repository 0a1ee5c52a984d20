import pytest
import torch

from loracompose import LoraComposeError
from loracompose.models import PACKAGED_MODELS, fingerprint_differences, load_base, resolve_model


def test_unknown_model_lists_the_packaged_names():
    with pytest.raises(LoraComposeError, match="unknown model 'smollm3'.*smollm2-135m, gemma3-270m"):
        resolve_model("smollm3")


def test_hub_id_offline_says_to_pass_a_local_path(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(LoraComposeError, match="offline, pass a local model directory"):
        resolve_model("someorg/some-model-that-is-not-cached")


def test_local_directory_without_config(tmp_path):
    with pytest.raises(LoraComposeError, match="has no config.json"):
        resolve_model(str(tmp_path))


def test_nf4_and_dense_loads_share_a_fingerprint(tiny_model_dir):
    import bitsandbytes as bnb

    nf4 = load_base(str(tiny_model_dir), quantize="nf4")
    dense = load_base(str(tiny_model_dir), quantize=None)
    assert isinstance(nf4.model.model.layers[0].self_attn.q_proj, bnb.nn.Linear4bit)
    assert isinstance(dense.model.model.layers[0].self_attn.q_proj, torch.nn.Linear)
    assert nf4.fingerprint["id"] == dense.fingerprint["id"]
    assert nf4.fingerprint["linear_shapes"]["model.layers.1.mlp.down_proj"] == [64, 128]
    assert nf4.fingerprint["vocab_size"] == 49152 and nf4.fingerprint["architecture"] == "LlamaForCausalLM"
    assert fingerprint_differences(nf4.fingerprint, dense.fingerprint) == []
    other = {**dense.fingerprint, "linear_shapes": {**dense.fingerprint["linear_shapes"],
                                                   "model.layers.0.mlp.up_proj": [256, 64]}}
    assert fingerprint_differences(other, dense.fingerprint) == [
        "layer model.layers.0.mlp.up_proj: module expects [256, 64], base has [128, 64]"]
    # NF4 is lossy but close: same argmax on most positions of a random model's logits.
    ids = torch.tensor([[1, 2, 3, 4, 5, 6]])
    with torch.no_grad():
        a, b = nf4.model(ids).logits, dense.model(ids).logits
    assert torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1] > 0.9


def test_each_packaged_model_is_found_in_its_installed_package():
    for name, packaged in PACKAGED_MODELS.items():
        gguf = packaged.locate_gguf()  # the gemma3 chunks are joined and their SHA-256 checked on the way
        with gguf.open("rb") as f:
            assert f.read(4) == b"GGUF", name
        assert gguf.stat().st_size > 50 * 2**20, name  # the whole quantised model, not a stub


# Golden values of the shared tiny model (loracompose.testing.build_tiny_model, seed 0) on fixed ids:
# a change in its initialisation, architecture, loading or NF4 quantisation moves them by > 1e-2.
# Tolerance 1e-4: float32 through two layers; thread count and CPU kernels change the summation
# order, which moved them by < 1e-7 here (1 vs 2 threads).
GOLDEN_IDS = torch.tensor([[1, 17, 300, 4000, 52, 9, 8, 77]])
GOLDEN = {None: {"std": 0.80129, "last": [-1.00823, 0.05464]}, "nf4": {"std": 0.80085, "last": [-0.74227, 0.23407]}}


@pytest.mark.parametrize("quantize", [None, "nf4"])
def test_tiny_model_logits_match_their_golden_values(tiny_model_dir, quantize):
    with torch.no_grad():
        logits = load_base(str(tiny_model_dir), quantize=quantize).model(GOLDEN_IDS).logits
    golden = GOLDEN[quantize]
    torch.testing.assert_close(logits.std().item(), golden["std"], rtol=0, atol=1e-4)
    torch.testing.assert_close(logits[0, -1, :2].tolist(), golden["last"], rtol=0, atol=1e-4)


def test_pickled_checkpoint_is_refused(tiny_model_dir, tmp_path):
    """Weights only from safetensors: a .bin-only folder fails with a message saying so."""
    import shutil

    from safetensors.torch import load_file

    pickled = tmp_path / "pickled"
    shutil.copytree(tiny_model_dir, pickled)
    (pickled / "model.safetensors").unlink()
    torch.save(load_file(tiny_model_dir / "model.safetensors"), pickled / "pytorch_model.bin")
    with pytest.raises(LoraComposeError, match="only from .safetensors"):
        load_base(str(pickled), quantize=None)
