"""The repro cache: where inputs built or fetched once are kept for every later run.

It holds the converted embedded model and tokenizer (app/inputs/models.py), hub snapshots with their
fetch records (app/inputs/hub.py) and vLLM's compile caches (app/eval/generate.py). REPRO_CACHE
moves it; the images mount it at /cache.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """$REPRO_CACHE, else ~/.cache/repro."""
    return Path(os.environ.get("REPRO_CACHE", Path.home() / ".cache" / "repro"))
