"""Package names, versions and lockfile pins: the one reader of each, by `packaging` (PEP 440, 503, 508).

Versions compare as PEP 440 says: `2.13.0+cpu` is another build than `2.13.0`, and an NVIDIA driver
`525.60.13` orders like any release; never as tuples of digits. `packaging` is pinned in every lock
(transformers, huggingface-hub and datasets need it; tests/env/test_versions.py checks), so it is
not a declared dependency of its own. Pure: reads package metadata, imports no torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import metadata

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from app.env.lockfiles import requirement_blocks

HASH_RE = re.compile(r"--hash=sha256:([0-9a-f]{64})")


def canonical_name(name: str) -> str:
    """PEP 503 name: `Typing_Extensions` and `typing.extensions` are `typing-extensions`."""
    return canonicalize_name(name)


def parse_version(text: str) -> Version | None:
    """The PEP 440 version `text` spells, or None when it spells none (a driver reporting `N/A`)."""
    try:
        return Version(text)
    except InvalidVersion:
        return None


def at_least(version: str, floor: str) -> bool:
    """`version >= floor`; a version that cannot be read meets no floor."""
    have = parse_version(version)
    return have is not None and have >= Version(floor)


def major(version: str) -> int:
    """The first release number of a PEP 440 version: 13 for `13.2.86`."""
    return Version(version).major


def same_version(a: str | None, b: str | None) -> bool:
    """Equal as PEP 440 versions (`1.0` is `1.0.0`); as text where either is missing or not a version."""
    pa, pb = parse_version(a or ""), parse_version(b or "")
    return pa == pb if pa is not None and pb is not None else a == b


def installed_version(name: str) -> str | None:
    """The version of the installed distribution `name`, or None when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def installed_versions() -> dict[str, str]:
    """Canonical name → version of every installed distribution."""
    dists = metadata.distributions()
    return {canonical_name(d.metadata["Name"]): d.version for d in dists if d.metadata["Name"]}


@dataclass(frozen=True)
class Pin:
    """One exact requirement of a hashed lock: `name==version --hash=sha256:…`."""

    name: str  # canonical
    version: str  # as the lock spells it
    hashes: frozenset[str] = frozenset()


def exact_pin(block: str) -> Pin | None:
    """The pin a requirement block (hash lines joined) states, or None when it is not one `==` pin."""
    try:
        req = Requirement(block.split(" --", 1)[0].strip())
    except InvalidRequirement:
        return None
    specs = list(req.specifier)
    if len(specs) != 1 or specs[0].operator != "==" or specs[0].version.endswith(".*"):
        return None
    return Pin(canonical_name(req.name), specs[0].version, frozenset(HASH_RE.findall(block)))


def read_pins(text: str) -> tuple[dict[str, Pin], list[str]]:
    """name → Pin of a hashed lockfile, and a problem for each requirement that is not an exact pin."""
    pins, problems = {}, []
    for block in requirement_blocks(text.splitlines()):
        pin = exact_pin(block)
        if pin is None:
            problems.append(f"not an exact pin: {block.split()[0]}")
        else:
            pins[pin.name] = pin
    return pins, problems


def lock_pins(text: str) -> dict[str, str]:
    """name → pinned version of every exact pin in a lockfile."""
    return {name: pin.version for name, pin in read_pins(text)[0].items()}


def drift(pins: dict[str, str], installed: dict[str, str] | None = None) -> list[str]:
    """`name: locked X, installed Y` for each pin missing here or installed at another version."""
    have = installed_versions() if installed is None else installed
    return [
        f"{name}: locked {want}, installed {have.get(name) or 'nothing'}"
        for name, want in sorted(pins.items())
        if not same_version(have.get(name), want)
    ]
