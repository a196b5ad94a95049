"""A published bundle is untrusted input (issue 19): crafted run directories and a lying hub.

Each attack starts from the committed old run (a complete, published run) or a tiny eval-only run,
and checks the same three things: the command fails with one `error:` line naming what it refused,
nothing outside the command's own target directory changed, and no code shipped in a bundle ran.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from app.errors import IntegrityError, UserError
from app.rundir.run_dir import RunDir
from tests.helpers import FIXTURE, RUN, repro, snapshot

SECRET = "TOP-SECRET-TOKEN"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def errors(out) -> list[str]:
    return [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]


def outside(root: Path, *targets: Path) -> dict:
    """Everything under `root` except the command's own target directories."""
    skip = [t.relative_to(root).as_posix() for t in targets]
    return {k: v for k, v in snapshot(root).items() if not any(k == s or k.startswith(f"{s}/") for s in skip)}


def add_entry(run: Path, rel: str, sha: str, section: str = "files") -> None:
    """Vouch for `rel` in the run's manifest, as a consistent attacker would."""
    manifest = json.loads((run / "manifest.json").read_text())
    manifest[section][rel] = sha if section == "files" else {"sha256": sha, "size": 1, "reason": "left out"}
    (run / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture
def secret(tmp_path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text(f"{SECRET}\n")
    return path


@pytest.fixture
def bundle(tmp_path) -> Path:
    """A copy of the committed published run: tmp/bundle/<run>."""
    shutil.copytree(FIXTURE / RUN, tmp_path / "bundle" / RUN)
    return tmp_path / "bundle" / RUN


def plant(kind: str, run: Path, secret: Path) -> str:
    """Craft one malicious bundle; returns the path the refusal must name."""
    if kind == "link-through-checkpoint":  # a relative link in checkpoint/ and an entry walking out through it
        (run / "checkpoint").mkdir()
        (run / "checkpoint" / "up").symlink_to("../../..")
        add_entry(run, "checkpoint/up/pwned.txt", sha256(b"x"))
        return "checkpoint/up"
    if kind == "dotdot-entry":
        add_entry(run, "../../pwned.txt", sha256(b"x"))
        return "../../pwned.txt"
    if kind == "dotdot-omitted":
        add_entry(run, "checkpoint/../../../pwned.txt", sha256(b"x"), section="omitted")
        return "checkpoint/../../../pwned.txt"
    if kind == "absolute-entry":
        add_entry(run, str(run.parent / "pwned.txt"), sha256(b"x"))
        return str(run.parent / "pwned.txt")
    if kind == "symlink-chain":  # notes -> hop -> the secret outside, vouched for by the manifest
        (run / "hop").symlink_to(secret)
        (run / "notes.txt").symlink_to("hop")
        add_entry(run, "notes.txt", sha256(secret.read_bytes()))
        return "hop"
    if kind == "linked-env":
        (run / "env.json").unlink()
        (run / "env.json").symlink_to(secret)
        return "env.json"
    raise AssertionError(kind)


ATTACKS = ["link-through-checkpoint", "dotdot-entry", "dotdot-omitted", "absolute-entry", "symlink-chain", "linked-env"]


@pytest.mark.parametrize("kind", ATTACKS)
def test_replay_of_a_crafted_bundle_refuses_and_writes_nothing(tmp_path, bundle, secret, kind):
    named = plant(kind, bundle, secret)
    out_dir = tmp_path / "replays"
    before = outside(tmp_path, out_dir)
    out = repro("replay", str(bundle), "--out", str(out_dir))
    assert out.returncode == 2, out.stdout + out.stderr
    assert len(errors(out)) == 1 and named in errors(out)[0], out.stderr
    assert "REPLAY" not in out.stdout and SECRET not in out.stdout + out.stderr
    assert not out_dir.exists() and outside(tmp_path, out_dir) == before
    assert not list(tmp_path.rglob("pwned.txt"))


@pytest.mark.parametrize("kind", ATTACKS)
def test_publish_of_a_crafted_run_refuses_and_copies_nothing(tmp_path, bundle, secret, kind):
    named = plant(kind, bundle, secret)
    pub = tmp_path / "pub"
    before = outside(tmp_path, pub)
    out = repro("publish", str(bundle), "--out", str(pub))
    assert out.returncode == 2 and len(errors(out)) == 1 and named in errors(out)[0], out.stderr
    assert not pub.exists() and outside(tmp_path, pub) == before


def test_publish_refuses_an_entry_reaching_a_real_file_outside(tmp_path, bundle, secret):
    """The manifest vouches for ../../secret.txt with its true hash: the copy would have succeeded."""
    add_entry(bundle, "../../secret.txt", sha256(secret.read_bytes()))
    out = repro("publish", str(bundle), "--out", str(tmp_path / "pub"))
    assert out.returncode == 2 and len(errors(out)) == 1 and "'../../secret.txt'" in errors(out)[0]
    assert not (tmp_path / "pub").exists()


@pytest.mark.parametrize("kind", ["linked-env", "symlink-chain", "dotdot-entry", "link-through-checkpoint"])
def test_audit_fails_and_never_prints_what_a_link_points_at(bundle, secret, kind):
    plant(kind, bundle, secret)
    out = repro("audit", str(bundle))
    assert out.returncode == 1 and "AUDIT FAILED" in out.stderr, out.stdout + out.stderr
    assert SECRET not in out.stdout + out.stderr


@pytest.mark.parametrize(
    "rel", ["logs/notes.txt", "logs/slurm-1_2.log.bak", ".hidden", "checkpoint/manifest.json", "resume/latest.json"]
)
def test_audit_reports_every_file_the_manifest_does_not_record(bundle, rel):
    (bundle / rel).parent.mkdir(parents=True, exist_ok=True)
    (bundle / rel).write_text("{}\n")
    out = repro("audit", str(bundle))
    assert out.returncode == 1 and f"file {rel}: not in manifest.json" in out.stderr, out.stderr


def test_audit_names_a_slurm_task_log_without_failing(bundle):
    (bundle / "logs").mkdir()
    (bundle / "logs" / "slurm-12_3.log").write_text("step 1\n")
    (bundle / ".lock").write_text("pid 1 on host\n")
    out = repro("audit", str(bundle))
    assert out.returncode == 0, out.stderr
    assert "unhashed logs/slurm-12_3.log: Slurm task log" in out.stdout and "AUDIT OK" in out.stdout


def test_a_hardlinked_lock_is_refused_not_truncated(tmp_path, bundle, secret):
    os.link(secret, bundle / ".lock")
    before = outside(tmp_path, bundle)
    out = repro("rescore", str(bundle), "--write")
    assert out.returncode == 2 and len(errors(out)) == 1 and ".lock: has other hard links" in errors(out)[0]
    assert secret.read_text() == f"{SECRET}\n" and outside(tmp_path, bundle) == before
    with pytest.raises(UserError, match="has other hard links"):
        RunDir(bundle).lock()
    assert secret.read_text() == f"{SECRET}\n"


def tamper_predictions(run: Path) -> None:
    """Still valid JSON, one graded answer changed: only the manifest can tell."""
    pred = run / "predictions.jsonl"
    pred.write_text(pred.read_text().replace('"strict_correct": false', '"strict_correct": true', 1))


READERS = {
    "rescore": ["rescore", "{run}"],
    "compare": ["compare", "{run}", "{run}"],
    "report": ["report", "{run}", "--out", "{tmp}/report"],
    "export": ["export", "mlflow", "{run}", "--tracking-uri", "sqlite:///{tmp}/mlflow.db"],
}


@pytest.mark.parametrize("reader", list(READERS))
def test_read_only_commands_refuse_a_tampered_run_unless_told(tmp_path, bundle, reader):
    tamper_predictions(bundle)
    args = [a.format(run=bundle, tmp=tmp_path) for a in READERS[reader]]
    before = snapshot(tmp_path)
    out = repro(*args)
    assert out.returncode == 1 and len(errors(out)) == 1, out.stdout + out.stderr
    assert errors(out)[0].startswith(f"error: {bundle / 'predictions.jsonl'}: sha256 differs from manifest.json")
    assert snapshot(tmp_path) == before  # no report directory, no tracking store
    out = repro(*args, "--allow-unverified")
    assert out.returncode == 0, out.stderr
    assert f"warning: {bundle}: unverified, read anyway (--allow-unverified): predictions.jsonl" in out.stderr
    if reader == "report":
        assert "unverified run, reported anyway" in (tmp_path / "report" / "report.md").read_text()


def test_a_run_source_must_be_a_run_that_audits_clean(tmp_path, bundle):
    from app.inputs.models import run_checkpoint

    runs = bundle.parent
    (bundle / "checkpoint").mkdir()
    (bundle / "checkpoint" / "config.json").write_text("{}\n")  # not the checkpoint the run recorded
    with pytest.raises(IntegrityError, match="checkpoint/config.json: sha256 differs from its omitted record"):
        run_checkpoint(f"run:{bundle.name}", runs)
    for name in ("..", ".", "../bundle"):
        with pytest.raises(UserError) as exc:
            run_checkpoint(f"run:{name}", runs)
        assert len(str(exc.value).splitlines()) == 1
    (runs / "alias").symlink_to(bundle.name)
    with pytest.raises(UserError, match="alias: is a symlink"):
        run_checkpoint("run:alias", runs)


def export(*args: str):
    return CliRunner().invoke(app, ["export", "mlflow", *args])


def test_a_crafted_directory_name_cannot_touch_another_runs_export(tmp_path, bundle):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    victim = bundle.parent / "victim"
    shutil.copytree(bundle, victim)
    assert export(str(victim), "--tracking-uri", uri).exit_code == 0
    client = MlflowClient(tracking_uri=uri)
    exp_id = client.get_experiment_by_name("repro").experiment_id
    (victim_run,) = client.search_runs([exp_id])
    for name in ("victim' AND attributes.status != 'x", "it's", "%"):
        crafted = bundle.parent / name
        shutil.copytree(bundle, crafted)
        manifest = json.loads((crafted / "manifest.json").read_text())
        (crafted / "manifest.json").write_text(json.dumps({**manifest, "published_at": "later"}))  # "changed"
        out = export(str(crafted), "--tracking-uri", uri)
        assert out.exit_code == 0 and out.stdout.startswith("EXPORTED"), out.output
    runs = {r.data.tags["repro.run_dir"]: r for r in client.search_runs([exp_id])}
    assert sorted(runs) == sorted(["victim", "victim' AND attributes.status != 'x", "it's", "%"])
    assert runs["victim"].info.run_id == victim_run.info.run_id


def test_a_failed_export_ends_its_mlflow_run_failed(tmp_path, bundle, monkeypatch):
    from mlflow import MlflowClient

    from app.study.export_mlflow import experiment_id, export_run

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp_id = experiment_id(client, "repro", uri)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(client, "log_artifact", full_disk)
    with pytest.raises(OSError):
        export_run(client, exp_id, bundle)
    (run,) = client.search_runs([exp_id])
    assert run.info.status == "FAILED"


def test_a_hub_serving_other_bytes_than_it_advertises_is_refused(tmp_path, mini_gsm8k):
    from tests.hub_server import FakeHub, directory_files, gsm8k_repo

    repo = gsm8k_repo(mini_gsm8k, tmp_path / "hub_gsm8k")
    rel = "main/test-00000-of-00001.parquet"
    true = (repo / rel).read_bytes()
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"name": "hubdata", "data": {"source": "openai/gsm8k", "eval_limit": 2}}))
    env = {"REPRO_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "0"}
    with FakeHub() as hub:
        hub.add("dataset", "openai/gsm8k", directory_files(repo))
        hub.lies[rel] = true[:100] + bytes([true[100] ^ 0xFF]) + true[101:]  # same size, other bytes
        out = repro("fetch", str(spec), env={**env, "HF_ENDPOINT": hub.url})
        assert out.returncode == 2 and len(errors(out)) == 1, out.stdout + out.stderr
        assert f"{rel} downloaded with sha256" in errors(out)[0] and "hub advertised" in errors(out)[0]
        assert not list((tmp_path / "cache").rglob("fetched/**/*.json"))  # nothing recorded as truth
        del hub.lies[rel]  # the hub tells the truth again: the refused blob is not trusted from the cache
        again = repro("fetch", str(spec), env={**env, "HF_ENDPOINT": hub.url})
        assert again.returncode == 0 and "fetched dataset openai/gsm8k" in again.stdout, again.stderr


EVIL = """import os
marker = os.environ.get("REPRO_TEST_MARKER")
if marker:
    open(marker, "w").write("shipped code ran\\n")
from transformers import LlamaConfig, LlamaForCausalLM
class EvilConfig(LlamaConfig):
    pass
class EvilModel(LlamaForCausalLM):
    config_class = EvilConfig
"""


@pytest.fixture
def remote_code_run(tmp_path, tiny_model_dir, mini_gsm8k) -> Path:
    """A complete eval-only run whose stored spec trusts remote code in a model dir shipping evil.py
    (made here with that code denied, so nothing ran while building it)."""
    from app.inputs.remote_code import stored_spec
    from app.launch.stages import eval_stage
    from app.spec.run_spec import load_spec

    model = tmp_path / "bundle_model"
    shutil.copytree(tiny_model_dir, model)
    config = json.loads((model / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilModel"}
    (model / "config.json").write_text(json.dumps(config))
    (model / "evil.py").write_text(EVIL)
    spec_path = tmp_path / "evil.json"
    spec_path.write_text(
        json.dumps(
            {
                "name": "evil",
                "model": {"id": str(model), "trust_remote_code": True},
                "data": {"source": str(mini_gsm8k), "train_size": 8, "eval_limit": 2},
                "eval": {"backend": "hf", "max_new_tokens": 4, "batch_size": 2},
            }
        )
    )
    spec = load_spec(spec_path)
    with stored_spec(spec, spec_path, False, lambda line: None):
        run, _ = eval_stage(spec, tmp_path / "runs", progress=False)
    return run.path


def test_replay_and_eval_of_a_stored_spec_run_no_shipped_code(tmp_path, remote_code_run, monkeypatch):
    from app.launch.stages import open_spec_run
    from app.spec.run_spec import load_spec

    marker = tmp_path / "marker"
    monkeypatch.setenv("REPRO_TEST_MARKER", str(marker))
    runner = CliRunner()
    out = runner.invoke(app, ["replay", str(remote_code_run), "--out", str(tmp_path / "replays")])
    assert out.exit_code == 0 and "REPLAY byte-identical" in out.stdout, out.output
    assert "model.trust_remote_code: true ignored" in out.stderr and not marker.exists()

    spec = load_spec(remote_code_run / "spec.json")
    fresh = open_spec_run(spec, tmp_path / "fresh")  # the same stored spec, not yet evaluated
    fresh.unlock()
    out = runner.invoke(app, ["eval", str(fresh.path), "--no-progress"])
    assert out.exit_code == 0 and "model.trust_remote_code: true ignored" in out.stderr, out.output
    assert not marker.exists()

    trusted = open_spec_run(spec, tmp_path / "trusted")
    trusted.unlock()
    env = {"REPRO_TEST_MARKER": str(marker), "HF_MODULES_CACHE": str(tmp_path / "modules")}
    repro("eval", str(trusted.path), "--no-progress", "--trust-remote-code", env=env)
    assert marker.read_text() == "shipped code ran\n"  # the flag is what lets it run: the attack was real


@pytest.mark.parametrize("via", ["dotdot", "link"])
def test_an_eval_replay_cannot_copy_a_training_file_outside_out(tmp_path, tiny_run, via):
    """The issue's first attack: a consistent manifest entry under checkpoint/ that walks out of the
    replay directory, directly or through a relative link inside checkpoint/; its file ships in the
    bundle. Before the fix `replay --stage eval` copied it beside --out and said byte-identical."""
    bundle = tmp_path / "bundle" / "runs" / tiny_run.name
    shutil.copytree(tiny_run, bundle)
    (tmp_path / "bundle" / "pwned.txt").write_bytes(b"pwned\n")
    if via == "link":
        (bundle / "checkpoint" / "up").symlink_to("../..")
    rel = "checkpoint/../../../pwned.txt" if via == "dotdot" else "checkpoint/up/../pwned.txt"
    add_entry(bundle, rel, sha256(b"pwned\n"))
    work = tmp_path / "work"
    work.mkdir()
    before = outside(tmp_path, work / "replays")
    out = repro("replay", str(bundle), "--out", str(work / "replays"), "--stage", "eval")
    assert out.returncode == 2 and len(errors(out)) == 1, out.stdout + out.stderr
    assert ("'checkpoint/../../../pwned.txt'" if via == "dotdot" else "checkpoint/up: is a symlink") in errors(out)[0]
    assert "REPLAY" not in out.stdout and outside(tmp_path, work / "replays") == before
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("pwned.txt")) == ["bundle/pwned.txt"]


def test_a_small_file_is_checked_against_its_git_blob_id(tmp_path):
    """The real hub's ETag for a file not in LFS is its git object id (`git hash-object`)."""
    import subprocess

    from app.inputs.hub import advertised_mismatch

    (tmp_path / "blobs").mkdir()
    data = b'{"model_type": "llama"}\n'
    (tmp_path / "f").write_bytes(data)
    oid = subprocess.run(["git", "hash-object", str(tmp_path / "f")], capture_output=True, text=True).stdout.strip()
    (tmp_path / "blobs" / oid).write_bytes(data)
    (tmp_path / "config.json").symlink_to(f"blobs/{oid}")
    assert advertised_mismatch(tmp_path / "config.json", sha256(data)) is None
    (tmp_path / "blobs" / oid).write_bytes(data.replace(b"llama", b"evil!"))
    assert advertised_mismatch(tmp_path / "config.json", "unused").startswith("git blob sha1 ")


@pytest.mark.parametrize("command", ["replay", "publish", "rescore"])
def test_a_fifo_in_a_bundle_is_refused_instead_of_read(tmp_path, bundle, command):
    os.mkfifo(bundle / "spec.json.fifo")
    args = {"replay": ["--out", str(tmp_path / "r")], "publish": ["--out", str(tmp_path / "p")], "rescore": []}
    out = repro(command, str(bundle), *args[command], timeout=60)
    assert out.returncode == 2 and len(errors(out)) == 1 and "spec.json.fifo: not a regular file" in errors(out)[0]
    assert not (tmp_path / "r").exists() and not (tmp_path / "p").exists()
