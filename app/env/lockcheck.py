"""Is every CUDA lock installable? Checked against the package index's metadata, downloading no wheel.

For each pinned requirement of a lock:
  - every hash in the lock belongs to a file of that version on the index (PEP 691 simple JSON);
  - at least one of those files installs on the lock's target (Python version, manylinux glibc,
    x86_64), by its wheel tags and Requires-Python;
  - its dependencies (core metadata, PEP 658, a few KB per file) are all pinned in the same lock at
    versions that satisfy them, extras followed, markers evaluated for the target.
Pure apart from HTTPS (stdlib urllib); `packaging` reads tags, markers and specifiers.
"""

from __future__ import annotations

import io
import re
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.parser import HeaderParser
from functools import cache
from typing import TYPE_CHECKING

from packaging import tags
from packaging.requirements import Requirement
from packaging.utils import parse_sdist_filename, parse_wheel_filename
from packaging.version import Version

from app.env.lockfiles import VARIANTS, lock_path
from app.env.versions import Pin, canonical_name, read_pins

if TYPE_CHECKING:
    import requests

INDEX = "https://pypi.org/simple"
WORKERS = 16


@cache
def session():
    """One pooled HTTPS session: one TLS handshake per connection, not per request."""
    import requests

    sess = requests.Session()
    sess.mount("https://", requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=WORKERS))
    return sess


def get(url: str, **headers) -> requests.Response:
    resp = session().get(url, headers=headers, timeout=120)
    if resp.status_code not in (200, 206):
        resp.raise_for_status()
        raise OSError(f"{url}: HTTP {resp.status_code}")
    return resp


@cache
def index_files(name: str) -> tuple[dict, ...]:
    """Every file of a project on the index, from its PEP 691 JSON page."""
    return tuple(get(f"{INDEX}/{name}/", Accept="application/vnd.pypi.simple.v1+json").json()["files"])


def file_version(filename: str) -> Version | None:
    try:
        if filename.endswith(".whl"):
            return parse_wheel_filename(filename)[1]
        return parse_sdist_filename(filename)[1]
    except ValueError:
        return None


def target(python: str, platform: str) -> tuple[set, dict]:
    """Wheel tags a `python` (e.g. 3.12) on `platform` (x86_64-manylinux_2_28) accepts, and its markers."""
    arch, glibc = platform.split("-manylinux_")
    major, minor = (int(p) for p in glibc.split("_"))
    plats = [f"manylinux_{major}_{m}_{arch}" for m in range(minor, 4, -1)]
    plats += [f"manylinux2014_{arch}", f"manylinux2010_{arch}", f"manylinux1_{arch}", f"linux_{arch}"]
    py = tuple(int(p) for p in python.split("."))
    cp = f"cp{py[0]}{py[1]}"
    accepted = set(tags.cpython_tags(py, abis=[cp, "abi3", "none"], platforms=plats))
    accepted |= set(tags.compatible_tags(py, cp, platforms=plats))
    env = {"python_version": python, "python_full_version": f"{python}.0", "sys_platform": "linux",
           "platform_system": "Linux", "platform_machine": arch, "os_name": "posix",
           "implementation_name": "cpython", "platform_python_implementation": "CPython"}  # fmt: skip
    return accepted, env


def installable(f: dict, accepted: set, python: str) -> bool:
    """A wheel whose tags the target accepts (sdists would need a build) and whose Requires-Python fits."""
    from packaging.specifiers import SpecifierSet

    name = f["filename"]
    if not name.endswith(".whl") or not (set(parse_wheel_filename(name)[3]) & accepted):
        return False
    rp = f.get("requires-python")
    return not rp or Version(f"{python}.0") in SpecifierSet(rp)


def check_files(pin: Pin, accepted: set, python: str) -> tuple[list[str], list[dict]]:
    """Hash and platform problems of one pin, and its index files that carry a lock hash and install here."""
    files = [f for f in index_files(pin.name) if file_version(f["filename"]) == Version(pin.version)]
    by_hash = {f["hashes"].get("sha256"): f for f in files}
    problems = [
        f"{pin.name}=={pin.version}: hash {h[:12]}… is not a file on the index" for h in pin.hashes - set(by_hash)
    ]
    usable = [by_hash[h] for h in sorted(pin.hashes & set(by_hash)) if installable(by_hash[h], accepted, python)]
    if not usable:
        names = sorted({f["filename"].rsplit("-", 1)[-1] for f in files if f["hashes"].get("sha256") in pin.hashes})
        problems.append(f"{pin.name}=={pin.version}: no hashed wheel for this target (have: {', '.join(names)})")
    return problems, usable


