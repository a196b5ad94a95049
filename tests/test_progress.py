"""Plain progress lines for log files (batch jobs, CI)."""

import io

from app.progress import Reporter, format_line, hms


def test_line_has_step_total_rate_and_eta_from_this_session():
    line = format_line("train", "step", 30, 40, 10, 100.0, 5000, "loss 1.2345")
    assert line == "train step 30/40 (75%) loss 1.2345 tok/s 50 elapsed 0:01:40 eta 0:00:50"
    assert "eta" not in format_line("eval", "prompt", 40, 40, 0, 60.0, 0)
    assert hms(3725) == "1:02:05"


def test_reporter_writes_plain_lines_to_a_file_not_a_bar(monkeypatch):
    monkeypatch.setenv("REPRO_PROGRESS_SECONDS", "3600")  # only the first and the last line are due
    out = io.StringIO()
    bar = Reporter("train", 5, 0, stream=out)
    for done in range(1, 6):
        bar.update(done, tokens=100 * done, extra=f"loss {1 / done:.2f}")
    bar.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "\x1b" not in out.getvalue()
    assert "train step 1/5 (20%) loss 1.00" in lines[0] and "train step 5/5 (100%) loss 0.20" in lines[1]


def test_disabled_reporter_prints_nothing():
    out = io.StringIO()
    Reporter("eval", 3, enabled=False, stream=out).update(3)
    assert out.getvalue() == ""
