from app.inputs.prompts import R1_ZERO_V1, answer_span_start, rationale, render_prompt, render_target, stop_token_ids

ANSWER = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nShe sold 48+24 = <<48+24=72>>72 clips.\n#### 72"


def test_prompt_ends_inside_think():
    p = render_prompt(R1_ZERO_V1, "  How many?  ")
    assert p.endswith("User: How many?\nAssistant: <think>") and "<answer> </answer>" in p


def test_target_strips_calculator_notes_and_closes_answer():
    t = render_target(R1_ZERO_V1, ANSWER, "72")
    assert "<<" not in t and ">>" not in t and "####" not in t
    assert t.endswith(" </think> <answer> 72 </answer>") and t.startswith(" Natalia sold 48/2 = 24 clips")
    assert t[answer_span_start(R1_ZERO_V1, t) :] == " <answer> 72 </answer>"


def test_rationale_keeps_lines():
    assert rationale(ANSWER).count("\n") == 1


def test_template_hash_is_stable_and_versioned():
    assert len(R1_ZERO_V1.sha256) == 64 and R1_ZERO_V1.id == "r1_zero_v1"


def test_stop_token_ids_put_the_tokenizer_eos_first_without_repeats():
    assert stop_token_ids([151645, 151643], 151643) == [151643, 151645]  # Qwen2.5-Math lists two EOS
    assert stop_token_ids(2, 2) == [2] and stop_token_ids([5], None) == [5]
    assert stop_token_ids(None, 0) == [0]  # id 0 is a token, not a missing one
