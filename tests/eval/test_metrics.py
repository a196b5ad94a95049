import pytest

from app.eval.metrics import summarize, wilson_interval


def test_wilson_matches_reference_values():
    lo, hi = wilson_interval(55, 100)
    assert lo == pytest.approx(0.4524, abs=1e-4) and hi == pytest.approx(0.6438, abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == pytest.approx(1.0)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def _rec(status, n_tokens=10, diag=False):
    return {
        "status": status,
        "n_tokens": n_tokens,
        "think_chars": 5,
        "answer_pos": 3 if status != "unclosed_eos" else None,
        "diagnostic_correct": diag or status == "correct",
        "prompt_sha256": "ab",
    }


def test_summarize_rates_add_up():
    recs = [_rec("correct"), _rec("wrong"), _rec("unclosed_eos", diag=True), _rec("truncated", 300), _rec("unparsable")]
    m = summarize(recs)
    assert m["n"] == 5 and m["strict_accuracy"] == pytest.approx(0.2)
    assert m["diagnostic_accuracy"] == pytest.approx(0.4)
    # unclosed = no </answer> at all, whatever the cause: its two parts add up to it
    assert m["unclosed_rate"] == pytest.approx(0.4) == m["truncated_rate"] + m["unclosed_eos_rate"]
    assert m["truncated_rate"] == m["unparsable_rate"] == pytest.approx(0.2)
    assert m["format_fail_rate"] == pytest.approx(0.6)
    assert sum(m["status_counts"].values()) == 5 and m["gen_tokens_max"] == 300
    assert {b["min_tokens"] for b in m["accuracy_by_length"]} == {0, 256}
