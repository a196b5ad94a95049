"""Checkpoints (app/train/checkpoint.py): resume tensors load without running a pickle's code, and a saved
config keeps its rope_theta under both transformers generations."""

import json

import pytest
import torch

from app.errors import IntegrityError
from tests.helpers import crafted


def test_load_tensors_refuses_a_pickle_in_process(tmp_path):
    from app.train.checkpoint import load_tensors

    marker = tmp_path / "PWNED"
    path = tmp_path / "model.pt"
    path.write_bytes(crafted(marker))
    with pytest.raises(IntegrityError, match=f"^{path}: not a plain tensor file"):
        load_tensors(path)
    assert not marker.exists()
    torch.save({"w": torch.ones(2)}, path)
    assert torch.equal(load_tensors(path)["w"], torch.ones(2))


def test_checkpoint_rope_theta_survives_both_transformers_generations(tmp_path, tokenizer):
    from transformers import AutoConfig, AutoModelForCausalLM

    from app.inputs.random_init import model_config
    from app.train.checkpoint import save_checkpoint

    model = AutoModelForCausalLM.from_config(model_config("tiny-llama", vocab_size=len(tokenizer)))  # theta 1e5
    save_checkpoint(model, tokenizer, tmp_path / "ckpt")
    raw = json.loads((tmp_path / "ckpt/config.json").read_text())
    assert raw["rope_theta"] == raw["rope_parameters"]["rope_theta"] == 100000.0  # 4.x would default to 1e4
    assert AutoConfig.from_pretrained(tmp_path / "ckpt").rope_parameters["rope_theta"] == 100000.0
