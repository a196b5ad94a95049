"""Versioned prompt and target templates, shared by training and evaluation, and where generation stops.

Pure: changing a template changes its hash, which lands in every run's metadata.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from app.errors import UserError


@dataclass(frozen=True)
class Template:
    id: str
    prompt: str  # str.format with {question}
    target: str  # str.format with {reasoning} and {answer}

    @property
    def sha256(self) -> str:
        return hashlib.sha256(f"{self.id}\0{self.prompt}\0{self.target}".encode()).hexdigest()


R1_ZERO_V1 = Template(
    id="r1_zero_v1",
    prompt=(
        "A conversation between User and Assistant. The User asks a question, and the Assistant "
        "solves it. The Assistant first thinks about the reasoning process in the mind and then "
        "provides the User with the answer. The reasoning process is enclosed within <think> </think> "
        "and answer is enclosed within <answer> </answer> tags, respectively, i.e., "
        "<think> reasoning process here </think> <answer> answer here </answer>.\n"
        "User: {question}\n"
        "Assistant: <think>"
    ),
    target=" {reasoning} </think> <answer> {answer} </answer>",
)

# The original report's prompt fix (§8.1): the same template plus an explicit format rule.
R1_ZERO_HARDENED_V1 = Template(
    id="r1_zero_hardened_v1",
    prompt=R1_ZERO_V1.prompt.replace(
        "\nUser: {question}",
        " The reply must end with <answer> number </answer>, where number is the final answer as a single"
        " number; do not give several answers or several numbers inside the answer tags.\nUser: {question}",
    ),
    target=R1_ZERO_V1.target,
)

TEMPLATES = {t.id: t for t in (R1_ZERO_V1, R1_ZERO_HARDENED_V1)}
CALC_NOTE_RE = re.compile(r"<<[^<>]*>>")


def get_template(template_id: str) -> Template:
    try:
        return TEMPLATES[template_id]
    except KeyError:
        raise UserError(f"prompt.template: unknown template {template_id!r}") from None


def render_prompt(template: Template, question: str) -> str:
    return template.prompt.format(question=question.strip())


def rationale(answer: str) -> str:
    """GSM8K reasoning without the `#### N` line and without `<<…>>` calculator notes."""
    body = answer.rsplit("####", 1)[0]
    return CALC_NOTE_RE.sub("", body).strip()


def render_target(template: Template, answer: str, gold: str) -> str:
    """The SFT target: reasoning, closing think tag, and the gold number inside answer tags."""
    return template.target.format(reasoning=rationale(answer), answer=gold)


def answer_span_start(template: Template, target: str) -> int:
    """Character offset of the answer span (` <answer> N </answer>`) inside a rendered target."""
    pos = target.rfind(" <answer>")
    if pos < 0:
        raise UserError(f"template {template.id}: target has no <answer> span")
    return pos


def stop_token_ids(generation_eos: int | list[int] | None, tokenizer_eos: int | None) -> list[int]:
    """The tokenizer's EOS first, then any other EOS ids of the generation config, without repeats.

    Training writes them into every checkpoint's generation config and the HF backend stops at each
    (Qwen2.5-Math lists <|im_end|> and <|endoftext|>), as vLLM does."""
    listed = generation_eos if isinstance(generation_eos, list) else [generation_eos]
    return list(dict.fromkeys(t for t in [tokenizer_eos, *listed] if t is not None))
