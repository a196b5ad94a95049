"""Rendering for `repro report`: Markdown and self-contained HTML, the answer first (app/study/headline.py),
then the runs, then the details; the figures are drawn in app/study/plots.py.
"""

from __future__ import annotations

import html

from app.eval.grading import RATE_BY_KEY
from app.study.headline import QUESTION, VERDICT_BY_WORD, VERDICTS, headline
from app.study.plots import CAPTIONS, figures  # noqa: F401  (figures: report.py draws them through here)
from app.study.spread import SPREAD_HEAD, spread_cells

SPREAD_NOTE = (
    "Each arm's runs with different training seeds (seed k also draws subset order k). With one seed a "
    "verdict is about that checkpoint; the figures draw seed 0."
)

HEADLINE_FIGURE = "format.png"


def _rates_cell(c) -> str:
    """Each rate on its own, baseline → candidate."""
    keys = ("unclosed_rate", "truncated_rate", "unclosed_eos_rate", "unparsable_rate")
    return "; ".join(f"{RATE_BY_KEY[k].label} {c.rates[k][0]:.3f}→{c.rates[k][1]:.3f}" for k in keys if k in c.rates)


def _fmt_p(p) -> str:
    return "-" if p is None else f"{p:.3g}"


def _check_cells(c, rates: bool = False) -> list[str]:
    ci = "-" if c.ci is None else f"[{c.ci[0]:+.3f}, {c.ci[1]:+.3f}]"
    label = c.label + (f" (⚠ {c.flag})" if c.flag else "")
    cells = [label, c.verdict, str(c.n), c.run_a or "(missing)", f"{c.value_a:.3f}", c.run_b or "(missing)"]
    power = "-" if c.power is None else f"{c.power:.2f} (for {c.effect:g})"
    seeds = "1" if c.seeds == 1 else f"{c.seeds}: " + " / ".join(f"{d:+.3f}" for d in c.seed_diffs)
    cells += [f"{c.value_b:.3f}", seeds, str(c.discordant), _fmt_p(c.p), ci, power]
    return cells + ([_rates_cell(c)] if rates else [])


CHECK_HEAD = [
    "check",
    "verdict",
    "n",
    "baseline run",
    "value",
    "candidate run",
    "value",
    "seeds (k ≥ 2: candidate − baseline per seed)",
    "discordant (mean over seeds)",
    "p (exact McNemar; t over items × seeds)",
    "candidate − baseline 95% CI",
    "power (for the stated effect / margin)",
]
RATES_HEAD = "each rate, baseline → candidate"


def _sections(doc: dict):
    """(heading, verdict or None, rule, head, rows) for the criteria and the extra comparisons."""
    for c in doc["criteria"] + doc["extra"]:
        rates = any(k.rates and k.metric != "strict_accuracy" for k in c["checks"])
        head = CHECK_HEAD + ([RATES_HEAD] if rates else [])
        rule = c["rule"] + (f"; scope: {c['scope']}" if c.get("scope") else "")
        yield c["criterion"], c["verdict"], rule, head, [_check_cells(k, rates) for k in c["checks"]]


def _spread_rows(doc: dict) -> list[list[str]]:
    return [spread_cells(row) for row in doc.get("spread", [])]


