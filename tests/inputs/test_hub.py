"""`repro fetch` against a hub served locally (tests/hub_server.py), then stages with the hub off."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.helpers import repro
from tests.hub_server import FakeHub, directory_files, gsm8k_repo

MODEL_ID = "tiny-org/tiny-llama"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def hub_dataset(tmp_path_factory, mini_gsm8k) -> Path:
    """mini GSM8K in the hub's layout (+ a README the fetch leaves out)."""
    return gsm8k_repo(mini_gsm8k, tmp_path_factory.mktemp("hub_gsm8k"))


@pytest.fixture
def hub(tiny_model_dir, hub_dataset):
    with FakeHub() as server:
        server.add("model", MODEL_ID, directory_files(tiny_model_dir))
        server.add("dataset", "openai/gsm8k", directory_files(hub_dataset))
        yield server


def write_spec(path: Path, revision: str | None = None, train: bool = True, source: str = "openai/gsm8k") -> Path:
    spec = {
        "name": "hubrun",
        "model": {"id": MODEL_ID, "revision": revision},
        "data": {"source": source, "train_size": 8, "eval_limit": 3},
        "eval": {"backend": "hf", "max_new_tokens": 8, "batch_size": 3},
    }
    if train:
        spec["train"] = {"max_steps": 2, "micro_batch_size": 2, "grad_accum": 2, "lr": 1e-3}
    path.write_text(json.dumps(spec))
    return path


def served(hub: FakeHub, kind: str, repo_id: str) -> tuple[str, dict[str, str]]:
    repo = hub.repos[(kind, repo_id)]
    sha = repo.refs["main"]
    return sha, {rel: sha256(p) for rel, p in repo.commits[sha].items()}


def test_fetch_then_train_and_eval_with_the_hub_off(tmp_path, hub):
    env = {"REPRO_CACHE": str(tmp_path / "cache"), "HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0"}
    spec = write_spec(tmp_path / "spec.json")
    out = repro("fetch", str(spec), env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("fetched ") == 2
    again = repro("fetch", str(spec), env=env)  # the second fetch finds both inputs cached
    assert again.returncode == 0 and again.stdout.count("cached ") == 2, again.stdout
    hub.__exit__()  # the hub is gone: the stages may only read the fetched files
    runs = tmp_path / "runs"
    off = {**env, "HF_HUB_OFFLINE": "1"}
    done = repro("run", str(spec), "--runs-dir", str(runs), "--no-progress", env=off)
    assert done.returncode == 0, done.stderr
    run = next(runs.iterdir())
    model_commit, model_files = served(hub, "model", MODEL_ID)
    data_commit, data_files = served(hub, "dataset", "openai/gsm8k")
    for name in ("train_metrics.json",):
        source = json.loads((run / name).read_text())["model_source"]
        assert source["commit"] == model_commit and source["hub"] is True
        assert {rel: f["sha256"] for rel, f in source["files"].items()} == model_files
    data = json.loads((run / "data.json").read_text())
    assert data["source_kind"] == "hub" and data["hub"]["commit"] == data_commit
    fetched = {rel: data_files[rel] for rel in data_files if rel.endswith(".parquet")}
    assert data["source_sha256"] == fetched and len(fetched) == 2  # README.md was not fetched
    assert json.loads((run / "eval_metrics.json").read_text())["n"] == 3
    assert repro("audit", str(run), env=off).returncode == 0


def test_a_pinned_revision_is_fetched_and_recorded_after_main_moved_on(tmp_path, hub, tiny_model_dir):
    pinned, _ = served(hub, "model", MODEL_ID)
    moved = tmp_path / "moved"
    moved.mkdir()
    for rel, path in directory_files(tiny_model_dir).items():
        (moved / rel).write_bytes(path.read_bytes())
    (moved / "NOTES.md").write_text("a later commit\n")
    assert hub.add("model", MODEL_ID, directory_files(moved)) != pinned
    env = {"REPRO_CACHE": str(tmp_path / "cache"), "HF_ENDPOINT": hub.url}
    spec = write_spec(tmp_path / "spec.json", revision=pinned, train=False)
    assert repro("fetch", str(spec), env=env).returncode == 0
    off = {**env, "HF_HUB_OFFLINE": "1"}
    done = repro("eval", str(spec), "--runs-dir", str(tmp_path / "runs"), "--no-progress", env=off)
    assert done.returncode == 0, done.stderr
    run = next((tmp_path / "runs").iterdir())
    source = json.loads((run / "eval_metrics.json").read_text())["model_source"]
    assert source["commit"] == pinned and "NOTES.md" not in source["files"]
    assert repro("audit", str(run), env=off).returncode == 0


def test_audit_names_a_recorded_commit_that_is_not_the_pin(tmp_path):
    from app.inputs.hub import run_pin_problems

    (tmp_path / "spec.json").write_text(json.dumps({"name": "x", "model": {"id": MODEL_ID, "revision": "abc1234"}}))
    record = {"type": "model", "id": MODEL_ID, "commit": "f" * 40}
    (tmp_path / "eval_metrics.json").write_text(json.dumps({"model_source": record}))
    assert run_pin_problems(tmp_path) == [
        f"eval_metrics.json: model {MODEL_ID} ran commit {'f' * 40}, but the spec pins abc1234"
    ]
    (tmp_path / "eval_metrics.json").write_text(
        json.dumps({"model_source": {**record, "commit": "abc1234" + "0" * 33}})
    )
    assert run_pin_problems(tmp_path) == []


def test_an_unreachable_hub_fails_with_one_line_naming_the_id_and_the_way_out(tmp_path):
    spec = write_spec(tmp_path / "spec.json")
    env = {"REPRO_CACHE": str(tmp_path / "cache"), "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "0"}
    out = repro("fetch", str(spec), env=env)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    for part in (MODEL_ID, "HF_TOKEN", "HF_ENDPOINT", "local directory"):
        assert part in out.stderr
    offline = repro("fetch", str(spec), env={**env, "HF_HUB_OFFLINE": "1"})
    assert offline.returncode == 2 and "HF_HUB_OFFLINE=1" in offline.stderr


def test_a_repo_the_hub_does_not_have_is_one_line(tmp_path, hub):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"name": "x", "model": {"id": "nobody/nothing"}}))
    out = repro("fetch", str(spec), env={"REPRO_CACHE": str(tmp_path / "c"), "HF_ENDPOINT": hub.url})
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "nobody/nothing" in out.stderr


