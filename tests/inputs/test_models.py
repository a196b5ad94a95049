"""Model-id conventions shared by training and evaluation (app/inputs/models.py)."""

from app.inputs.models import stop_token_ids


def test_stop_token_ids_put_the_tokenizer_eos_first_without_repeats():
    assert stop_token_ids([151645, 151643], 151643) == [151643, 151645]  # Qwen2.5-Math lists two EOS
    assert stop_token_ids(2, 2) == [2] and stop_token_ids([5], None) == [5]
    assert stop_token_ids(None, 0) == [0]  # id 0 is a token, not a missing one
