"""SFT examples as token ids: the masking contract, span checks, collation, and the data stream.

Masking contract (CS336 style), for one example of length T:
  input_ids      [T]  prompt ids ++ target ids ++ [eos]; prompt and target tokenised apart
  labels         [T]  input_ids where supervised, -100 elsewhere (no shift; the loss shifts)
  response_mask  [T]  1 on target ids and eos, 0 on the prompt (whatever the loss mode)
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass

from app.errors import UserError

IGNORE = -100


@dataclass(frozen=True)
class MaskMode:
    """One `train.loss_mask` mode: which characters of the target carry loss, and the span check.

    Target tokens that overlap `span(target, answer_start)` (a [start, end) character range) are
    supervised, and EOS always is. With `check`, the supervised ids (EOS aside) must decode to
    exactly `target[start:end]` and hold at least one token. With `prompt`, the prompt is supervised too.
    """

    span: Callable[[str, int], tuple[int, int]]
    prompt: bool = False
    check: bool = True


# The masking strategies, in one place (torchtune keeps its masks the same way): a new mode is a row.
MASK_MODES: dict[str, MaskMode] = {
    "response": MaskMode(span=lambda target, answer_start: (0, len(target))),
    "answer_only": MaskMode(span=lambda target, answer_start: (answer_start, len(target))),
    "full": MaskMode(span=lambda target, answer_start: (0, len(target)), prompt=True, check=False),
}
LOSS_MODES = tuple(MASK_MODES)


@dataclass(frozen=True)
class Encoded:
    id: str
    input_ids: list[int]
    labels: list[int]
    response_mask: list[int]

    @property
    def n_supervised(self) -> int:
        return sum(label != IGNORE for label in self.labels)


def supervised_flags(offsets: list[tuple[int, int]], span: tuple[int, int]) -> list[bool]:
    """Which target tokens carry loss: those whose characters overlap the supervised span."""
    lo, hi = span
    return [end > lo and start < hi for start, end in offsets]


def encode_example(tokenizer, example_id: str, prompt: str, target: str, answer_start: int, mode: str) -> Encoded:
    """Tokenise prompt and target apart, join, append EOS, and mask by `mode` (a MASK_MODES key).

    Raises UserError naming the example when nothing is supervised or when the supervised
    tokens do not decode to the intended span (the TRL silent-mask failure mode).
    """
    if mode not in MASK_MODES:
        raise UserError(f"train.loss_mask: unknown mode {mode!r}")
    rule = MASK_MODES[mode]
    eos = tokenizer.eos_token_id
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    enc = tokenizer(target, add_special_tokens=False, return_offsets_mapping=True)
    target_ids, offsets = enc["input_ids"], enc["offset_mapping"]
    span = rule.span(target, answer_start)
    flags = supervised_flags(offsets, span)
    input_ids = prompt_ids + target_ids + [eos]
    response_mask = [0] * len(prompt_ids) + [1] * (len(target_ids) + 1)
    prompt_labels = list(prompt_ids) if rule.prompt else [IGNORE] * len(prompt_ids)
    labels = prompt_labels + [t if f else IGNORE for t, f in zip(target_ids, flags)] + [eos]
    labels[0] = IGNORE  # the loss shifts: position 0 is never predicted, so it is never supervised
    if rule.check:
        check_span(tokenizer, example_id, labels, target[span[0] : span[1]], mode)
    return Encoded(example_id, input_ids, labels, response_mask)


def check_span(tokenizer, example_id: str, labels: list[int], intended: str, mode: str) -> None:
    """The supervised ids (EOS aside) must decode to exactly the intended target text."""
    supervised = [t for t in labels if t != IGNORE]
    if len(supervised) <= 1:
        raise UserError(f"example {example_id}: no supervised target token under loss_mask={mode}")
    text = tokenizer.decode(supervised[:-1], skip_special_tokens=False, clean_up_tokenization_spaces=False)
    if text != intended:
        raise UserError(
            f"example {example_id}: supervised tokens decode to {text[:60]!r}…, expected {intended[:60]!r}…"
        )


def apply_length_limit(examples: list[Encoded], max_seq_len: int, overlong: str) -> tuple[list[Encoded], int]:
    """Drop or reject examples longer than `max_seq_len`; never cut one. Returns (kept, dropped)."""
    kept = [e for e in examples if len(e.input_ids) <= max_seq_len]
    dropped = len(examples) - len(kept)
    if dropped and overlong == "error":
        first = next(e for e in examples if len(e.input_ids) > max_seq_len)
        raise UserError(
            f"example {first.id}: {len(first.input_ids)} tokens > train.max_seq_len={max_seq_len} "
            f"({dropped} such examples; set train.overlong='drop' to skip them)"
        )
    if not kept:
        raise UserError(f"train.max_seq_len={max_seq_len}: every example is longer")
    return kept, dropped


def collate(batch: list[Encoded], pad_id: int):
    """Right-pad a micro-batch into tensors [B, T]: input_ids, labels, attention_mask, response_mask."""
    import torch

    width = max(len(e.input_ids) for e in batch)

    def pad(rows: list[list[int]], value: int) -> torch.Tensor:
        return torch.tensor([r + [value] * (width - len(r)) for r in rows], dtype=torch.long)

    return {
        "input_ids": pad([e.input_ids for e in batch], pad_id),
        "labels": pad([e.labels for e in batch], IGNORE),
        "attention_mask": pad([[1] * len(e.input_ids) for e in batch], 0),
        "response_mask": pad([e.response_mask for e in batch], 0),
    }


def epoch_order(lengths: list[int], seed: int, epoch: int, group: int | None) -> list[int]:
    """A seeded permutation for one epoch; with `group`, sorted by length inside chunks of that size."""
    order = list(range(len(lengths)))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    if group:
        chunks = [order[i : i + group] for i in range(0, len(order), group)]
        order = [i for chunk in chunks for i in sorted(chunk, key=lambda j: (-lengths[j], j))]
    return order


def stream_slice(lengths: list[int], seed: int, start: int, count: int, group: int | None) -> list[int]:
    """Items [start, start+count) of the endless stream of epoch orders (so resuming is a position)."""
    n = len(lengths)
    out: list[int] = []
    cache: dict[int, list[int]] = {}
    for pos in range(start, start + count):
        epoch = pos // n
        if epoch not in cache:
            cache[epoch] = epoch_order(lengths, seed, epoch, group)
        out.append(cache[epoch][pos % n])
    return out


@dataclass(frozen=True)
class Budget:
    """The optimizer steps a budget takes; a token budget may end on a partial step."""

    steps: int
    last_windows: int | None = None  # micro-batch windows in the last step; None: all of them
    tokens: int | None = None  # tokens trained, for a token budget (the realized figure beside the target)

    def windows(self, step: int, per_step: int) -> int:
        """Micro-batch windows (micro_batch_size × world examples each) that `step` trains."""
        return self.last_windows if self.last_windows and step == self.steps - 1 else per_step


def plan_budget(
    lengths: list[int],
    global_batch: int,
    window: int,
    seed: int,
    group: int | None,
    epochs: float | None,
    max_steps: int | None,
    max_tokens: int | None,
) -> Budget:
    """Steps for the budget: ceil(epochs × n / batch), a step count, or a token budget (`token_budget`)."""
    if max_steps is not None:
        return Budget(max_steps)
    if epochs is not None:
        return Budget(max(1, -(-round(epochs * len(lengths)) // global_batch)))
    assert max_tokens is not None
    return token_budget(lengths, global_batch, window, seed, group, max_tokens)


def token_budget(
    lengths: list[int], global_batch: int, window: int, seed: int, group: int | None, max_tokens: int
) -> Budget:
    """The stream cut at the whole window (`window` examples: micro_batch_size × world) whose running
    token count is nearest `max_tokens` (a tie goes to the larger), so the realized count misses the
    target by at most half a window; the last step then trains only its first windows.

    One pass over the stream with each epoch's order built once, so the cost is the number of
    examples trained, not steps x subset size (`repro plan` of a large budget must not hang)."""
    if not lengths or not any(lengths):
        raise UserError("train.max_tokens: no training tokens to count (every example was dropped)")
    per_step = global_batch // window
    seen = before = windows = in_window = 0
    for epoch in itertools.count():
        for i in epoch_order(lengths, seed, epoch, group):
            seen, in_window = seen + lengths[i], in_window + 1
            if in_window < window:
                continue
            windows, in_window = windows + 1, 0
            if seen >= max_tokens:
                if windows > 1 and max_tokens - before < seen - max_tokens:
                    windows, seen = windows - 1, before
                steps = -(-windows // per_step)
                last = windows - (steps - 1) * per_step
                return Budget(steps, None if last == per_step else last, seen)
            before = seen
    raise AssertionError("unreachable")
