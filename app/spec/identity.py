"""A run's identity: which spec fields name a run directory (`<name>-<hash8>`), and the hash itself.

The rule lets the spec grow. A field whose value equals its default is left out of the hash, so adding
a defaulted field renames no run: every spec written before it means what it meant, and hashes as it
did. The fields of schema version 2 (below, frozen) stay hashed with their defaults filled in, exactly
as runs were named before this rule; dropping their defaults now would rename every existing run.
A `run:` reference is hashed by the spec name it names, so `run:<name>` and the older
`run:<name>-<hash8>` are the same run. Pure: works on any pydantic model shaped like a RunSpec.
"""

from __future__ import annotations

import hashlib
import json
import re

from pydantic import BaseModel

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
RUN_PREFIX = "run:"
_HASHED_NAME = re.compile(r"(?P<name>.+)-[0-9a-f]{8}")

# Every spec field of schema version 2, generated once from that schema; tests/spec/test_identity.py
# pins it. Never add a field here: a new field is hashed only when it differs from its default.
SCHEMA_V2_FIELDS = frozenset(
    {
        "schema_version",
        "name",
        "seed",
        "group",
        "model",
        "model.id",
        "model.revision",
        "model.dtype",
        "model.trust_remote_code",
        "data",
        "data.source",
        "data.train_size",
        "data.subset_seed",
        "data.eval_split",
        "data.eval_limit",
        "prompt",
        "prompt.template",
        "train",
        "train.epochs",
        "train.max_steps",
        "train.max_tokens",
        "train.lr",
        "train.schedule",
        "train.warmup_ratio",
        "train.min_lr_ratio",
        "train.loss_mask",
        "train.micro_batch_size",
        "train.grad_accum",
        "train.max_grad_norm",
        "train.weight_decay",
        "train.max_seq_len",
        "train.overlong",
        "train.dtype",
        "train.group_by_length",
        "train.gradient_checkpointing",
        "train.save_every",
        "train.save_every_minutes",
        "eval",
        "eval.backend",
        "eval.max_new_tokens",
        "eval.stop",
        "eval.temperature",
        "eval.batch_size",
    }
)
# Never hashed: `schema_version` says how a file is read, not what runs (a migrated spec hashes like
# the run it describes); `train.save_every_minutes` says when wall time triggers a resumable save, and
# the run's bytes are the same whatever it is.
NOT_IDENTITY = frozenset({"schema_version", "train.save_every_minutes"})


def referenced_name(ref: str) -> str:
    """The spec name a `run:` reference names: `<name>-<hash8>` (a run directory) gives `<name>`."""
    m = _HASHED_NAME.fullmatch(ref)
    return m["name"] if m and re.fullmatch(NAME_PATTERN, m["name"]) else ref


def _identity(model: BaseModel, dumped: dict, prefix: str) -> dict:
    """`dumped` (the model's JSON dump) less the fields that do not name the run."""
    body = {}
    for name, field in type(model).model_fields.items():
        path, value = f"{prefix}{name}", getattr(model, name)
        at_default = value == field.get_default(call_default_factory=True)
        if path in NOT_IDENTITY or (path not in SCHEMA_V2_FIELDS and at_default):
            continue
        body[name] = _identity(value, dumped[name], f"{path}.") if isinstance(value, BaseModel) else dumped[name]
    return body


def identity(spec: BaseModel) -> dict:
    """The part of a spec that names its run: what `spec_hash` hashes."""
    body = _identity(spec, spec.model_dump(mode="json"), "")
    model_id = body.get("model", {}).get("id", "")
    if model_id.startswith(RUN_PREFIX):
        body["model"]["id"] = RUN_PREFIX + referenced_name(model_id[len(RUN_PREFIX) :])
    return body


def spec_hash(spec: BaseModel) -> str:
    """sha256 of the spec's identity as sorted-key compact JSON."""
    canonical = json.dumps(identity(spec), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
