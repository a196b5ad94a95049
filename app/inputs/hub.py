"""Hub inputs: resolve a model or dataset id to a commit, download it once, record and verify it.

`repro fetch` is the only code that talks to the hub. It downloads into the cache both images mount
(`$REPRO_CACHE/hf/hub`, the huggingface_hub layout) and writes a record beside it: the commit and
the sha256 and size of every file. Stages only look snapshots up offline (`local_files_only`), check
every file against that record, and copy the record into `model_source` / `data.json`.
Pure: huggingface_hub and pyarrow only, no torch.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from app.errors import UserError
from app.inputs.cache import cache_root
from app.rundir.paths import check_rel, is_link
from app.rundir.run_dir import atomic_write_bytes, sha256_file
from app.spec.run_spec import HUB_DATASET, RunSpec

# Pickle-based and duplicate weight formats are never fetched: safetensors is required.
SKIPPED_WEIGHTS = ["*.bin", "*.pt", "*.pth", "*.h5", "*.msgpack", "*.onnx", "*.ot", "*.gguf", "*.tflite", "original/*"]
GSM8K_PATTERNS = ["main/*.parquet"]


@dataclass(frozen=True)
class HubInput:
    """One thing a spec needs from the hub; `field` names the spec field it comes from."""

    kind: str  # "model" | "dataset"
    repo_id: str
    revision: str | None
    field: str

    @property
    def label(self) -> str:
        return f"{self.kind} {self.repo_id} (revision {self.revision or 'main'})"


def hub_cache() -> Path:
    """The huggingface_hub cache inside the repro cache (= $HF_HOME/hub in the images)."""
    return cache_root() / "hf" / "hub"


def record_path(inp: HubInput, commit: str) -> Path:
    return cache_root() / "fetched" / f"{inp.kind}s" / inp.repo_id.replace("/", "--") / f"{commit}.json"


def is_hub_model(model_id: str) -> bool:
    """An `org/name` id that is not a local path (the embedded model and directories are not hub ids)."""
    if Path(model_id).expanduser().exists() or model_id.startswith((".", "/", "~")):
        return False
    return model_id.count("/") == 1


def split_dataset_source(source: str) -> tuple[str, str | None] | None:
    """`openai/gsm8k` or `openai/gsm8k@REV` → (id, revision); None for a local source."""
    repo_id, _, rev = source.partition("@")
    if repo_id != HUB_DATASET:
        return None
    return repo_id, rev or None


def spec_inputs(spec: RunSpec) -> list[HubInput]:
    """Every hub input of a spec: its model (when a hub id) and GSM8K (when read from the hub)."""
    inputs = []
    if is_hub_model(spec.model.id):
        inputs.append(HubInput("model", spec.model.id, spec.model.revision, "model.id"))
    hub_data = split_dataset_source(spec.data.source)
    if hub_data:
        inputs.append(HubInput("dataset", *hub_data, "data.source"))
    return inputs


def patterns(inp: HubInput) -> dict:
    return {"ignore_patterns": SKIPPED_WEIGHTS} if inp.kind == "model" else {"allow_patterns": GSM8K_PATTERNS}


def snapshot_files(snapshot: Path) -> dict[str, dict]:
    """sha256 and size of every file of a snapshot (symlinks into blobs/ followed)."""
    files = sorted(p for p in snapshot.rglob("*") if p.is_file())
    rels = [check_rel(p.relative_to(snapshot).as_posix(), str(snapshot)) for p in files]
    return {rel: {"sha256": sha256_file(p), "size": p.stat().st_size} for rel, p in zip(rels, files, strict=True)}


def git_blob_sha1(path: Path) -> str:
    """The git object id of a file's bytes (the ETag the hub gives a file not stored in LFS)."""
    h = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def advertised_mismatch(path: Path, sha256: str) -> str | None:
    """Why a downloaded file (whose sha256 is given) is not what the hub advertised, or None.
    huggingface_hub stores each file as a link to blobs/<ETag>: the sha256 of an LFS file, the git
    blob sha1 of a small one. It checks only the size, so a hub (or a proxy) serving other bytes
    would otherwise be recorded as the truth."""
    if not path.is_symlink():
        return None  # a cache without links: nothing advertised to compare with
    etag = Path(os.readlink(path)).name
    if re.fullmatch(r"[0-9a-f]{64}", etag):
        kind, got = "sha256", sha256
    elif re.fullmatch(r"[0-9a-f]{40}", etag):
        kind, got = "git blob sha1", git_blob_sha1(path)
    else:
        return None
    return None if got == etag else f"{kind} {got[:12]}… but the hub advertised {etag[:12]}…"


