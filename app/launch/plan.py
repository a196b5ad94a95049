"""`repro plan`: what a spec will cost before it runs (tokens, FLOPs, memory, GPU-hours).

Every number is arithmetic on the spec, the GSM8K rows it selects and the model's shape, under
assumptions printed next to the numbers (ASSUMPTIONS). A plan never needs a fetch: rows that cannot
be read yet are estimated from GSM8K's split sizes and mean lengths (with a warning), a `run:` model
is sized from the spec of that run, and a model of unknown size is named as unknown in the table.
No torch or vLLM; transformers only to count tokens with a tokenizer already cached here.
"""

from __future__ import annotations

import glob
import math
import os
from dataclasses import dataclass
from pathlib import Path

from app.errors import UserError
from app.inputs.gsm8k import FULL_SIZES, Example, nested_indices, resolve_source, select_eval, select_train
from app.inputs.prompts import answer_span_start, get_template, render_prompt, render_target
from app.jsonfile import read_object
from app.launch.memory_model import CE_CHUNK, Shape, shape_from_config, train_memory  # noqa: F401  (re-exported)
from app.spec.identity import RUN_PREFIX, referenced_name
from app.spec.run_spec import RunSpec, load_spec
from app.train.sft_data import plan_budget

# Characters per token, measured with the SmolLM2 tokenizer on 1,000 GSM8K training rows (prompt
# 157.8 tokens, target 100.6, answer span 9.3 on average). Tokenizers that split digits (Qwen2.5)
# give somewhat more tokens for the number-heavy targets.
CHARS_PER_TOKEN = {"prompt": 4.29, "target": 2.71, "answer": 2.40}
MFU = 0.35  # model FLOPs utilisation assumed for training, unless `make gpu-check` measured it (GPU_CHECK)
GPU_CHECK = Path(__file__).resolve().parents[2] / "docs" / "gpu" / "gpu_check.json"
DECODE_BW_EFF = 0.5  # fraction of memory bandwidth a decode step achieves
STEP_OVERHEAD_S = 0.004  # engine overhead per decode step (scheduling, sampling, kernel launches)
# vLLM decodes at most max_num_seqs sequences at once (256, its documented default; H100-class GPUs may
# default higher, so this is the cautious figure). `repro eval` hands it chunks of submit_chunk prompts.
MAX_NUM_SEQS = 256
STARTUP_S = 180  # per stage: process start, model load, engine warm-up


@dataclass(frozen=True)
class SplitShape:
    """Mean characters of a question, a rationale (calculator notes removed) and a gold number, and
    those of the row with the longest prompt + target: what plan assumes for rows it cannot read."""

    question: float
    rationale: float
    gold: float
    longest: tuple[int, int, int]


# Measured on openai/gsm8k (main), the same rows as the shared GSM8K copy; sizes are FULL_SIZES.
GSM8K_SHAPE = {
    "train": SplitShape(234.5, 239.2, 2.3, (461, 1137, 3)),
    "test": SplitShape(239.9, 244.0, 2.3, (848, 676, 3)),
}


@dataclass(frozen=True)
class Gpu:
    """Vendor dense peak (no sparsity) for bf16 tensor cores and plain fp32; HBM bandwidth and size."""

    bf16_tflops: float
    fp32_tflops: float
    bandwidth_tbs: float
    memory_gb: float


GPUS = {
    "h100": Gpu(989, 67, 3.35, 80),
    "h200": Gpu(989, 67, 4.8, 141),
    "a100": Gpu(312, 19.5, 2.04, 80),
    "a100-40": Gpu(312, 19.5, 1.56, 40),
    "l40s": Gpu(362, 91.6, 0.864, 48),
    "a10": Gpu(125, 31.2, 0.6, 24),
}


KNOWN = {
    "Qwen/Qwen2.5-Math-1.5B": Shape(151936, 1536, 8960, 28, 12, 2, True),
    "smollm2-135m": Shape(49152, 576, 1536, 30, 9, 3, True),
}


def checked_shape(path: Path) -> Shape:
    """The shape a config.json describes, or one line naming the file (a damaged or foreign config)."""
    try:
        return shape_from_config(read_object(path))
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
        raise UserError(f"{path}: not a decoder config plan can read ({type(exc).__name__}: {exc})") from None