def md_table(head: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(doc: dict) -> str:
    parts = [f"# {doc['title']}", ""]
    parts += [f"> **warning:** {w}" for w in doc["top_warnings"]] + ([""] if doc["top_warnings"] else [])
    parts += headline_markdown(doc) + ["## Runs", ""]
    head = list(doc["rows"][0])
    parts += [md_table(head, [list(r.values()) for r in doc["rows"]]), ""]
    parts += ["## Seed-to-seed spread", "", SPREAD_NOTE, "", md_table(SPREAD_HEAD, _spread_rows(doc)), ""]
    parts += ["## Success criteria", ""]
    for title, verdict, rule, chead, rows in _sections(doc):
        parts += [f"### {title}" + ("" if verdict is None else f" — {_md_badge(verdict)}"), "", f"Rule: {rule}.", ""]
        parts += [md_table(chead, rows), ""]
    parts += ["## Figures", ""] + [ln for n in _detail_figures(doc) for ln in _md_figure(n)] + ["## Environments", ""]
    parts += [f"> **warning:** {w}" for w in doc["warnings"]] or ["All runs of each stage share one environment."]
    if doc["env_rows"]:
        parts += ["", md_table(list(doc["env_rows"][0]), [list(r.values()) for r in doc["env_rows"]])]
    parts += ["", "## Run directories", ""] + [f"- `{p}`" for p in doc["runs"]]
    return "\n".join(parts) + "\n"


def html_table(head: list[str], rows: list[list], table_id: str = "") -> str:
    th = "".join(f"<th>{html.escape(str(h))}</th>" for h in head)
    trs = "".join("<tr>" + "".join(f"<td>{_html_cell(c)}</td>" for c in row) + "</tr>" for row in rows)
    ident = f" id='{table_id}'" if table_id else ""
    return f"<table{ident}><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"


STYLE = (
    "body{font-family:sans-serif;max-width:1360px;margin:.6em auto;padding:0 1em;color:#1f2328}"
    "h1{font-size:24px;margin:.2em 0 .3em}"
    "table{border-collapse:collapse;font-size:13px;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 6px}"
    "th{background:#f3f3f3}.warn{background:#fff3cd;padding:.5em}img{max-width:100%}"
    "figure{margin:1em 0}figcaption{font-size:13px;color:#444;max-width:900px}"
    ".badge{display:inline-block;padding:1px 9px;border-radius:11px;font-weight:bold;font-size:13px;white-space:nowrap}"
    ".v-met{background:#1a7f37;color:#fff;border:2px solid #1a7f37}"
    ".v-not{background:#cf222e;color:#fff;border:2px solid #cf222e}"
    ".v-ned{background:#fff8c5;color:#6e5600;border:2px dashed #bf8700}"
    ".v-nsh{background:#eaeef2;color:#24292f;border:2px solid #8c959f}"
    "#headline{border-bottom:2px solid #d0d7de;padding-bottom:.4em;margin-bottom:.6em}"
    "#headline .question{font-size:14.5px;margin:.2em 0 .5em;line-height:1.4}"
    "#headline .answer{display:grid;grid-template-columns:1fr 600px;gap:18px;align-items:start}"
    "#headline .crit{margin:0 0 .7em}#headline .crit h2{font-size:16px;margin:0 0 .15em}"
    "#headline .why{margin:.1em 0 .2em;font-size:14px}#headline .rule{color:#57606a;font-size:12.5px}"
    "#headline ul{margin:0;padding-left:0;list-style:none;font-size:12.5px;color:#333}#headline li{margin:.15em 0}"
    ".badge.mark{padding:0 5px;font-size:11px;border-radius:8px;min-width:10px;text-align:center}"
    "#headline figure{margin:0}#headline figcaption{font-size:12.5px}"
    "#headline .legend{font-size:13px;margin:.3em 0}#headline .tally{font-size:15px;margin:.2em 0 .6em}"
)


def html_page(doc: dict, images: dict[str, str]) -> str:
    e = html.escape
    body = [f"<h1>{e(doc['title'])}</h1>"] + [f"<p class='warn'>warning: {e(w)}</p>" for w in doc["top_warnings"]]
    body += [
        headline_html(doc, images),
        "<h2 id='runs'>Runs</h2>",
        html_table(list(doc["rows"][0]), [list(r.values()) for r in doc["rows"]], "runs-table"),
        f"<h2 id='spread'>Seed-to-seed spread</h2><p>{e(SPREAD_NOTE)}</p>",
        html_table(SPREAD_HEAD, _spread_rows(doc), "spread-table"),
        "<h2 id='details'>Success criteria</h2>",
    ]
    for title, verdict, rule, chead, rows in _sections(doc):
        tail = "" if verdict is None else f" — {_html_badge(verdict)}"
        body += [f"<h3>{e(title)}{tail}</h3>", f"<p>Rule: {e(rule)}.</p>", html_table(chead, rows)]
    body += ["<h2>Figures</h2>"] + [_html_figure(n, images[n]) for n in _detail_figures(doc)]
    body += ["<h2>Environments</h2>"] + [f"<p class='warn'>warning: {e(w)}</p>" for w in doc["warnings"]]
    if doc["env_rows"]:
        body.append(html_table(list(doc["env_rows"][0]), [list(r.values()) for r in doc["env_rows"]]))
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{e(doc['title'])}</title>"
        f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n"
    )


