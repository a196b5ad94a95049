"""`repro plan`: what a spec will cost before it runs (tokens, FLOPs, memory, GPU-hours).

Every number is arithmetic on the spec, the GSM8K rows it selects and the model's shape, under
assumptions printed next to the numbers (ASSUMPTIONS). Pure: no torch, transformers or vLLM.
"""

from __future__ import annotations

import glob
import math
import os
from dataclasses import dataclass
from pathlib import Path

from app.errors import UserError
from app.inputs.gsm8k import select_eval, select_train
from app.inputs.prompts import answer_span_start, get_template, render_prompt, render_target
from app.jsonfile import read_object
from app.spec.run_spec import RunSpec
from app.train.sft_data import plan_steps

# Characters per token, measured with the SmolLM2 tokenizer on 1,000 GSM8K training rows (prompt
# 157.8 tokens, target 100.6, answer span 9.3 on average). Tokenizers that split digits (Qwen2.5)
# give somewhat more tokens for the number-heavy targets.
CHARS_PER_TOKEN = {"prompt": 4.29, "target": 2.71, "answer": 2.40}
MFU = 0.35  # model FLOPs utilisation assumed for training
DECODE_BW_EFF = 0.5  # fraction of memory bandwidth a decode step achieves
STEP_OVERHEAD_S = 0.004  # engine overhead per decode step (scheduling, sampling, kernel launches)
STARTUP_S = 180  # per stage: process start, model load, engine warm-up


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


@dataclass(frozen=True)
class Shape:
    """The numbers of a llama/Qwen2-style decoder that the estimates need."""

    vocab: int
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    tied: bool

    @property
    def kv_dim(self) -> int:
        return self.hidden // self.heads * self.kv_heads

    @property
    def params(self) -> int:
        d = self.hidden
        per_layer = 2 * d * d + 2 * d * self.kv_dim + 3 * d * self.intermediate + 2 * d
        return self.vocab * d * (1 if self.tied else 2) + self.layers * per_layer + d


KNOWN = {
    "Qwen/Qwen2.5-Math-1.5B": Shape(151936, 1536, 8960, 28, 12, 2, True),
    "smollm2-135m": Shape(49152, 576, 1536, 30, 9, 3, True),
}


def shape_from_config(cfg: dict) -> Shape:
    heads = cfg["num_attention_heads"]
    return Shape(
        cfg["vocab_size"],
        cfg["hidden_size"],
        cfg["intermediate_size"],
        cfg["num_hidden_layers"],
        heads,
        cfg.get("num_key_value_heads", heads),
        bool(cfg.get("tie_word_embeddings", False)),
    )


def checked_shape(path: Path) -> Shape:
    """The shape a config.json describes, or one line naming the file (a damaged or foreign config)."""
    try:
        return shape_from_config(read_object(path))
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
        raise UserError(f"{path}: not a decoder config plan can read ({type(exc).__name__}: {exc})") from None


def model_shape(model_id: str) -> Shape:
    """Known ids, a local checkpoint's config.json, or a cached hub snapshot's."""
    if model_id in KNOWN:
        return KNOWN[model_id]
    hub = os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface"))
    cached = glob.glob(f"{hub}/hub/models--{model_id.replace('/', '--')}/snapshots/*/config.json")
    for path in [Path(model_id) / "config.json", *map(Path, cached)]:
        if path.is_file():
            return checked_shape(path)
    raise UserError(f"plan: size of model {model_id!r} unknown; known: {sorted(KNOWN)}, or a local checkpoint dir")


def token_lengths(spec: RunSpec) -> list[tuple[int, int, int]]:
    """(prompt, target, answer-span) token estimates for each training row of the spec."""
    template = get_template(spec.prompt.template)
    out = []
    for row in select_train(spec.data.source, spec.data.train_size, spec.data.subset_seed):
        target = render_target(template, row.answer, row.gold)
        answer = target[answer_span_start(template, target) :]
        p = len(render_prompt(template, row.question)) / CHARS_PER_TOKEN["prompt"]
        t = len(target) / CHARS_PER_TOKEN["target"] + 1  # + EOS
        a = len(answer) / CHARS_PER_TOKEN["answer"] + 1
        out.append((math.ceil(p), math.ceil(t), math.ceil(a)))
    return out


