"""Greedy generation backends behind one interface: vLLM (the only module importing it) and HF.

Both take prompt token ids (tokenised once, exactly as in training) and return, per prompt, the
raw text (stop string kept), the number of generated tokens and why generation ended.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from app.env.fingerprint import BACKEND_PACKAGES, ENGINE_PACKAGES
from app.env.versions import installed_version
from app.inputs.cache import cache_root
from app.inputs.prompts import stop_token_ids


@dataclass(frozen=True)
class Generation:
    text: str
    n_tokens: int
    finish_reason: str  # "stop" (stop string or EOS) or "length"
    stop_reason: str | int | None  # the stop string, or the EOS id; None when length-capped


class Generator(Protocol):
    versions: dict

    def generate(self, prompt_ids: list[list[int]]) -> list[Generation]: ...


def batch_invariance_supported() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.get_device_capability()[0] >= 8


def vllm_environment() -> None:
    """Settings vLLM reads at import: in-process engine, batch invariance, private caches, CPU KV."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    # Batch-invariant kernels (beta in vLLM) need an NVIDIA GPU of compute capability >= 8.0.
    os.environ.setdefault("VLLM_BATCH_INVARIANT", "1" if batch_invariance_supported() else "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    cache = str(cache_root() / "vllm")
    os.environ.setdefault("VLLM_CACHE_ROOT", cache)
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", os.path.join(cache, "inductor"))
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")


@dataclass(frozen=True)
class GenSettings:
    """What both backends need besides the model: greedy decoding limits and the stop strings."""

    dtype: str
    max_new_tokens: int
    stop: tuple[str, ...]
    seed: int
    max_model_len: int
    revision: str | None = None
    trust_remote_code: bool = False  # inputs/remote_code.allowed(spec), never the spec's field: tokenizer, model, vLLM
    device: str = "auto"  # the spec's: `cpu` keeps HF generation off a visible GPU (vLLM's build fixes its device)


class VllmGenerator:
    """vLLM offline engine, greedy, stop string kept, prefix caching off (vllm#9744)."""

    packages = BACKEND_PACKAGES["vllm"]  # distributions whose versions env.json records

    def __init__(self, model_path: str, cfg: GenSettings):
        vllm_environment()
        import torch
        from vllm import LLM, SamplingParams

        # CUDA graphs on a GPU (eager decoding is 2-4x slower there); on the CPU the compile warm-up
        # costs minutes per start for no gain, and eager fp32 is what the CPU goldens were made with.
        eager = not torch.cuda.is_available()
        self.llm = LLM(
            model=model_path,
            tokenizer=model_path,
            revision=cfg.revision,
            trust_remote_code=cfg.trust_remote_code,
            dtype=cfg.dtype,
            seed=cfg.seed,
            enforce_eager=eager,
            enable_prefix_caching=False,
            max_model_len=cfg.max_model_len,
        )
        self.params = SamplingParams(
            temperature=0.0,
            max_tokens=cfg.max_new_tokens,
            stop=list(cfg.stop),
            include_stop_str_in_output=True,
            seed=cfg.seed,
        )
        self.versions = {
            "backend": "vllm",
            "vllm": installed_version("vllm") or installed_version("vllm-cpu"),
            "vllm_dist": "vllm" if installed_version("vllm") else "vllm-cpu",
            "batch_invariant": os.environ.get("VLLM_BATCH_INVARIANT") == "1",
            "torch": installed_version("torch"),
        }
        if not eager:  # recorded only where on: CPU runs keep the engine record older runs were compared by
            self.versions["cuda_graphs"] = True

    def generate(self, prompt_ids: list[list[int]]) -> list[Generation]:
        from vllm.inputs import TokensPrompt

        prompts = [TokensPrompt(prompt_token_ids=ids) for ids in prompt_ids]
        outs = self.llm.generate(prompts, self.params, use_tqdm=False)
        return [_from_vllm(o.outputs[0]) for o in outs]

    def close(self) -> None:
        del self.llm
        gc.collect()


def _from_vllm(completion) -> Generation:
    reason = "length" if completion.finish_reason == "length" else "stop"
    return Generation(completion.text, len(completion.token_ids), reason, completion.stop_reason)


class HfGenerator:
    """transformers batched greedy generation: left padding, stop-string criterion, fp32 by default."""

    packages = BACKEND_PACKAGES["hf"]

    def __init__(self, model_path: str, cfg: GenSettings):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.manual_seed(cfg.seed)
        self.torch = torch
        trust = cfg.trust_remote_code
        self.tokenizer = AutoTokenizer.from_pretrained(model_path, revision=cfg.revision, trust_remote_code=trust)
        use_cuda = cfg.device != "cpu" and torch.cuda.is_available()
        self.device = torch.device("cuda" if use_cuda else "cpu")
        self.model = (
            AutoModelForCausalLM.from_pretrained(
                model_path,
                revision=cfg.revision,
                dtype=getattr(torch, cfg.dtype),
                use_safetensors=True,
                trust_remote_code=trust,
            )
            .to(self.device)
            .eval()
        )
        self.max_new_tokens, self.stop = cfg.max_new_tokens, cfg.stop
        # Stop at every EOS the checkpoint names (Qwen2.5-Math: <|im_end|> and <|endoftext|>), as vLLM does.
        self.eos = stop_token_ids(self.model.generation_config.eos_token_id, self.tokenizer.eos_token_id)
        self.versions = {
            "backend": "hf",
            "transformers": installed_version("transformers"),
            "torch": installed_version("torch"),
        }

    def generate(self, prompt_ids: list[list[int]]) -> list[Generation]:
        torch, tok = self.torch, self.tokenizer
        width = max(len(p) for p in prompt_ids)
        pad = tok.pad_token_id if tok.pad_token_id is not None else self.eos[0]
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompt_ids], device=self.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompt_ids], device=self.device)
        with torch.no_grad():
            out = self.model.generate(
                input_ids=ids,
                attention_mask=mask,
                do_sample=False,
                max_new_tokens=self.max_new_tokens,
                stop_strings=list(self.stop) or None,
                tokenizer=tok,
                pad_token_id=pad,
                eos_token_id=self.eos,
            )
        return [self._finish(row[width:].tolist()) for row in out]

    def _finish(self, new: list[int]) -> Generation:
        cut = next((i for i, t in enumerate(new) if t in self.eos), len(new))
        text = self.tokenizer.decode(new[:cut], skip_special_tokens=True)
        for s in self.stop:
            if s in text:  # finished sequences are padded after the stop string
                return Generation(text[: text.index(s) + len(s)], cut, "stop", s)
        if cut < len(new):
            return Generation(text, cut + 1, "stop", new[cut])
        return Generation(text, len(new), "length", None)

    def close(self) -> None:
        del self.model
        gc.collect()


# The eval backends: app/spec/run_spec.py EvalSpec.backend offers exactly these names, and app/env/fingerprint.py
# BACKEND_PACKAGES names their distributions for env.json and the report's engine column (both tested).
BACKENDS = {"vllm": VllmGenerator, "hf": HfGenerator}


def engine_label(packages: dict) -> str:
    """'vllm-cpu 0.32.0'-style versions of the backend-only packages present in a fingerprint."""
    shared = ("torch", "transformers")
    return " ".join(f"{n} {packages[n]}" for n in ENGINE_PACKAGES if n not in shared and packages.get(n)) or "-"


@contextmanager
def open_generator(backend: str, model_path: str, cfg: GenSettings) -> Iterator[Generator]:
    """One engine at a time: built on entry, torn down on exit."""
    from app.env.driver import check_driver

    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}")
    check_driver()
    gen = BACKENDS[backend](model_path, cfg)
    try:
        yield gen
    finally:
        gen.close()
