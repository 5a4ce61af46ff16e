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


def test_a_data_root_with_a_space_is_quoted_in_every_rule(wf, tmp_path):
    from workflow_helpers import tiny_suite

    suite = tiny_suite(tmp_path / "tiny.yaml", "spaced")
    root = "data/my data"
    for d in ("data", "results", ".snakemake"):
        shutil.rmtree(wf / d, ignore_errors=True)
    res = run_snakemake(
        wf, "-n", "-p", "--cores", "1", "--configfile", str(suite), "--config", f"data_root={root}"
    )
    lines = [
        ln.strip().removeprefix("Shell command: ") for ln in (res.stdout + res.stderr).splitlines()
    ]
    shells = [ln for ln in lines if ln.startswith("srcr ")]
    assert any(ln.startswith("srcr synth --out 'data/my data' ") for ln in shells), shells
    assert any("--set 'data.root=data/my data'" in ln for ln in shells if " train " in ln), shells
    # the synth rule runs for real and writes the dataset under the spaced path
    run_snakemake(
        wf, root, "--cores", "1", "--configfile", str(suite), "--config", f"data_root={root}"
    )
    assert (wf / root / "meta.json").is_file()


def test_a_negative_seed_says_what_is_expected(wf):
    shutil.rmtree(wf / ".snakemake", ignore_errors=True)
    res = run_snakemake(wf, "-n", "--cores", "1", "--config", "seeds=[-1]", check=False)
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "seeds: [-1] not allowed; expected a list of non-negative integers" in out, out[-2000:]
    assert "is not of type 'integer'" not in out