def supervised(mode: str, prompt: int, target: int, answer: int) -> int:
    return {"response": target, "answer_only": answer, "full": prompt + target}[mode]


def train_memory(shape: Shape, micro: int, seq: int, dtype: str, checkpointing: bool) -> dict:
    """Peak training memory in GB: fp32 weights, fp32 grads, AdamW's two fp32 moments, activations.

    Activations per token and layer ≈ (6·d + 4·i) values in the compute dtype plus two fp32
    copies of the residual for the norms; with gradient checkpointing only each layer's input is
    kept, plus one layer's full set. Logits: compute-dtype logits, their fp32 copy, the
    log-softmax and its gradient (fp32).
    """
    n, d, i = shape.params, shape.hidden, shape.intermediate
    act_bytes = 2 if dtype == "bfloat16" else 4
    per_layer = act_bytes * (6 * d + 4 * i) + 4 * 2 * d
    tokens = micro * seq
    layers = tokens * (4 * d * shape.layers + per_layer) if checkpointing else tokens * per_layer * shape.layers
    logits = tokens * shape.vocab * (act_bytes + 4 + 4 + 4)
    gb = {"weights": 4 * n, "grads": 4 * n, "adamw": 8 * n, "activations": layers + logits}
    gb = {k: v / 1e9 for k, v in gb.items()}
    return {**gb, "total": sum(gb.values())}


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


def estimate(spec: RunSpec, gpu_name: str = "h100") -> dict:
    """Every planned number for one spec on one GPU of type `gpu_name`."""
    gpu = gpu_by_name(gpu_name)
    shape = model_shape(spec.model.id)
    rows = select_eval(spec.data.source, spec.data.eval_split, spec.data.eval_limit)
    template = get_template(spec.prompt.template)
    eval_prompt = math.ceil(
        sum(len(render_prompt(template, r.question)) for r in rows) / len(rows) / CHARS_PER_TOKEN["prompt"]
    )
    out = {"name": spec.name, "params": shape.params, "eval_prompts": len(rows)}
    out["eval_worst_gen_tokens"] = len(rows) * spec.eval.max_new_tokens
    eval_s = decode_seconds(
        shape, gpu, spec.model.dtype, len(rows), spec.eval.batch_size, eval_prompt, spec.eval.max_new_tokens
    )
    out["eval_hours"] = eval_s / 3600
    out.update(train_estimate(spec, shape, gpu) if spec.train else empty_train())
    out["startup_hours"] = (2 if spec.train else 1) * STARTUP_S / 3600
    out["gpu_hours"] = out["train_hours"] + out["eval_hours"] + out["startup_hours"]
    return out


def train_estimate(spec: RunSpec, shape: Shape, gpu: Gpu) -> dict:
    """Examples, steps, tokens, FLOPs (6·N·T), memory and hours of the train stage on one GPU."""
    t = spec.train
    lengths = [(p, tg, a) for p, tg, a in token_lengths(spec) if t.overlong == "error" or p + tg <= t.max_seq_len]
    full = [p + tg for p, tg, _ in lengths]
    batch = t.micro_batch_size * t.grad_accum
    group = batch * 8 if t.group_by_length else None
    steps = plan_steps(full, batch, 0, group, t.epochs, t.max_steps, t.max_tokens)
    passes = steps * batch / len(full)  # epochs actually covered by the step budget
    tokens = sum(full) * passes
    sup = sum(supervised(t.loss_mask, *x) for x in lengths) * passes
    flops = 6 * shape.params * tokens
    peak = (gpu.bf16_tflops if t.dtype == "bfloat16" else gpu.fp32_tflops) * 1e12
    seq = min(max(full), t.max_seq_len)
    mem = train_memory(shape, t.micro_batch_size, seq, t.dtype, t.gradient_checkpointing)
    return {
        "train_examples": len(full),
        "steps": steps,
        "train_tokens": round(tokens),
        "supervised_tokens": round(sup),
        "train_flops": flops,
        "train_hours": flops / (peak * MFU) / 3600,
        "longest_example": max(full),
        "memory_gb": mem,
        "fits": mem["total"] <= gpu.memory_gb,
    }


