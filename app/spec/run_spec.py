"""Run specs: a frozen pydantic model, loading with one-line errors; its identity hash is app/spec/identity.py.

Pure: no torch, transformers or vLLM imports.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from app.errors import UserError, one_line
from app.jsonfile import parse_json
from app.spec.identity import NAME_PATTERN
from app.spec.identity import spec_hash as spec_hash  # re-exported: callers import it from here

HUB_DATASET = "openai/gsm8k"
# The spec format. A spec without `schema_version` is version 1 (before the field existed); each
# older version is migrated to this one on load, so a run directory's stored spec.json stays readable.
SCHEMA_VERSION = 2
MIGRATIONS = {1: lambda raw: raw}  # version → how to turn it into version + 1 (1 → 2 only adds the field)
MAX_SEED = 2**32 - 1  # numpy's and CUDA's seeds are 32-bit: a larger one would validate, then fail to run
# Budgets past any sane GSM8K run (its train split is ~2M tokens; epochs stop at 100), so `repro plan`,
# which walks the token stream to count a token budget's steps, always ends within seconds.
MAX_STEPS = 10**7
MAX_TOKENS = 10**9
MAX_GLOBAL_BATCH = 512 * 1024  # micro_batch_size × grad_accum at their bounds
# An empty stop string matches at once: every output would be empty and score 0% without a word.
StopString = Annotated[str, Field(min_length=1)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ModelSpec(_Section):
    """Which weights to start from."""

    id: str = Field("smollm2-135m", min_length=1, description="hub id, local path or 'smollm2-135m'")
    revision: str | None = Field(None, description="hub revision (commit sha recommended)")
    dtype: Literal["float32", "bfloat16"] = Field("float32", description="weights dtype for evaluation")
    trust_remote_code: bool = Field(False, description="let transformers/vLLM run code shipped with a hub model")


class DataSpec(_Section):
    """Which GSM8K rows train and evaluate."""

    source: str = Field(
        "local",
        min_length=1,
        description="'local' (GSM8K_DIR, else ../shared/data/gsm8k), a directory, or 'openai/gsm8k'",
    )
    train_size: int | Literal["full"] = Field(128, description="nested subset size, >= 1, or 'full'")
    subset_seed: int = Field(
        0, ge=0, le=MAX_SEED, description="seed of the one permutation whose prefixes are the subsets"
    )
    eval_split: Literal["test", "train"] = Field("test", description="GSM8K split to evaluate on")
    eval_limit: int | None = Field(None, ge=1, description="evaluate the first N rows of the split")

    @model_validator(mode="after")
    def _size_positive(self) -> DataSpec:
        if isinstance(self.train_size, int) and self.train_size < 1:
            raise ValueError("train_size must be >= 1 or 'full'")
        return self


class PromptSpec(_Section):
    """How questions become prompts and answers become targets."""

    template: Literal["r1_zero_v1", "r1_zero_hardened_v1"] = Field(
        "r1_zero_v1", description="prompt template id (app/inputs/prompts.py); hardened = + the explicit format rule"
    )


class TrainSpec(_Section):
    """Optimisation settings; exactly one budget (epochs, max_steps, max_tokens) is set."""

    epochs: float | None = Field(None, gt=0, le=100, description="budget: passes over the training subset")
    max_steps: int | None = Field(None, ge=1, le=MAX_STEPS, description="budget: optimizer steps")
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS, description="budget: non-pad tokens (to a micro-batch)")
    lr: float = Field(2e-5, gt=0, le=1e-2, description="peak learning rate (AdamW)")
    schedule: Literal["constant", "cosine"] = Field(
        "constant", description="constant, or linear warmup then cosine decay to min_lr_ratio × lr"
    )
    warmup_ratio: float = Field(0.0, ge=0, le=0.5, description="fraction of the steps spent warming up (cosine)")
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="final LR as a fraction of lr (cosine)")
    loss_mask: Literal["response", "answer_only", "full"] = Field(
        "response", description="supervised tokens: the whole target, the <answer> span only, or everything"
    )
    micro_batch_size: int = Field(4, ge=1, le=512, description="examples per forward pass per process")
    grad_accum: int = Field(
        4, ge=1, le=1024, description="micro-batches per optimizer step (with global_batch: in one process)"
    )
    global_batch: int | None = Field(
        None,
        ge=1,
        le=MAX_GLOBAL_BATCH,
        description="examples per optimizer step whatever the process count (accumulation = global_batch / "
        "(micro_batch_size × processes)); null: micro_batch_size × grad_accum × processes",
    )
    max_grad_norm: float | None = Field(1.0, gt=0, description="clip the gradient norm to this (null: no clipping)")
    weight_decay: float = Field(0.0, ge=0, le=1, description="AdamW weight decay on matrices (not norms/biases)")
    max_seq_len: int = Field(1024, ge=16, le=32768, description="longest prompt + target in tokens")
    overlong: Literal["error", "drop"] = Field(
        "error", description="an example over max_seq_len stops training, or is dropped and counted"
    )
    dtype: Literal["float32", "bfloat16"] = Field("float32", description="float32, or bfloat16 autocast")
    group_by_length: bool = Field(False, description="sort batches by length within chunks (less padding)")
    gradient_checkpointing: bool = Field(False, description="recompute activations to save memory")
    compile: bool = Field(False, description="torch.compile the model (fused kernels: a different run)")
    save_every: int | None = Field(None, ge=1, description="optimizer steps between resumable checkpoints")
    save_every_minutes: float | None = Field(
        30, gt=0, description="also save a resumable checkpoint after this many minutes of training (null: off)"
    )

    @model_validator(mode="before")
    @classmethod
    def _derive_accum(cls, raw):
        """With global_batch and no grad_accum, grad_accum is the one-process accumulation it implies."""
        if isinstance(raw, dict) and raw.get("global_batch") and "grad_accum" not in raw:
            micro = raw.get("micro_batch_size", cls.model_fields["micro_batch_size"].default)
            if isinstance(micro, int) and micro > 0 and isinstance(raw["global_batch"], int):
                raw = {**raw, "grad_accum": max(1, raw["global_batch"] // micro)}
        return raw

    @model_validator(mode="after")
    def _one_budget(self) -> TrainSpec:
        budgets = [b for b in (self.epochs, self.max_steps, self.max_tokens) if b is not None]
        if len(budgets) != 1:
            raise ValueError("set exactly one of epochs, max_steps, max_tokens")
        if self.global_batch is not None and self.global_batch != self.micro_batch_size * self.grad_accum:
            raise ValueError(
                f"global_batch {self.global_batch} must equal micro_batch_size {self.micro_batch_size} × grad_accum "
                f"{self.grad_accum} (the one-process accumulation); leave grad_accum out to derive it"
            )
        return self

    def accumulation(self, world_size: int) -> int:
        """Micro-batches per optimizer step in each of `world_size` processes.

        With global_batch the step holds the same examples whatever the process count (one recipe on
        1 or 8 GPUs); without it, today's rule: the global batch grows with the process count."""
        if self.global_batch is None:
            return self.grad_accum
        per_window = self.micro_batch_size * world_size
        if self.global_batch % per_window:
            raise UserError(
                f"train.global_batch {self.global_batch} is not divisible by micro_batch_size "
                f"{self.micro_batch_size} × {world_size} process(es) = {per_window}: change the process count "
                "or micro_batch_size"
            )
        return self.global_batch // per_window


