"""The masking contract on hand-readable examples, span checks, length limits and the data stream."""

from typing import get_args

import pytest

from app.errors import UserError
from app.spec.run_spec import TrainSpec
from app.train.sft_data import (
    IGNORE,
    MASK_MODES,
    Budget,
    Encoded,
    apply_length_limit,
    collate,
    encode_example,
    epoch_order,
    plan_budget,
    stream_slice,
)

PROMPT = "User: 2+3?\nAssistant: <think>"
TARGET = " 2 plus 3 is 5 </think> <answer> 5 </answer>"
START = TARGET.index(" <answer>")


def supervised_text(tok, enc: Encoded) -> str:
    return tok.decode([t for t in enc.labels if t != IGNORE], clean_up_tokenization_spaces=False)


def test_response_mask_covers_target_and_eos_only(tokenizer):
    enc = encode_example(tokenizer, "ex", PROMPT, TARGET, START, "response")
    n_prompt = len(tokenizer(PROMPT, add_special_tokens=False)["input_ids"])
    assert len(enc.input_ids) == len(enc.labels) == len(enc.response_mask)
    assert enc.labels[:n_prompt] == [IGNORE] * n_prompt
    assert supervised_text(tokenizer, enc) == TARGET + tokenizer.eos_token
    assert enc.input_ids[-1] == tokenizer.eos_token_id and enc.labels[-1] == tokenizer.eos_token_id
    assert enc.response_mask == [0] * n_prompt + [1] * (len(enc.input_ids) - n_prompt)


def test_answer_only_mask_covers_answer_span_and_eos(tokenizer):
    enc = encode_example(tokenizer, "ex", PROMPT, TARGET, START, "answer_only")
    assert supervised_text(tokenizer, enc) == " <answer> 5 </answer>" + tokenizer.eos_token
    assert sum(enc.response_mask) > enc.n_supervised


def test_full_mask_supervises_every_predicted_position(tokenizer):
    enc = encode_example(tokenizer, "ex", PROMPT, TARGET, START, "full")
    assert enc.labels[0] == IGNORE  # position 0 is never predicted by the shifted loss
    assert enc.labels[1:] == enc.input_ids[1:]
    assert enc.n_supervised == len(enc.input_ids) - 1


@pytest.mark.parametrize("mode", sorted(MASK_MODES))
def test_position_zero_is_never_supervised(tokenizer, mode):
    enc = encode_example(tokenizer, "ex", PROMPT, TARGET, START, mode)
    assert enc.labels[0] == IGNORE and enc.n_supervised < len(enc.input_ids)


def test_spec_offers_exactly_the_mask_table():
    assert set(get_args(TrainSpec.model_fields["loss_mask"].annotation)) == set(MASK_MODES)


def test_prompt_and_target_are_tokenised_apart(tokenizer):
    enc = encode_example(tokenizer, "ex", PROMPT, TARGET, START, "response")
    n_prompt = len(tokenizer(PROMPT, add_special_tokens=False)["input_ids"])
    assert enc.input_ids[:n_prompt] == tokenizer(PROMPT, add_special_tokens=False)["input_ids"]


def test_straddling_answer_boundary_fails_fast(tokenizer):
    with pytest.raises(UserError, match="example bad: supervised tokens decode"):
        encode_example(tokenizer, "bad", PROMPT, TARGET, START + 3, "answer_only")


def test_empty_supervision_fails_fast(tokenizer):
    with pytest.raises(UserError, match="example e0: no supervised"):
        encode_example(tokenizer, "e0", PROMPT, " 5", 99, "answer_only")


def _enc(i, n):
    return Encoded(f"e{i}", [1] * n, [1] * n, [1] * n)


def test_overlong_is_error_or_counted_drop():
    data = [_enc(0, 10), _enc(1, 30), _enc(2, 12)]
    with pytest.raises(UserError, match="example e1: 30 tokens > train.max_seq_len=20"):
        apply_length_limit(data, 20, "error")
    kept, dropped = apply_length_limit(data, 20, "drop")
    assert [e.id for e in kept] == ["e0", "e2"] and dropped == 1


def test_collate_right_pads(tokenizer):
    batch = collate([_enc(0, 2), _enc(1, 4)], pad_id=0)
    assert batch["input_ids"].shape == (2, 4)
    assert batch["labels"][0].tolist() == [1, 1, IGNORE, IGNORE]
    assert batch["attention_mask"][0].tolist() == [1, 1, 0, 0]


def test_stream_is_epoch_permutations_and_resumable():
    lengths = list(range(10))
    whole = stream_slice(lengths, 3, 0, 25, None)
    assert sorted(whole[:10]) == list(range(10)) and sorted(whole[10:20]) == list(range(10))
    assert stream_slice(lengths, 3, 7, 9, None) == whole[7:16]
    assert whole[:10] != whole[10:20]


def test_length_grouping_sorts_within_chunks():
    lengths = [5, 50, 1, 40, 3, 30, 2, 20]
    order = epoch_order(lengths, 0, 0, group=4)
    for chunk in (order[:4], order[4:]):
        assert [lengths[i] for i in chunk] == sorted((lengths[i] for i in chunk), reverse=True)
    assert sorted(order) == list(range(8))


def test_plan_budget_budgets():
    lengths = [10] * 20
    assert plan_budget(lengths, 8, 4, 0, None, epochs=1, max_steps=None, max_tokens=None) == Budget(3)
    assert plan_budget(lengths, 4, 4, 0, None, epochs=3, max_steps=None, max_tokens=None) == Budget(15)
    assert plan_budget(lengths, 4, 4, 0, None, epochs=None, max_steps=7, max_tokens=None) == Budget(7)
    # 100 tokens = 10 examples: two whole steps of 4 and one window of 2 in a third step
    assert plan_budget(lengths, 4, 2, 0, None, epochs=None, max_steps=None, max_tokens=100) == Budget(3, 1, 100)


def test_token_budget_cuts_at_the_nearest_window():
    """The realized count misses the target by at most half a window, never by most of a step."""
    lengths = [10] * 20
    # windows of 3 examples (30 tokens); 100 tokens: 90 (3 windows) is nearer than 120 (4)
    assert plan_budget(lengths, 6, 3, 0, None, None, None, 100) == Budget(2, 1, 90)
    # 106: 120 is nearer than 90
    assert plan_budget(lengths, 6, 3, 0, None, None, None, 106) == Budget(2, None, 120)
    # a tie (105: 15 either way) goes to the larger; a target below one window still trains one
    assert plan_budget(lengths, 6, 3, 0, None, None, None, 105) == Budget(2, None, 120)
    assert plan_budget(lengths, 6, 3, 0, None, None, None, 1) == Budget(1, 1, 30)