def known_shape(model_id: str) -> Shape | None:
    """Known ids, a local checkpoint's config.json, or a cached (or fetched) hub snapshot's; else None."""
    from app.inputs.hub import hub_cache

    if model_id in KNOWN:
        return KNOWN[model_id]
    hub = os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface"))
    snapshots = f"models--{model_id.replace('/', '--')}/snapshots/*/config.json"
    cached = [*glob.glob(f"{hub}/hub/{snapshots}"), *glob.glob(f"{hub_cache()}/{snapshots}")]
    for path in [Path(model_id) / "config.json", *map(Path, cached)]:
        if path.is_file():
            return checked_shape(path)
    return None


def model_shape(model_id: str) -> Shape:
    """known_shape, or one line saying the size is unknown."""
    shape = known_shape(model_id)
    if shape is None:
        raise UserError(f"plan: size of model {model_id!r} unknown; known: {sorted(KNOWN)}, or a local checkpoint dir")
    return shape


def run_reference(model_id: str) -> str | None:
    """The spec name a `run:` model id names, or None for any other id."""
    return referenced_name(model_id[len(RUN_PREFIX) :]) if model_id.startswith(RUN_PREFIX) else None


def spec_set(loaded: list[tuple[Path, RunSpec]]) -> dict[str, RunSpec]:
    """Spec name → spec: the given specs, plus each spec a `run:` id names that is not among them but
    sits beside the spec naming it as `<name>.json` (the matrix writes them so)."""
    by_name = {spec.name: spec for _, spec in loaded}
    todo = list(loaded)
    while todo:
        path, spec = todo.pop()
        ref = run_reference(spec.model.id)
        candidate = path.parent / f"{ref}.json"
        if ref is None or ref in by_name or not candidate.is_file():
            continue
        try:
            other = load_spec(candidate)
        except UserError:  # not a spec plan can read: that model stays unknown
            continue
        if other.name == ref:
            by_name[ref] = other
            todo.append((candidate, other))
    return by_name


def base_model(spec: RunSpec, specs: dict[str, RunSpec]) -> str:
    """The model id a spec's weights come from: a `run:` id followed to the model its run trained
    (through `specs`); a reference that cannot be followed stays as it is."""
    model_id, seen = spec.model.id, set()
    while (ref := run_reference(model_id)) is not None and ref in specs and ref not in seen:
        seen.add(ref)
        model_id = specs[ref].model.id
    return model_id


def data_warning(source: str) -> str | None:
    """Why plan cannot read a source's rows (hub data not fetched, no local directory), or None."""
    where = resolve_source(source)
    if isinstance(where, str):
        from app.inputs.hub import HubInput, cached_record, split_dataset_source

        repo_id, revision = split_dataset_source(where)
        if cached_record(HubInput("dataset", repo_id, revision, "data.source")) is None:
            return f"{where} is not fetched (`repro fetch SPEC`)"
        return None
    return None if where.is_dir() else f"{where} not found (GSM8K_DIR or data.source)"


def estimated_rows(split: str, n: int) -> list[Example]:
    """`n` stand-in rows of GSM8K's mean lengths, the last one as long as the split's longest row."""
    shape = GSM8K_SHAPE[split]

    def row(question: float, rationale: float, gold: float) -> Example:
        number = "7" * round(gold)
        return Example(f"{split}-estimate", "q" * round(question), "r" * round(rationale) + "\n#### " + number, number)

    mean = row(shape.question, shape.rationale, shape.gold)
    return [mean] * (n - 1) + [row(*shape.longest)] if n else []


def plan_rows(spec: RunSpec) -> tuple[list[Example], list[Example], str | None]:
    """The training rows and the eval rows of a spec, and a warning when they are estimated."""
    d = spec.data
    why = data_warning(d.source)
    if why is None:
        train = select_train(d.source, d.train_size, d.subset_seed) if spec.train else []
        return train, select_eval(d.source, d.eval_split, d.eval_limit), None
    n_train = len(nested_indices(FULL_SIZES["train"], d.train_size, d.subset_seed)) if spec.train else 0
    n_eval = min(d.eval_limit or FULL_SIZES[d.eval_split], FULL_SIZES[d.eval_split])
    sizes = "/".join(f"{FULL_SIZES[s]} {s}" for s in ("train", "test"))
    warning = f"warning: plan: {why}: rows estimated from GSM8K's split sizes ({sizes}) and mean lengths"
    return estimated_rows("train", n_train), estimated_rows(d.eval_split, n_eval), warning