def refuse_lies(inp: HubInput, snapshot: Path, record: dict) -> None:
    """UserError naming the first file whose bytes differ from the hub's advertised hash; its blob
    is removed so the next fetch downloads it again instead of trusting the cache."""
    for rel, meta in record["files"].items():
        path = snapshot / rel
        why = advertised_mismatch(path, meta["sha256"])
        if why:
            blob = path.resolve()
            path.unlink()
            blob.unlink(missing_ok=True)
            raise UserError(f"{inp.field}: {inp.label}: {rel} downloaded with {why}; not recorded, fetch again")


def build_record(inp: HubInput, snapshot: Path, endpoint: str) -> dict:
    return {
        "id": inp.repo_id,
        "type": inp.kind,
        "revision": inp.revision,
        "commit": snapshot.name,
        "endpoint": endpoint,
        "files": snapshot_files(snapshot),
    }


def unreachable(inp: HubInput, exc: Exception) -> UserError:
    """One line: what could not be fetched, why, and the three ways out."""
    from huggingface_hub import constants

    reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
    return UserError(
        f"{inp.field}: cannot fetch {inp.label} from {constants.ENDPOINT} ({type(exc).__name__}: {reason}); "
        f"check the network, set HF_TOKEN for a gated or private repo, set HF_ENDPOINT for a mirror, "
        f"or point {inp.field} at a local directory"
    )


def download(inp: HubInput) -> Path:
    """snapshot_download of the input's files at its revision; hub failures become one UserError line."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    if constants.HF_HUB_OFFLINE:
        raise UserError(f"{inp.field}: cannot fetch {inp.label}: HF_HUB_OFFLINE=1 is set (unset it for the fetch)")
    try:
        path = snapshot_download(
            inp.repo_id, repo_type=inp.kind, revision=inp.revision, cache_dir=hub_cache(), **patterns(inp)
        )
    except (HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled, OSError) as exc:
        raise unreachable(inp, exc) from None
    return Path(path)


def fetch_input(inp: HubInput, refresh: bool = False, log=print) -> dict:
    """Download (unless already fetched) and record one input; returns its record."""
    if not refresh:
        found = cached_record(inp)
        if found is not None:
            log(f"cached  {inp.label} commit {found['commit']} ({len(found['files'])} files)")
            return found
    from huggingface_hub import constants

    t0 = time.time()
    snapshot = download(inp)
    record = build_record(inp, snapshot, constants.ENDPOINT)
    refuse_lies(inp, snapshot, record)
    if inp.kind == "model" and not any(f.endswith(".safetensors") for f in record["files"]):
        raise UserError(f"{inp.field}: {inp.repo_id} has no .safetensors weights (pickle formats are not fetched)")
    atomic_write_bytes(record_path(inp, record["commit"]), json.dumps(record, indent=2).encode())
    size = sum(f["size"] for f in record["files"].values())
    log(
        f"fetched {inp.label} commit {record['commit']} ({len(record['files'])} files, {size / 1e6:.1f} MB, "
        f"{time.time() - t0:.0f} s)"
    )
    return record


def fetch_specs(specs: list[RunSpec], refresh: bool = False, log=print) -> list[dict]:
    """Fetch every distinct hub input of the specs."""
    inputs = list(dict.fromkeys(inp for spec in specs for inp in spec_inputs(spec)))
    if not inputs:
        log("nothing to fetch: no hub inputs")
    return [fetch_input(inp, refresh, log) for inp in inputs]


def local_snapshot(inp: HubInput) -> Path | None:
    """The cached snapshot for the input's revision, found without the network, or None."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        path = snapshot_download(
            inp.repo_id,
            repo_type=inp.kind,
            revision=inp.revision,
            cache_dir=hub_cache(),
            local_files_only=True,
            **patterns(inp),
        )
    except (LocalEntryNotFoundError, OSError):
        return None
    return Path(path)


