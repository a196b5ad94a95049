"""The report's opening answer in plain words: the question, each criterion's verdict and the numbers that decide it.

Presentation only: the verdicts and statistics come from app/study/criteria.py unchanged. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.study.criteria import MET, NOT_SHOWN, SHOWN_NOT_MET, UNDECIDABLE
from app.study.paired_stats import POWER_LEVEL

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
    "At the smallest sizes, do B and C do no worse than the original recipe?",
)


@dataclass(frozen=True)
class Verdict:
    word: str
    css: str  # class of its badge in report.html
    mark: str  # a symbol that tells the words apart without colour
    meaning: str


VERDICTS = (
    Verdict(MET, "v-met", "✓", "the paired test shows it"),
    Verdict(SHOWN_NOT_MET, "v-not", "✗", "the paired test shows the opposite"),
    Verdict(NOT_SHOWN, "v-nsh", "–", "inconclusive although the test had the power to show it (see the interval)"),
    Verdict(
        UNDECIDABLE,
        "v-ned",
        "?",
        f"inconclusive, and the test's power for the stated effect or margin is below {POWER_LEVEL:.0%} at this size",
    ),
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
    va, vb, power = _get(check, "value_a"), _get(check, "value_b"), _get(check, "power")
    seeds, n = _get(check, "seeds"), _get(check, "n")
    spread = f"{seeds} seeds × {n} items" if seeds > 1 else f"{_get(check, 'discordant')} of {n} differ"
    return (
        f"{_get(check, 'label')}: {va:.3f} → {vb:.3f} ({_signed(vb - va)}, {_ci(_get(check, 'ci'))}); "
        f"{spread}; p = {_get(check, 'p'):.2g}; "
        f"power {power:.0%} for {_get(check, 'effect'):g}"
        + (f" (⚠ {_get(check, 'flag')})" if _get(check, "flag") else "")
    )


def why(criterion: dict) -> str:
    """One sentence saying which checks decided the criterion's verdict."""
    checks = criterion["checks"]
    by = {w: [_get(c, "label").split(":")[0] for c in checks if _get(c, "verdict") == w] for w in VERDICT_BY_WORD}
    if not any(_get(c, "n") for c in checks):
        return "The runs it compares are not in this report."
    verdict = criterion["verdict"]
    if verdict == MET:
        return "Every comparison shows it."
    if verdict == SHOWN_NOT_MET:
        return f"The opposite is shown for {', '.join(by[SHOWN_NOT_MET])}."
    if verdict == UNDECIDABLE:
        return (
            f"Inconclusive, and at this size the test could not have decided it: power below {POWER_LEVEL:.0%} "
            f"for {', '.join(by[UNDECIDABLE])}."
        )
    return f"Inconclusive although the test had the power to decide: not shown for {', '.join(by[NOT_SHOWN])}."


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
                "scope": c.get("scope", ""),
                "numbers": [(_get(k, "verdict"), check_line(k)) for k in c["checks"]],
            }
        )
    return out
