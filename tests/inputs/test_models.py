"""Model sources (app/inputs/models.py): a `run:` source that names no run, or several, is one line."""

import pytest


def test_missing_source_run_is_one_line_error(tmp_path):
    from app.errors import UserError
    from app.inputs.models import run_checkpoint

    with pytest.raises(UserError, match="model.id: 'run:nope-1234abcd': no trained checkpoint"):
        run_checkpoint("run:nope-1234abcd", tmp_path)
    with pytest.raises(UserError, match="model.id: 'run:nope': no trained checkpoint"):
        run_checkpoint("run:nope", tmp_path)


def test_a_spec_name_with_several_runs_is_one_line_naming_them(tmp_path):
    from app.errors import UserError
    from app.inputs.models import run_checkpoint

    for name in ("B_16-0123abcd", "B_16-feedbeef", "B_160-00000000"):
        (tmp_path / name).mkdir()
    with pytest.raises(UserError) as exc:
        run_checkpoint("run:B_16", tmp_path)
    assert str(exc.value) == (
        f"model.id: 'run:B_16': {tmp_path / 'B_16'}: names 2 run directories: B_16-0123abcd, B_16-feedbeef; "
        "give one as run:<directory name>"
    )
