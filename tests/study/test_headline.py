"""The report's opening answer: plain words and deciding numbers taken from the criteria, nothing recomputed."""

from app.study.criteria import RunOutcome, evaluate_criteria
from app.study.headline import PLAIN, VERDICTS, check_line, headline, why


def run(group, size, statuses):
    return RunOutcome(f"{group}_{size}", group, size, {f"q{i}": s for i, s in enumerate(statuses)})


def study(n=100) -> list[RunOutcome]:
    """orig, A, B, C at 32, 64 and 128: B closes far more answers at 128; C at 64 fails as often as orig
    but on other items (40 discordant, evenly split); elsewhere every arm equals orig."""
    runs = []
    for size in (32, 64, 128):
        fails = {"orig": 40, "A": 40, "B": 5 if size == 128 else 40, "C": 40}
        for group, k in fails.items():
            statuses = ["truncated"] * k + ["wrong"] * (n - k)
            shift = 20 if (group, size) == ("C", 64) else 0
            runs.append(run(group, size, statuses[-shift:] + statuses[:-shift] if shift else statuses))
    return runs


def doc():
    return {"criteria": evaluate_criteria(study(), [32, 64, 128], [64, 128])}


def test_each_criterion_gets_its_plain_question_verdict_and_one_line_per_check():
    d = doc()
    lines = headline(d)
    assert [h["question"] for h in lines] == list(PLAIN)
    assert [h["verdict"] for h in lines] == [c["verdict"] for c in d["criteria"]]  # verdicts passed through
    assert [len(h["numbers"]) for h in lines] == [len(c["checks"]) for c in d["criteria"]]
    assert lines[1]["verdict"] == "not met" and "Shown for B vs orig at 128" in lines[1]["why"]


def test_a_check_line_carries_both_values_the_difference_its_interval_and_p():
    check = doc()["criteria"][1]["checks"][2]  # B vs orig at 128: 0.40 → 0.05, 35 discordant
    line = check_line(check)
    assert line.startswith("B vs orig at 128: no parsable answer: 0.400 → 0.050 (−0.350, 95% CI −")
    assert "35 of 100 differ" in line and "Holm p = " in line
    assert check_line(vars(check)) == line  # the same from report.json's dict form


def test_not_enough_data_says_why_in_numbers():
    d = doc()
    assert why(d["criteria"][0]).endswith("at most 0 per comparison, 10 needed.")
    assert "reach both sides of −0.02" in why(d["criteria"][2])


def test_the_three_verdict_words_look_different():
    assert len({v.css for v in VERDICTS}) == len({v.mark for v in VERDICTS}) == len(VERDICTS) == 3


def test_a_criterion_whose_runs_are_absent_says_so():
    only_orig = [r for r in study() if r.group == "orig"]
    d = {"criteria": evaluate_criteria(only_orig, [32, 64, 128], [64, 128])}
    assert all(h["why"] == "The runs it compares are not in this report." for h in headline(d))
    assert all(line.endswith("a run is missing") for h in headline(d) for _, line in h["numbers"])