class EvalSpec(_Section):
    """Greedy generation settings."""

    backend: Literal["vllm", "hf"] = Field("vllm", description="generation engine: vLLM, or transformers generate")
    max_new_tokens: int = Field(1024, ge=1, le=32768, description="generation cap per question")
    stop: tuple[StopString, ...] = Field(("</answer>",), description="stop strings (kept in the output), non-empty")
    temperature: Literal[0, 0.0] = Field(0.0, description="must be 0: greedy decoding")
    batch_size: int = Field(
        64,
        ge=1,
        le=4096,
        description="prompts per generation call / resume chunk (>= 512 where vLLM's kernels are batch-invariant)",
    )


class RunSpec(_Section):
    """A whole run: what to train (optional) and how to evaluate."""

    schema_version: int = Field(
        SCHEMA_VERSION,
        ge=1,
        le=SCHEMA_VERSION,
        strict=True,
        description=f"spec format version (current {SCHEMA_VERSION}); absent means 1, migrated on load",
    )
    name: str = Field(pattern=NAME_PATTERN, description="run name (letters, digits, ._-); names the run directory")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="seeds training (init order, data order) and generation")
    group: str | None = Field(None, max_length=40, description="study group label (orig, A, B, C, lr, base)")
    device: Literal["auto", "cuda", "cpu"] = Field(
        "auto",
        description="what both stages run on: auto (a GPU when torch sees one), cuda (refuse to start without "
        "a CUDA GPU), cpu (the CPU even when a GPU is visible)",
    )
    model: ModelSpec = Field(ModelSpec(), description="which weights to start from")
    data: DataSpec = Field(DataSpec(), description="which GSM8K rows train and evaluate")
    prompt: PromptSpec = Field(PromptSpec(), description="prompt/target template")
    train: TrainSpec | None = Field(None, description="training settings; omit to evaluate the base model")
    eval: EvalSpec = Field(EvalSpec(), description="evaluation settings")
    numerics: Literal["native", "portable"] = Field(
        "native",
        description="CPU numerics profile (app/env/numerics_profile.py), set before torch loads: native "
        "(fastest kernels; bytes repeat on the same CPU model) or portable (AVX2/MKL COMPATIBLE caps, "
        "2 threads; training bytes repeat on any x86-64 CPU with AVX2)",
    )

    @model_validator(mode="before")
    @classmethod
    def _migrate(cls, data: object) -> object:
        return migrate(data) if isinstance(data, dict) else data


