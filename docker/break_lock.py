"""Print a lockfile with every hash of its first requirement replaced by zeros (one wrong hash)."""

import re
import sys
from pathlib import Path

lines = Path(sys.argv[1]).read_text().splitlines(keepends=True)
first = next(i for i, ln in enumerate(lines) if ln[:1].isalpha())
i = first + 1
while i < len(lines) and lines[i].lstrip().startswith("--hash="):
    lines[i] = re.sub(r"sha256:[0-9a-f]{64}", "sha256:" + "0" * 64, lines[i])
    i += 1
sys.stdout.write("".join(lines))
