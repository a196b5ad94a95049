import pytest

from app.train.schedule import lr_at, warmup_steps


def test_constant_schedule_is_flat():
    assert [lr_at(s, 10, 2e-5, "constant") for s in range(10)] == [2e-5] * 10


def test_warmup_then_cosine_reaches_floor():
    lrs = [lr_at(s, 100, 1.0, "cosine", warmup_ratio=0.05, min_lr_ratio=0.1) for s in range(100)]
    assert warmup_steps(100, 0.05) == 5
    assert lrs[:5] == pytest.approx([1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6])
    assert lrs[5] == pytest.approx(1.0)
    assert lrs[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[5:], lrs[6:]))
    assert lrs[5 + 47] == pytest.approx(0.1 + 0.9 * 0.5, abs=0.02)  # halfway down


def test_cosine_without_warmup_starts_at_base():
    assert lr_at(0, 4, 3.0, "cosine", min_lr_ratio=0.0) == 3.0
    assert lr_at(3, 4, 3.0, "cosine", min_lr_ratio=0.0) == pytest.approx(0.0)


def test_unknown_schedule_raises():
    with pytest.raises(ValueError):
        lr_at(0, 1, 1.0, "linear")


@pytest.mark.parametrize("total", [8, 10, 12])
def test_short_runs_warm_up_below_peak(total):
    """At the CPU study's 8–12 steps 5% warmup rounds to one step: that first update must not run at peak."""
    lrs = [lr_at(s, total, 1.0, "cosine", warmup_ratio=0.05, min_lr_ratio=0.1) for s in range(total)]
    assert warmup_steps(total, 0.05) == 1
    assert lrs[0] == pytest.approx(0.5) and lrs[1] == pytest.approx(1.0)