# The answer first: question, verdicts in plain words with their deciding numbers, the format figure.


def _md_badge(word: str) -> str:
    v = VERDICT_BY_WORD.get(word)
    return f"**{v.mark} {v.word}**" if v else f"**{word}**"


def _html_badge(word: str) -> str:
    v = VERDICT_BY_WORD.get(word)
    css = v.css if v else "v-ned"
    return f"<span class='badge {css}'>{html.escape(f'{v.mark} {v.word}' if v else word)}</span>"


def _html_mark(word: str) -> str:
    """A check's verdict as its badge's symbol alone (the legend names the words)."""
    v = VERDICT_BY_WORD.get(word, VERDICTS[-1])
    return f"<span class='badge mark {v.css}' title='{html.escape(v.word)}'>{v.mark}</span>"


def _html_cell(cell) -> str:
    """A table cell; a verdict word is drawn as its badge."""
    return _html_badge(cell) if isinstance(cell, str) and cell in VERDICT_BY_WORD else html.escape(str(cell))


def _detail_figures(doc: dict) -> list[str]:
    return [n for n in doc["figures"] if n != HEADLINE_FIGURE]


def _md_figure(name: str) -> list[str]:
    return [f"![{name}]({name})", "", f"*{_md(CAPTIONS.get(name, name))}*", ""]


def _html_figure(name: str, src: str, ident: str = "") -> str:
    e = html.escape
    attr = f" id='{ident}'" if ident else ""
    caption = e(CAPTIONS.get(name, name))
    return f"<figure{attr}><img alt='{e(name)}' src='{src}'><figcaption>{caption}</figcaption></figure>"


def _legend(badge) -> str:
    return "Verdict words: " + "; ".join(f"{badge(v.word)} {v.meaning}" for v in VERDICTS) + "."


def _tally(doc: dict, badge) -> str:
    """How many criteria got each verdict, in one line."""
    words = [c["verdict"] for c in doc["criteria"]]
    return f"of {len(words)} criteria, " + ", ".join(f"{badge(v.word)} {words.count(v.word)}" for v in VERDICTS) + "."


def _md(text: str) -> str:
    """Prose for report.md: a tag-like `</answer>` as code, so Markdown viewers do not swallow it."""
    return text.replace("</answer>", "`</answer>`")


def headline_markdown(doc: dict) -> list[str]:
    """The answer section of report.md."""
    parts = ["## The answer", "", f"**The question.** {_md(QUESTION)}", ""]
    parts += [f"**In short:** {_tally(doc, _md_badge)}", ""]
    for i, h in enumerate(headline(doc), 1):
        parts += [f"**{i}. {h['question']}** {_md_badge(h['verdict'])}", ""]
        parts += [f"{h['why']} (criterion: *{h['criterion']}*; {h['scope']})"]
        parts += [""] + [f"- {_md_badge(v)} {line}" for v, line in h["numbers"]] + [""]
    parts += [_legend(_md_badge), ""]
    return parts + (_md_figure(HEADLINE_FIGURE) if HEADLINE_FIGURE in doc["figures"] else [])


def headline_html(doc: dict, images: dict[str, str]) -> str:
    """The answer block of report.html (id `headline`), sized to fit above the fold at 1400×1000."""
    e = html.escape
    crits = []
    for i, h in enumerate(headline(doc), 1):
        nums = "".join(f"<li>{_html_mark(v)} {e(line)}</li>" for v, line in h["numbers"])
        crits.append(
            f"<div class='crit'><h2>{_html_badge(h['verdict'])} {i}. {e(h['question'])}</h2>"
            f"<p class='why'>{e(h['why'])} <span class='rule'>(criterion: {e(h['criterion'])}; "
            f"{e(h['scope'])})</span></p>"
            f"<ul>{nums}</ul></div>"
        )
    fig = _html_figure(HEADLINE_FIGURE, images[HEADLINE_FIGURE], "headline-figure") if HEADLINE_FIGURE in images else ""
    return (
        f"<section id='headline'><p class='question'><b>The question.</b> {e(QUESTION)}</p>"
        f"<p class='tally'><b>In short:</b> {_tally(doc, _html_badge)}</p>"
        f"<div class='answer'><div class='criteria'>{''.join(crits)}</div>{fig}</div>"
        f"<p class='legend'>{_legend(_html_badge)}</p></section>"
    )