class RemoteFile(io.RawIOBase):
    """A read-only, seekable view of a URL through HTTP range requests in 256 KiB blocks, so `zipfile`
    reads a wheel's central directory and one member instead of the whole wheel."""

    BLOCK = 1 << 18

    def __init__(self, url: str):
        self.url, self.pos, self.blocks = url, 0, {}
        tail = get(url, Range=f"bytes=-{self.BLOCK}")  # the end holds the zip's central directory
        self.size = int(tail.headers["Content-Range"].rsplit("/", 1)[1])
        self.tail_start = self.size - len(tail.content)
        self.tail = tail.content

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self.pos = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence] + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def read(self, n: int = -1) -> bytes:
        end = self.size if n is None or n < 0 else min(self.size, self.pos + n)
        if self.pos >= self.tail_start:
            data = self.tail[self.pos - self.tail_start : end - self.tail_start]
        else:
            start = self.pos - self.pos % self.BLOCK
            stop = max(end, start + self.BLOCK)
            key = (start, stop)
            if key not in self.blocks:
                self.blocks[key] = get(self.url, Range=f"bytes={start}-{min(stop, self.size) - 1}").content
            data = self.blocks[key][self.pos - start : end - start]
        self.pos += len(data)
        return data


@cache
def wheel_metadata(url: str) -> str:
    """METADATA of a remote wheel: PEP 658's `.metadata` file, else read out of the zip by ranges."""
    resp = session().get(url + ".metadata", timeout=60)
    if resp.status_code == 200:
        return resp.text
    if resp.status_code != 404:  # not every upload has its metadata served separately
        resp.raise_for_status()
    with zipfile.ZipFile(RemoteFile(url)) as whl:
        name = next(n for n in whl.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n))
        return whl.read(name).decode("utf-8", "replace")


def requires_dist(wheel: dict) -> list[str]:
    """Requires-Dist of an index wheel, from its metadata alone."""
    return HeaderParser().parsestr(wheel_metadata(wheel["url"])).get_all("Requires-Dist") or []


def unmet(pins: dict[str, Pin], deps: dict[str, list[str]], env: dict, roots: list[str], skip: set) -> list[str]:
    """Requirements (roots, then every pin's, following requested extras) the pinned set does not meet."""
    problems, seen = [], set()
    todo = [(None, Requirement(r), "") for r in roots]
    while todo:
        parent, req, extra = todo.pop()
        if req.marker and not req.marker.evaluate({**env, "extra": extra}):
            continue
        name, why = canonical_name(req.name), f"{req.name}{req.specifier} (needed by {parent or 'pyproject.toml'})"
        pin = pins.get(name)
        if pin is None:
            if name not in skip:
                problems.append(f"{why} is not in the lock")
            continue
        if not req.specifier.contains(pin.version, prereleases=True):
            problems.append(f"{name}=={pin.version} does not satisfy {why}")
        for ex in [""] + sorted(req.extras):
            if (name, ex) not in seen:
                seen.add((name, ex))
                todo += [(name, Requirement(d), ex) for d in deps.get(name, [])]
    return problems


@dataclass
class LockReport:
    variant: str
    pins: int
    problems: list[str]
    seconds: float


def check_variant(variant: str, workers: int = WORKERS) -> LockReport:
    """Check one lock against the index: hashes, target wheels, dependency closure."""
    from app.env.lockfiles import declared

    v, t0 = VARIANTS[variant], time.time()
    pins, problems = read_pins(lock_path(variant).read_text())
    accepted, env = target(v.python, v.platform)
    with ThreadPoolExecutor(workers) as pool:
        checked = list(pool.map(lambda pin: check_files(pin, accepted, v.python), pins.values()))
        problems += [line for lines, _ in checked for line in lines]
        no_deps = {canonical_name(Requirement(r).name) for r in v.no_deps}
        # Each pin's dependencies come from the metadata of its first installable hashed wheel.
        wheels = {
            p.name: usable[0] for p, (_, usable) in zip(pins.values(), checked) if usable and p.name not in no_deps
        }
        deps = dict(zip(wheels, pool.map(requires_dist, wheels.values())))
    roots = declared(v.extras) + list(v.no_deps)
    skip = {canonical_name(x) for x in v.exclude}
    problems += unmet(pins, deps, env, roots, skip)
    return LockReport(variant, len(pins), problems, round(time.time() - t0, 1))


CUDA_VARIANTS = tuple(n for n in VARIANTS if "cuda" in n)
