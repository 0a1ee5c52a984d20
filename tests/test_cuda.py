"""The CUDA path: bf16 composition against PEFT, mixed batches, export and a QLoRA step on a GPU.

Skipped where torch sees no CUDA device. The checks themselves live in
benchmarks/cuda_checks.py as functions of the device, so `scripts/gpu-check.sh`
runs the same code on a bare GPU machine and its --dry-run runs it on CPU in CI
(tests/test_gpu_check.py); the tolerance for bf16 is reasoned there.
"""

import pytest
import torch

from benchmarks import cuda_checks

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    """The model the script's checks use (its own tokenizer), so these tests and the dry run check the same thing."""
    return cuda_checks.tiny_model(tmp_path_factory.mktemp("cuda-tiny-llama"))


@pytest.fixture(scope="module")
def adapters(tiny_model_dir, tmp_path_factory):
    return cuda_checks.tiny_adapters(tiny_model_dir, tmp_path_factory.mktemp("cuda-adapters"))


def test_fused_output_sum_equals_peft_all_active_forward_in_bf16(tiny_model_dir, adapters):
    record = cuda_checks.check_output_sum(tiny_model_dir, adapters, "cuda")
    assert record["passed"], record


def test_a_mixed_batch_equals_each_composition_alone_on_cuda(tiny_model_dir, adapters):
    record = cuda_checks.check_mixed_batch(tiny_model_dir, adapters, "cuda")
    assert record["passed"], record


def test_exported_adapter_reproduces_output_sum_on_cuda(tiny_model_dir, adapters, tmp_path):
    record = cuda_checks.check_export(tiny_model_dir, adapters, "cuda", tmp_path)
    assert record["passed"], record


def test_one_qlora_training_step_runs_on_cuda(tiny_model_dir):
    record = cuda_checks.check_train_step(tiny_model_dir, "cuda")
    assert record["passed"], record
    nf4, why = cuda_checks.nf4_support("cuda")
    assert record["kind"] == ("nf4" if nf4 else "bf16"), why  # says which step ran
