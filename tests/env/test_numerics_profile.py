"""The numerics profile: its variables are in os.environ before torch loads, recorded in env.json, and
a profile that would come too late (torch already loaded under other values) is refused."""

from __future__ import annotations

import json
import typing

import pytest

from app.env import numerics_profile
from app.env.numerics_profile import PROFILES, VARIABLES, apply, recorded_profile
from app.errors import UserError
from app.spec.run_spec import RunSpec, load_spec, spec_hash
from tests.helpers import repro


def test_the_spec_field_offers_exactly_the_profiles():
    assert set(typing.get_args(RunSpec.model_fields["numerics"].annotation)) == set(PROFILES)


def test_native_is_the_default_and_leaves_the_hash_alone(tiny_spec):
    path = tiny_spec()
    native = load_spec(path)
    raw = json.loads(path.read_text())
    assert spec_hash(RunSpec.model_validate({**raw, "numerics": "native"})) == spec_hash(native)
    assert spec_hash(RunSpec.model_validate({**raw, "numerics": "portable"})) != spec_hash(native)


def test_a_fresh_process_sets_the_profile_before_torch_and_records_it(tiny_spec, tmp_path):
    path = tiny_spec(name="portable")
    path.write_text(json.dumps({**json.loads(path.read_text()), "numerics": "portable"}))
    clean = {k: "" for k in VARIABLES}  # whatever the test's shell says, the profile must set them itself
    out = repro("run", str(path), "--runs-dir", str(tmp_path / "runs"), "--no-progress", env=clean)
    assert out.returncode == 0, out.stderr
    (run,) = (tmp_path / "runs").iterdir()
    envs = json.loads((run / "env.json").read_text())
    for stage in ("train", "eval"):
        rec = envs[stage][-1]["numerics_profile"]
        assert rec["profile"] == "portable"
        assert rec["torch_imported_before"] is False
        assert {k: rec["variables"][k] for k in PROFILES["portable"]} == PROFILES["portable"]
        assert rec["aten_cpu_capability"] == "AVX2"  # the cap acted: torch dispatches its AVX2 kernels
        assert rec["torch_threads"] == int(PROFILES["portable"]["OMP_NUM_THREADS"])


def test_a_profile_too_late_for_a_loaded_torch_is_refused(monkeypatch):
    import torch  # noqa: F401  (loaded here, as in any process that already ran a stage)

    for k in VARIABLES:
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(UserError, match="before torch loads.*ATEN_CPU_CAPABILITY=None"):
        apply("portable")
    assert all(k not in numerics_profile.os.environ for k in VARIABLES)  # refused before setting anything


def test_a_loaded_torch_with_the_same_values_is_accepted_and_says_so(monkeypatch):
    import torch  # noqa: F401

    for k, v in PROFILES["portable"].items():
        monkeypatch.setenv(k, v)
    assert apply("portable")["torch_imported_before"] is True
    assert apply("native")["profile"] == "native"  # native sets nothing, so it is never too late


def test_a_run_recorded_before_profiles_counts_as_native():
    legacy = {"determinism_env": {"OMP_NUM_THREADS": "1"}}
    rec = recorded_profile(legacy)
    assert rec["profile"] == "native" and rec["variables"]["OMP_NUM_THREADS"] == "1"
    assert recorded_profile({"numerics_profile": {"profile": "portable"}})["profile"] == "portable"