def cached_tokenizer(model_id: str) -> Path | None:
    """The spec's own tokenizer where it is on this machine already (never fetched or built here)."""
    from app.inputs.hub import HubInput, is_hub_model, local_snapshot
    from app.inputs.models import EMBEDDED, cache_dir_of

    if model_id == EMBEDDED:
        try:
            path = cache_dir_of("tokenizers")
        except UserError:  # the embedded model's package is not installed: estimate from characters
            path = None
    elif Path(model_id).expanduser().is_dir():
        path = Path(model_id).expanduser()
    elif is_hub_model(model_id):
        path = local_snapshot(HubInput("model", model_id, None, "model.id"))
    else:
        path = None
    return path if path is not None and (path / "tokenizer.json").is_file() else None


def token_lengths(spec: RunSpec, rows: list[Example]) -> list[tuple[int, int, int]]:
    """(prompt, target, answer-span) tokens of each training row: counted with the spec's own tokenizer
    where it is cached (Qwen splits digits: a few % more), else estimated from characters (CHARS_PER_TOKEN)."""
    template = get_template(spec.prompt.template)
    path = cached_tokenizer(spec.model.id)
    if path is not None:
        return counted_lengths(path, template, rows)
    out = []
    for row in rows:
        target = render_target(template, row.answer, row.gold)
        answer = target[answer_span_start(template, target) :]
        p = len(render_prompt(template, row.question)) / CHARS_PER_TOKEN["prompt"]
        t = len(target) / CHARS_PER_TOKEN["target"] + 1  # + EOS
        a = len(answer) / CHARS_PER_TOKEN["answer"] + 1
        out.append((math.ceil(p), math.ceil(t), math.ceil(a)))
    return out


