"""`repro audit` (app/share/audit.py): the verdict first, then the environment summarised unless --verbose."""

import shutil

from tests.helpers import FIXTURE, RUN, repro


def test_audit_prints_its_verdict_first_and_environment_details_on_request(tmp_path):
    shutil.copytree(FIXTURE / RUN, tmp_path / RUN)
    short = repro("audit", str(tmp_path / RUN))
    lines = short.stdout.strip().splitlines()
    assert short.returncode == 0 and lines[0].startswith(f"AUDIT OK {tmp_path / RUN}:"), short.stdout
    summary = [line for line in lines if line.startswith("environment: ")]
    assert len(summary) == 1 and "(--verbose lists them)" in summary[0]
    assert not any(line.startswith("omitted ") for line in lines)  # counted in the verdict instead
    full = repro("audit", str(tmp_path / RUN), "--verbose").stdout.strip().splitlines()
    count = int(summary[0].split()[1])
    assert len(full) == len(lines) - 1 + count + 6  # every differing field, and the 6 omitted files
    assert full[0] == lines[0] and sum(line.startswith("omitted checkpoint/") for line in full) == 6