def migrate(raw: dict) -> dict:
    """An older spec's fields as today's schema reads them; a newer or malformed version is left for
    the field's own check to refuse (one line naming `schema_version`)."""
    version = raw.get("schema_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version < SCHEMA_VERSION:
        return raw
    for v in range(version, SCHEMA_VERSION):
        raw = MIGRATIONS[v](raw)
    return {**raw, "schema_version": SCHEMA_VERSION}


def format_validation_error(path: str, err: ValidationError) -> list[str]:
    """One line per problem: `file: field.path: message`."""
    lines = []
    for problem in err.errors():
        loc = ".".join(str(p) for p in problem["loc"] if not str(p).startswith("function-after")) or "<root>"
        loc = ".".join(p for p in loc.split(".") if p not in ("int", "literal['full']"))
        hint = did_you_mean(problem["loc"]) if problem["type"] == "extra_forbidden" else ""
        lines.append(one_line(f"{path}: {loc}: {problem['msg']}{hint}"))
    return lines


def did_you_mean(loc: tuple) -> str:
    """`; did you mean `lr`?` for a misspelt key at `loc`, from the fields of the model that holds it."""
    model: type[BaseModel] | None = RunSpec
    for part in loc[:-1]:
        field = model.model_fields.get(str(part)) if model else None
        annotation = field.annotation if field else None
        candidates = [a for a in (annotation, *getattr(annotation, "__args__", ())) if isinstance(a, type)]
        model = next((a for a in candidates if issubclass(a, BaseModel)), None)
    if model is None:
        return ""
    close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1, cutoff=0.6)
    return f"; did you mean `{close[0]}`?" if close else ""


class SpecError(UserError):
    """A spec file failed to load; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def parse_spec(text: str, path: str = "<spec>") -> RunSpec:
    """Parse spec JSON text; raise SpecError with one line per problem."""
    if not text.strip():
        raise SpecError([f"{path}: empty file"])
    # strict: a duplicate key, NaN/Infinity or an over-long integer is refused with one line
    raw = parse_json(text, path, lambda line: SpecError([line]), strict=True)
    if not isinstance(raw, dict):
        raise SpecError([f"{path}: <root>: expected a JSON object, got {type(raw).__name__}"])
    try:
        return RunSpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(format_validation_error(path, exc)) from None


def load_spec(path: str | Path) -> RunSpec:
    """Read and validate a spec file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([f"{p}: no such file"]) from None
    except IsADirectoryError:
        raise SpecError([f"{p}: is a directory, not a spec file"]) from None
    except (OSError, UnicodeDecodeError) as exc:  # no permission, not UTF-8
        raise SpecError([f"{p}: cannot read spec: {exc.__class__.__name__}"]) from None
    return parse_spec(text, str(p))


def dump_spec(spec: RunSpec) -> str:
    """Spec as pretty JSON with every default written out."""
    return json.dumps(spec.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"