def counted_lengths(path: Path, template, rows: list[Example]) -> list[tuple[int, int, int]]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)  # a tokenizer.json: no code to run
    count = lambda text: len(tok(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    out = []
    for row in rows:
        target = render_target(template, row.answer, row.gold)
        answer = target[answer_span_start(template, target) :]
        out.append((count(render_prompt(template, row.question)), count(target) + 1, count(answer) + 1))
    return out


def supervised(mode: str, prompt: int, target: int, answer: int) -> int:
    return {"response": target, "answer_only": answer, "full": prompt + target}[mode]


def engine_concurrency(batch_size: int) -> int:
    """Sequences decoding at once on a GPU: `repro eval` submits submit_chunk prompts per call (batch-invariant
    kernels on every GPU in GPUS, compute capability ≥ 8), of which vLLM decodes MAX_NUM_SEQS at a time."""
    from app.eval.evaluate import submit_chunk

    return min(submit_chunk(batch_size, {"batch_invariant": True}), MAX_NUM_SEQS)


def decode_seconds(shape: Shape, gpu: Gpu, dtype: str, n: int, batch: int, prompt: int, new: int) -> float:
    """Worst case: every prompt generates `new` tokens; each step reads weights + KV cache."""
    wbytes = (2 if dtype == "bfloat16" else 4) * shape.params
    kv_per_token = 2 * shape.layers * shape.kv_dim * (2 if dtype == "bfloat16" else 4)
    total = 0.0
    for start in range(0, n, batch):
        b = min(batch, n - start)
        kv = b * (prompt + new / 2) * kv_per_token  # mean context over the generation
        total += new * ((wbytes + kv) / (gpu.bandwidth_tbs * 1e12 * DECODE_BW_EFF) + STEP_OVERHEAD_S)
    return total


def estimate(spec: RunSpec, gpu_name: str = "h100", specs: dict[str, RunSpec] | None = None) -> dict:
    """Every planned number for one spec on one GPU of type `gpu_name`; `specs` (spec_set) sizes a
    `run:` model. A model of unknown size leaves params, FLOPs, memory and hours None; `warnings`
    says when the rows are estimated."""
    gpu = gpu_by_name(gpu_name)
    model_id = base_model(spec, specs or {})
    shape = known_shape(model_id)
    train_rows, rows, warning = plan_rows(spec)
    template = get_template(spec.prompt.template)
    eval_prompt = math.ceil(
        sum(len(render_prompt(template, r.question)) for r in rows) / len(rows) / CHARS_PER_TOKEN["prompt"]
    )
    params = None if shape is None else shape.params
    out = {"name": spec.name, "model": model_id, "params": params, "eval_prompts": len(rows)}
    out["warnings"] = [warning] if warning else []
    out["eval_worst_gen_tokens"] = len(rows) * spec.eval.max_new_tokens
    eval_args = (
        spec.model.dtype,
        len(rows),
        engine_concurrency(spec.eval.batch_size),
        eval_prompt,
        spec.eval.max_new_tokens,
    )
    out["eval_hours"] = None if shape is None else decode_seconds(shape, gpu, *eval_args) / 3600
    out.update(train_estimate(spec, train_rows, shape, gpu, train_mfu(gpu_name)) if spec.train else empty_train())
    out["startup_hours"] = (2 if spec.train else 1) * STARTUP_S / 3600
    out["gpu_hours"] = None if shape is None else out["train_hours"] + out["eval_hours"] + out["startup_hours"]
    return out


def train_estimate(spec: RunSpec, rows: list[Example], shape: Shape | None, gpu: Gpu, mfu: float = MFU) -> dict:
    """Examples, steps, tokens, FLOPs (6·N·T), memory and hours of the train stage on one GPU (the
    last three None when the model's size is unknown)."""
    t = spec.train
    lengths = [(p, tg, a) for p, tg, a in token_lengths(spec, rows) if t.overlong == "error" or p + tg <= t.max_seq_len]
    full = [p + tg for p, tg, _ in lengths]
    batch = t.micro_batch_size * t.grad_accum
    group = batch * 8 if t.group_by_length else None
    budget = plan_budget(full, batch, t.micro_batch_size, 0, group, t.epochs, t.max_steps, t.max_tokens)
    steps = budget.steps
    passes = steps * batch / len(full)  # epochs actually covered by the step budget
    tokens = budget.tokens or sum(full) * passes
    sup = sum(supervised(t.loss_mask, *x) for x in lengths) * passes
    out = {
        "train_examples": len(full),
        "steps": steps,
        "train_tokens": round(tokens),
        "supervised_tokens": round(sup),
        "longest_example": max(full),
    }
    if shape is None:
        return {**out, "train_flops": None, "train_hours": None, "memory_gb": None, "fits": True}
    flops = 6 * shape.params * tokens
    peak = (gpu.bf16_tflops if t.dtype == "bfloat16" else gpu.fp32_tflops) * 1e12
    mem = train_memory(shape, t.micro_batch_size, min(max(full), t.max_seq_len), t.dtype, t.gradient_checkpointing)
    hours = flops / (peak * mfu) / 3600
    return {**out, "train_flops": flops, "train_hours": hours, "memory_gb": mem, "fits": mem["total"] <= gpu.memory_gb}


def empty_train() -> dict:
    zero = dict.fromkeys(("train_examples", "steps", "train_tokens", "supervised_tokens", "longest_example"), 0)
    return {**zero, "train_flops": 0.0, "train_hours": 0.0, "memory_gb": None, "fits": True}


def measured_mfu(gpu_name: str) -> tuple[float, str] | None:
    """(MFU, where) that `make gpu-check` measured training the 1.5B shape on this GPU kind, if committed."""
    if not GPU_CHECK.is_file():
        return None
    report = read_object(GPU_CHECK)
    gpu = str(report.get("environment", {}).get("gpu") or "")
    if report.get("mode") != "full" or gpu_name.lower() not in gpu.lower():
        return None
    runs = report.get("models", {}).get("qwen2.5-1.5b", {}).get("training")
    mfu = runs[0].get("mfu") if isinstance(runs, list) and runs else None
    return (float(mfu), f"{gpu} in {GPU_CHECK.relative_to(GPU_CHECK.parents[2])}") if mfu else None


def train_mfu(gpu_name: str) -> float:
    measured = measured_mfu(gpu_name)
    return measured[0] if measured else MFU


def gpu_by_name(name: str) -> Gpu:
    if name.lower() not in GPUS:
        raise UserError(f"--gpu {name!r}: known GPUs are {', '.join(GPUS)}")
    return GPUS[name.lower()]


COLUMNS = (  # header, estimate key, format; a key a model of unknown size leaves None shows "?"
    ("spec", "spec", ""),
    ("examples", "train_examples", ""),
    ("steps", "steps", ""),
    ("train tok", "train_tokens", ","),
    ("supervised tok", "supervised_tokens", ","),
    ("train PFLOP", "train_pflop", ".1f"),
    ("peak mem GB", "mem", ""),
    ("eval prompts", "eval_prompts", ""),
    ("worst gen tok", "eval_worst_gen_tokens", ","),
    ("train h", "train_hours", ".3f"),
    ("eval h", "eval_hours", ".3f"),
    ("GPU-h", "gpu_hours", ".3f"),
)
SIZED = ("train_flops", "train_hours", "eval_hours", "gpu_hours")  # need the model's size


def totals(estimates: list[dict]) -> dict:
    """Sums over the specs; the sized numbers over the specs whose model size is known, `unknown_size`
    naming the others."""
    keys = ("train_examples", "steps", "train_tokens", "supervised_tokens", "eval_prompts", "eval_worst_gen_tokens")
    out = {k: sum(e[k] for e in estimates) for k in keys}
    hours = {k: sum(e[k] or 0 for e in estimates) for k in (*SIZED, "startup_hours")}
    unknown = [e["name"] for e in estimates if e.get("params", 0) is None]
    fits = all(e["fits"] for e in estimates)
    return {"name": "TOTAL", **out, **hours, "memory_gb": None, "fits": fits, "unknown_size": unknown}


def row_cells(e: dict) -> list[str]:
    """One table row: a spec whose model size is unknown says so in its name cell, and its sized
    numbers are "?"; the TOTAL row's sized sums get "+?" when they leave some out."""
    unknown = e.get("params", 0) is None
    mem = e["memory_gb"]
    fields = {**e, "spec": e["name"] + (f" (size of {e['model']} unknown)" if unknown else "")}
    fields["train_pflop"] = None if e["train_flops"] is None else e["train_flops"] / 1e15
    fields["mem"] = "-" if mem is None else f"{mem['total']:.1f}" + ("" if e["fits"] else " (!)")
    if unknown and e["train_examples"]:
        fields["mem"] = "?"
    partial = "+?" if e.get("unknown_size") else ""
    cells = []
    for _, key, fmt in COLUMNS:
        value = fields[key]
        text = "?" if value is None else format(value, fmt)
        cells.append(text + partial if key in ("train_pflop", *SIZED) else text)
    return cells


def table(estimates: list[dict]) -> str:
    """Fixed-width plain-text table, one row per spec and a TOTAL row."""
    cells = [[h for h, _, _ in COLUMNS]] + [row_cells(e) for e in [*estimates, totals(estimates)]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))) for row in cells
    ]
    return "\n".join(lines)