def empty_train() -> dict:
    zero = dict.fromkeys(("train_examples", "steps", "train_tokens", "supervised_tokens", "longest_example"), 0)
    return {**zero, "train_flops": 0.0, "train_hours": 0.0, "memory_gb": None, "fits": True}


def gpu_by_name(name: str) -> Gpu:
    if name.lower() not in GPUS:
        raise UserError(f"--gpu {name!r}: known GPUs are {', '.join(GPUS)}")
    return GPUS[name.lower()]


COLUMNS = (
    ("spec", "{name}"),
    ("examples", "{train_examples}"),
    ("steps", "{steps}"),
    ("train tok", "{train_tokens:,}"),
    ("supervised tok", "{supervised_tokens:,}"),
    ("train PFLOP", "{pflop:.1f}"),
    ("peak mem GB", "{mem}"),
    ("eval prompts", "{eval_prompts}"),
    ("worst gen tok", "{eval_worst_gen_tokens:,}"),
    ("train h", "{train_hours:.3f}"),
    ("eval h", "{eval_hours:.3f}"),
    ("GPU-h", "{gpu_hours:.3f}"),
)


def totals(estimates: list[dict]) -> dict:
    keys = ("train_examples", "steps", "train_tokens", "supervised_tokens", "eval_prompts", "eval_worst_gen_tokens")
    out = {k: sum(e[k] for e in estimates) for k in keys}
    hours = {
        k: sum(e[k] for e in estimates)
        for k in ("train_flops", "train_hours", "eval_hours", "startup_hours", "gpu_hours")
    }
    return {"name": "TOTAL", **out, **hours, "memory_gb": None, "fits": all(e["fits"] for e in estimates)}


def table(estimates: list[dict]) -> str:
    """Fixed-width plain-text table, one row per spec and a TOTAL row."""
    cells = [[h for h, _ in COLUMNS]]
    for e in [*estimates, totals(estimates)]:
        mem = e["memory_gb"]
        mem_text = "-" if mem is None else f"{mem['total']:.1f}" + ("" if e["fits"] else " (!)")
        cells.append([f.format(**e, pflop=e["train_flops"] / 1e15, mem=mem_text) for _, f in COLUMNS])
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))) for row in cells
    ]
    return "\n".join(lines)


def assumptions(gpu_name: str) -> list[str]:
    """The assumptions behind the numbers, printed under the table."""
    g = gpu_by_name(gpu_name)
    cpt = CHARS_PER_TOKEN
    return [
        f"GPU {gpu_name}: {g.bf16_tflops:g} TFLOP/s bf16 / {g.fp32_tflops:g} fp32 dense peak, "
        f"{g.bandwidth_tbs:g} TB/s, {g.memory_gb:g} GB; one GPU per run (GPU-h do not change with more)",
        f"tokens = characters / {cpt['prompt']} (prompt), / {cpt['target']} (target), / {cpt['answer']} (answer "
        "span), measured with the SmolLM2 tokenizer on GSM8K; digit-splitting tokenizers give a few % more",
        f"training FLOPs = 6 x params x non-pad tokens (padding and attention not counted), at {MFU:.0%} MFU",
        "peak memory = fp32 weights + fp32 grads + AdamW 2 x fp32 + activations at micro-batch x longest "
        "example (bf16 autocast halves activations, not weights); (!) = over the GPU's memory",
        f"eval: worst case, every prompt runs to max_new_tokens; each decode step reads the weights and KV "
        f"cache at {DECODE_BW_EFF:.0%} of bandwidth + {STEP_OVERHEAD_S * 1000:g} ms overhead, batch = eval.batch_size",
        f"GPU-h = train h + eval h + {STARTUP_S / 60:g} min per stage for start-up (model load, engine warm-up)",
    ]
