"""The report's opening answer in plain words: the question, each criterion's verdict and the numbers that decide it.

Presentation only: the verdicts and statistics come from app/study/criteria.py unchanged. Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.study.criteria import MIN_DISCORDANT

# The original report's strict accuracy of the original recipe at each training size.
ORIGINAL_REPORT = {128: 0.5550, 256: 0.4913, 512: 0.5064, 1024: 0.3290, 7473: 0.0417}

QUESTION = (
    f"In the original report, strict accuracy of the original SFT recipe fell from {ORIGINAL_REPORT[128]:.1%} "
    f"at 128 training examples to {ORIGINAL_REPORT[7473]:.1%} at all 7,473 as the SFT data grew. Its diagnosis: "
    "not that more data hurts, but that the output format and the grading fell out of step, with more and more "
    "answers left unclosed (no </answer>) or unparsable. The study retrains with fixed recipes "
    "(A: warmup + cosine; B: A with the loss on the answer only; C: B at half the learning rate) and asks:"
)

# Plain-language question of each criterion, in app/study/criteria.evaluate_criteria's order.
PLAIN = (
    "Do the fixed recipes (B, C) answer more questions correctly than A at the larger sizes?",
    "Do B and C leave fewer answers unclosed or unparsable than the original recipe?",
    "At the smallest sizes, does C do no worse than the original recipe?",
)


@dataclass(frozen=True)
class Verdict:
    word: str
    css: str  # class of its badge in report.html
    mark: str  # a symbol that tells the words apart without colour
    meaning: str


VERDICTS = (
    Verdict("met", "v-met", "✓", "the paired test shows it"),
    Verdict("not met", "v-not", "✗", "enough questions differ, and the test does not show it (or shows the opposite)"),
    Verdict("not enough data", "v-ned", "?", "too few questions differ, or the interval is too wide, to decide"),
)
VERDICT_BY_WORD = {v.word: v for v in VERDICTS}


def _get(check, name: str):
    """A check's field, whether it is still a criteria.Check or already a dict (report.json)."""
    return check[name] if isinstance(check, dict) else getattr(check, name)


def _signed(x: float) -> str:
    """+0.016 / −0.036, with a real minus sign."""
    return f"{x:+.3f}".replace("-", "−")


def _ci(ci) -> str:
    return "no interval" if ci is None else f"95% CI {_signed(ci[0])} to {_signed(ci[1])}"


def check_line(check) -> str:
    """One comparison's deciding numbers: both values, the difference with its interval, discordant items, p."""
    if not _get(check, "n"):
        return f"{_get(check, 'label')}: a run is missing"
    va, vb, p_holm = _get(check, "value_a"), _get(check, "value_b"), _get(check, "p_holm")
    p = f"Holm p = {p_holm:.2g}" if p_holm is not None else f"p = {_get(check, 'p'):.2g}"
    return (
        f"{_get(check, 'label')}: {va:.3f} → {vb:.3f} ({_signed(vb - va)}, {_ci(_get(check, 'ci'))}); "
        f"{_get(check, 'discordant')} of {_get(check, 'n')} differ; {p}"
    )


def why(criterion: dict) -> str:
    """One sentence saying which checks decided the criterion's verdict."""
    checks = criterion["checks"]
    by = {w: [_get(c, "label").split(":")[0] for c in checks if _get(c, "verdict") == w] for w in VERDICT_BY_WORD}
    if not any(_get(c, "n") for c in checks):
        return "The runs it compares are not in this report."
    if criterion["verdict"] == "met":
        return "Every comparison shows it."
    if criterion["verdict"] == "not met":
        shown = f"Shown for {', '.join(by['met'])}; not" if by["met"] else "Not"
        return f"{shown} shown for {', '.join(by['not met'])}."
    if "non-inferiority" in criterion["rule"]:
        margin = re.search(r"δ = ([0-9.]+)", criterion["rule"])
        cis = "; ".join(_ci(_get(c, "ci")).removeprefix("95% CI ") for c in checks if _get(c, "ci"))
        where = f"−{margin.group(1)}" if margin else "the margin"
        sides = f"reach both sides of {where}: neither “no worse” nor “worse”."
        return f"The 95% intervals of the difference ({cis}) {sides}"
    most = max((_get(c, "discordant") for c in checks), default=0)
    return f"Too few questions differ between the paired runs: at most {most} per comparison, {MIN_DISCORDANT} needed."


def headline(doc: dict) -> list[dict]:
    """Per criterion: its plain question, the rule's title, verdict, the deciding sentence and numbers."""
    out = []
    for i, c in enumerate(doc["criteria"]):
        out.append(
            {
                "question": PLAIN[i] if i < len(PLAIN) else c["criterion"],
                "criterion": c["criterion"],
                "verdict": c["verdict"],
                "why": why(c),
                "numbers": [(_get(k, "verdict"), check_line(k)) for k in c["checks"]],
            }
        )
    return out
