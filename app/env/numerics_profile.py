"""CPU numerics profiles: the environment variables that pick torch's, oneDNN's and MKL's code paths,
set before torch loads, and a record of what was in force (env.json `numerics_profile`).

`native` leaves every library to pick the fastest path for this CPU: results are repeatable on the
same CPU model only (an Intel Xeon and an AMD EPYC gave step-0 losses 1.3765061 vs 1.3765140).
`portable` caps each library at code paths every x86-64 CPU with AVX2 runs alike: torch's vectorised
kernels at AVX2, oneDNN at AVX2, MKL at its COMPATIBLE branch (MKL's AVX2 branch falls back to
dispatching by CPU on non-Intel processors, so only COMPATIBLE holds across vendors), and a fixed
thread count, because reductions and GEMMs split their sums by thread. These variables are read
once, when torch's libraries load, so the profile must be applied before the first `import torch`;
applied later it would be recorded but not in force, and that is refused.

Pure: never imports torch (it only looks whether torch is already in `sys.modules`).
"""

from __future__ import annotations

import os
import sys

from app.errors import UserError

PORTABLE_THREADS = "2"  # any fixed count works; 2 is what the 2-core machines the study ran on have
PROFILES: dict[str, dict[str, str]] = {
    "native": {},
    "portable": {
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_CBWR": "COMPATIBLE",
        "OMP_NUM_THREADS": PORTABLE_THREADS,
        "MKL_NUM_THREADS": PORTABLE_THREADS,
    },
}
VARIABLES = tuple(dict.fromkeys(k for profile in PROFILES.values() for k in profile))

_applied: dict = {}  # what apply() last did in this process: {"profile": …, "torch_imported_before": …}


def torch_loaded() -> bool:
    return "torch" in sys.modules


def mismatches(name: str, environ: dict | os._Environ = os.environ) -> list[str]:
    """`VAR=now (profile wants X)` for every variable of profile `name` that `environ` does not hold."""
    return [f"{k}={environ.get(k)!s} (wants {v})" for k, v in PROFILES[name].items() if environ.get(k) != v]


def apply(name: str) -> dict:
    """Put profile `name`'s variables into os.environ (children, vLLM workers and torchrun ranks inherit
    them); refuse when torch is already loaded under other values, since they act only at load time."""
    if name not in PROFILES:
        raise UserError(f"numerics: {name!r} is not one of {', '.join(PROFILES)}")
    loaded = torch_loaded()
    wrong = mismatches(name)
    if loaded and wrong:
        raise UserError(
            f"numerics: {name!r} must be set before torch loads, and torch is already imported in this "
            f"process with {', '.join(wrong)}; run it from a fresh `repro` process"
        )
    os.environ.update(PROFILES[name])
    _applied.clear()
    _applied.update(profile=name, torch_imported_before=loaded)
    return record()


def record() -> dict:
    """env.json `numerics_profile`: the profile applied, the variables in force, whether torch was
    already imported when they were set, and the kernel level and thread count torch picked (when loaded)."""
    torch = sys.modules.get("torch")
    capability = torch.backends.cpu.get_cpu_capability() if torch is not None else None
    threads = torch.get_num_threads() if torch is not None else None
    return {
        "profile": _applied.get("profile"),
        "variables": {k: os.environ.get(k) for k in VARIABLES},
        "torch_imported_before": _applied.get("torch_imported_before"),
        "aten_cpu_capability": capability,
        "torch_threads": threads,
    }


def recorded_profile(env_entry: dict) -> dict:
    """The profile record of one env.json attempt; a run made before profiles existed ran `native`."""
    rec = env_entry.get("numerics_profile")
    if isinstance(rec, dict) and rec.get("profile") in PROFILES:
        return rec
    legacy = env_entry.get("determinism_env")
    legacy = legacy if isinstance(legacy, dict) else {}
    return {"profile": "native", "variables": {k: legacy.get(k) for k in VARIABLES}}