def warnings(estimates: list[dict]) -> list[str]:
    """Each distinct warning of the estimates once, in order."""
    return list(dict.fromkeys(w for e in estimates for w in e["warnings"]))


def assumptions(gpu_name: str) -> list[str]:
    """The assumptions behind the numbers, printed under the table."""
    g = gpu_by_name(gpu_name)
    cpt = CHARS_PER_TOKEN
    return [
        f"GPU {gpu_name}: {g.bf16_tflops:g} TFLOP/s bf16 / {g.fp32_tflops:g} fp32 dense peak, "
        f"{g.bandwidth_tbs:g} TB/s, {g.memory_gb:g} GB; one GPU per run (GPU-h do not change with more)",
        "training tokens counted with the spec's own tokenizer where it is cached here (repro fetch); else "
        f"characters / {cpt['prompt']} (prompt), / {cpt['target']} (target), / {cpt['answer']} (answer span), "
        "measured with the SmolLM2 tokenizer on GSM8K (digit-splitting tokenizers give a few % more)",
        "training FLOPs = 6 x params x non-pad tokens (padding and attention not counted), at "
        + (
            f"{m[0]:.0%} MFU measured by make gpu-check on {m[1]}"
            if (m := measured_mfu(gpu_name))
            else f"{MFU:.0%} MFU"
        ),
        "peak memory = fp32 weights + fp32 grads + AdamW 2 x fp32 + activations at micro-batch x longest "
        f"example (bf16 autocast halves activations, not weights) + logits (chunked CE: {CE_CHUNK} positions "
        "in fp32 at a time); (!) = over the GPU's memory",
        f"eval: worst case, every prompt runs to max_new_tokens; each decode step reads the weights and KV "
        f"cache at {DECODE_BW_EFF:.0%} of bandwidth + {STEP_OVERHEAD_S * 1000:g} ms overhead; up to "
        f"{MAX_NUM_SEQS} sequences at once (vLLM max_num_seqs; repro eval submits chunks of >= 512 prompts on a GPU, "
        "CUDA graphs on)",
        f"GPU-h = train h + eval h + {STARTUP_S / 60:g} min per stage for start-up (model load, engine warm-up)",
    ]