def test_a_stage_without_the_fetch_or_with_a_changed_file_refuses_naming_repro_fetch(tmp_path, hub, mini_gsm8k):
    env = {"REPRO_CACHE": str(tmp_path / "cache"), "HF_ENDPOINT": hub.url}
    spec = write_spec(tmp_path / "spec.json", train=False, source=str(mini_gsm8k))
    args = ("eval", str(spec), "--runs-dir", str(tmp_path / "runs"), "--no-progress")
    missing = repro(*args, env={**env, "HF_HUB_OFFLINE": "1"})
    assert missing.returncode == 2 and "repro fetch" in missing.stderr and MODEL_ID in missing.stderr
    assert repro("fetch", str(spec), env=env).returncode == 0
    weights = next((tmp_path / "cache" / "hf" / "hub").glob("models--*/snapshots/*/model.safetensors"))
    blob = weights.resolve()
    blob.write_bytes(blob.read_bytes()[:-1] + b"\0")
    changed = repro(*args, env={**env, "HF_HUB_OFFLINE": "1"})
    assert changed.returncode == 2 and "model.safetensors: sha256 differs" in changed.stderr, changed.stderr


@pytest.mark.parametrize("dockerfile", ["Dockerfile.train", "Dockerfile.eval"])
def test_both_images_run_with_the_hub_off_and_read_the_fetched_cache(dockerfile):
    from dockerfile_parse import DockerfileParser

    # fileobj, not content=: DockerfileParser() with no path writes ./Dockerfile (the tracked one at the repo root)
    parser = DockerfileParser(fileobj=(Path(__file__).resolve().parents[2] / dockerfile).open("rb"))
    env = parser.envs
    assert env["HF_HUB_OFFLINE"] == "1"
    # repro fetch writes $REPRO_CACHE/hf/hub; huggingface_hub in the image reads $HF_HOME/hub: the same place
    assert Path(env["HF_HOME"]) == Path(env["REPRO_CACHE"]) / "hf"


def test_hub_module_imports_no_torch():
    import subprocess
    import sys

    code = "import sys, app.inputs.hub, app.inputs.gsm8k; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
