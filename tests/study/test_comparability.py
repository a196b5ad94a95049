"""Which runs may stand side by side: the training process count is flagged when runs differ in it."""

from types import SimpleNamespace

from app.study.comparability import training_mismatches


def run(name: str, train_metrics: dict | None) -> SimpleNamespace:
    return SimpleNamespace(spec=SimpleNamespace(name=name), train_metrics=train_metrics)


def test_runs_on_one_process_count_are_not_flagged():
    runs = [run("a", {"world_size": 2}), run("b", {"world_size": 2}), run("base", None)]
    assert training_mismatches(runs) == []


def test_mixed_process_counts_are_flagged_naming_the_runs_of_each():
    runs = [run("a", {"world_size": 1}), run("b", {"world_size": 8}), run("c", {}), run("base", None)]
    assert training_mismatches(runs) == [
        "runs trained on different process counts (world size), compared anyway: 1 (a, c); 8 (b)"
    ]
