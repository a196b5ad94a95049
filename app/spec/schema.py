"""The run spec describing itself: its JSON Schema, and a check that docs/specs.md documents every field.

Pure: reads the pydantic models of app.spec.run_spec only.
"""

from __future__ import annotations

import re
from typing import Literal, get_args, get_origin

from pydantic import BaseModel

from app.spec.run_spec import RunSpec

SCHEMA_ID = "https://github.com/repro-gsm8k/repro/run-spec.schema.json"


def json_schema() -> dict:
    """JSON Schema (draft 2020-12) of a run spec, as editors and validators read it."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **RunSpec.model_json_schema()}


def _section_model(annotation) -> type[BaseModel] | None:
    """The spec section model inside `annotation` (e.g. TrainSpec | None), if any."""
    for arg in get_args(annotation) or (annotation,):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _choices(annotation) -> list[str]:
    """The string values a Literal field (possibly inside a union) allows."""
    if get_origin(annotation) is Literal:
        return [a for a in get_args(annotation) if isinstance(a, str)]
    return [c for arg in get_args(annotation) for c in _choices(arg)]


def documented_fields() -> dict[str, dict[str, list[str]]]:
    """Section name ('' for top-level fields) → field name → string choices the docs must name."""
    out: dict[str, dict[str, list[str]]] = {"": {}}
    for name, field in RunSpec.model_fields.items():
        section = _section_model(field.annotation)
        if section is None:
            out[""][name] = _choices(field.annotation)
        else:
            out[name] = {n: _choices(f.annotation) for n, f in section.model_fields.items()}
    return out


SPEC_DOC = "docs/specs.md"  # the file whose `## Run specs` section names every field and choice


def spec_doc_section(doc: str, where: str = SPEC_DOC) -> str:
    """The text of the `## Run specs` section of `doc` (the contents of the file `where`), to the next `## `."""
    match = re.search(r"^## Run specs\n(.*?)(?=^## |\Z)", doc, flags=re.M | re.S)
    if not match:
        raise ValueError(f"{where} has no '## Run specs' section")
    return match.group(1)


def spec_doc_problems(doc: str, where: str = SPEC_DOC) -> list[str]:
    """One line per spec field or choice the `## Run specs` section of `doc` does not name in backticks."""
    text = spec_doc_section(doc, where)
    bullets = {m.group(1): m.group(0) for m in re.finditer(r"^- `(\w+)`.*?(?=^- |^\S|\Z)", text, flags=re.M | re.S)}
    problems = []
    for section, fields in documented_fields().items():
        scope = bullets.get(section, "") if section else text
        if section and not scope:
            problems.append(f"{where}: Run specs: no bullet for section `{section}`")
            continue
        for name, choices in fields.items():
            path = f"{section}.{name}" if section else name
            if f"`{name}`" not in scope:
                problems.append(f"{where}: Run specs: `{path}` not documented")
            missing = [c for c in choices if f"`{c}`" not in scope and f'`"{c}"`' not in scope]
            problems += [f"{where}: Run specs: `{path}` choice `{c}` not documented" for c in missing]
    return problems
