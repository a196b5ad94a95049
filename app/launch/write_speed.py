"""The runs file system's write speed, measured at submit time for the pre-time-limit signal's lead
time (app/launch/lead_time.py): write and fsync a temp file, hash it back as the manifest would, delete it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path

from app.launch.lead_time import Speeds

PROBE_BYTES = 128 * 2**20  # big enough to get past the page cache's first burst, small enough to take seconds
BLOCK = 2**22


def probe_dir(path: Path) -> Path:
    """`path`, or its nearest existing parent (a dry run creates nothing: the probe file is deleted)."""
    while not path.is_dir() and path.parent != path:
        path = path.parent
    return path


def measure(path: Path, nbytes: int = PROBE_BYTES) -> Speeds:
    """Write `nbytes` (not compressible) with fsync under `path`, then sha256 them back; remove the file."""
    block = os.urandom(BLOCK)
    fd, name = tempfile.mkstemp(dir=probe_dir(path), prefix=".write-speed.", suffix=".tmp")
    try:
        t0 = time.perf_counter()
        for _ in range(max(1, nbytes // BLOCK)):
            os.write(fd, block)
        os.fsync(fd)
        write_s = time.perf_counter() - t0
        os.lseek(fd, 0, os.SEEK_SET)
        h, t0 = hashlib.sha256(), time.perf_counter()
        while chunk := os.read(fd, BLOCK):
            h.update(chunk)
        hash_s = time.perf_counter() - t0
    finally:
        os.close(fd)
        os.unlink(name)
    written = max(1, nbytes // BLOCK) * BLOCK
    return Speeds(written / max(write_s, 1e-6), written / max(hash_s, 1e-6))
