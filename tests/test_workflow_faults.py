"""Workflow faults that used to pass silently or without naming what was wrong (issue 22): a suite
config with a key defined twice, a data root with a space, a seed that is not a seed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from workflow_helpers import REPO, run_snakemake, workflow_copy


@pytest.fixture(scope="module")
def wf(tmp_path_factory) -> Path:
    return workflow_copy(tmp_path_factory.mktemp("wf"))


def test_suite_config_with_a_duplicate_key_is_refused_naming_file_line_and_key(wf, tmp_path):
    text = (REPO / "config" / "suite_smoke.yaml").read_text()
    assert text.startswith("name:") or "\nname:" in text
    bad = tmp_path / "dup.yaml"
    bad.write_text(text + "\nname: another\n")
    shutil.rmtree(wf / ".snakemake", ignore_errors=True)
    res = run_snakemake(wf, "-n", "--cores", "1", "--configfile", str(bad), check=False)
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert f"{bad}, line {len(text.splitlines()) + 2}: duplicate key 'name'" in out, out[-2000:]