def cached_record(inp: HubInput) -> dict | None:
    """The record of a complete earlier fetch (every file present at its recorded size), or None."""
    snapshot = local_snapshot(inp)
    if snapshot is None or not record_path(inp, snapshot.name).is_file():
        return None
    record = json.loads(record_path(inp, snapshot.name).read_text())
    for rel, meta in record["files"].items():
        path = snapshot / check_rel(rel, str(record_path(inp, snapshot.name)))
        if not path.is_file() or path.stat().st_size != meta["size"]:
            return None
    return record


def not_fetched(inp: HubInput, why: str) -> UserError:
    return UserError(
        f"{inp.field}: {inp.label} {why} in {hub_cache()}; run `repro fetch SPEC` (online) first, "
        f"or point {inp.field} at a local directory"
    )


def verified(inp: HubInput) -> tuple[Path, dict]:
    """(snapshot dir, record) after re-hashing every recorded file; once per process and cache."""
    return _verified(inp, hub_cache())


@functools.cache
def _verified(inp: HubInput, cache: Path) -> tuple[Path, dict]:
    snapshot = local_snapshot(inp)
    if snapshot is None:
        raise not_fetched(inp, "is not fetched")
    rec_path = record_path(inp, snapshot.name)
    if not rec_path.is_file():
        raise not_fetched(inp, f"commit {snapshot.name} has no fetch record")
    record = json.loads(rec_path.read_text())
    for rel, meta in record["files"].items():
        path = snapshot / check_rel(rel, str(rec_path))
        if not path.is_file():
            raise not_fetched(inp, f"file {rel} is missing")
        if sha256_file(path) != meta["sha256"]:
            raise UserError(
                f"{inp.field}: {snapshot / rel}: sha256 differs from the fetch record; run `repro fetch --refresh SPEC`"
            )
    return snapshot, record


def model_snapshot(model_id: str, revision: str | None) -> tuple[Path, dict]:
    return verified(HubInput("model", model_id, revision, "model.id"))


def dataset_snapshot(source: str) -> tuple[Path, dict]:
    repo_id, revision = split_dataset_source(source)
    return verified(HubInput("dataset", repo_id, revision, "data.source"))


def pin_problems(spec: RunSpec, recorded: list[tuple[str, dict | None]]) -> list[str]:
    """A line for every recorded hub commit that differs from the spec's pinned commit (full or short sha).

    A branch or tag pin cannot be checked offline; the recorded commit is what ran.
    """
    pins = {inp.kind: (inp.revision or "").lower() for inp in spec_inputs(spec)}
    lines = []
    for where, rec in recorded:
        pin = pins.get((rec or {}).get("type"), "")
        if re.fullmatch(r"[0-9a-f]{7,40}", pin) and not rec["commit"].startswith(pin):
            lines.append(f"{where}: {rec['type']} {rec['id']} ran commit {rec['commit']}, but the spec pins {pin}")
    return lines


def run_pin_problems(run_path: Path) -> list[str]:
    """pin_problems for a run directory: its spec.json against the commits its files recorded."""
    from app.rundir.layout import DATA_JSON, EVAL_METRICS_JSON, SPEC_JSON, TRAIN_METRICS_JSON, optional_run_json
    from app.spec.run_spec import SpecError, load_spec

    if is_link(run_path / SPEC_JSON):
        return []
    try:
        spec = load_spec(run_path / SPEC_JSON)
    except SpecError:  # no spec, or not a valid one: the manifest check reports a changed file
        return []
    keys = {DATA_JSON: "hub", TRAIN_METRICS_JSON: "model_source", EVAL_METRICS_JSON: "model_source"}
    recorded = []
    for name, key in keys.items():
        if (run_path / name).is_file() and not is_link(run_path / name):  # a link is reported, never read
            rec = optional_run_json(run_path / name).get(key)  # a damaged file: audit reports it
            recorded += [(name, rec)] if isinstance(rec, dict) and rec.get("commit") else []
    return pin_problems(spec, recorded)
