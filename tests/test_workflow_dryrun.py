"""The suite's DAG, dry-run on every shipped suite config with each profile, without data present:
the job counts must be what the grid says (Snakemake has had bugs where rules silently did not
run), and `snakemake --lint` must report nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from srcr.suite.grid import load_grid
from workflow_helpers import REPO, job_counts, run_snakemake, workflow_copy

pytest.importorskip("snakemake")

SUITES = {
    # suite config -> (runs per variant, variants, synthetic data to generate)
    "config/suite.yaml": (2, 13, True),
    "config/smoke.yaml": (2, 5, True),
    "config/suite_cityscapes.yaml": (1, 13, False),
    "config/suite_bdd100k.yaml": (1, 13, False),
    "config/suite_ade20k.yaml": (1, 13, False),
}
PROFILES = [p.name for p in sorted((REPO / "profiles").iterdir()) if p.is_dir()]


@pytest.fixture(scope="module")
def wf(tmp_path_factory) -> Path:
    return workflow_copy(tmp_path_factory.mktemp("wf"))


def expected_counts(suite: str) -> dict[str, int]:
    seeds, variants, synthetic = SUITES[suite]
    cfg = yaml.safe_load((REPO / suite).read_text())
    grid = load_grid(REPO / cfg["grid"])
    assert len(grid.variants_of(cfg["tables"])) == variants  # the grid says so, not just this table
    counts = {"train": variants * seeds, "evaluate": variants * seeds, "flops": variants,
              "aggregate": 1, "tables": 1, "all": 1}
    if synthetic:
        counts["synth"] = 1
    return counts


def test_default_grid_has_13_distinct_variants_over_5_tables():
    grid = load_grid(REPO / "ablations" / "grid.yaml")
    assert len(grid.variants) == 13 and len(grid.tables) == 5
    assert grid.variants_of(list(grid.tables)) == list(grid.variants)  # every declared variant is used
    assert {t.baseline for t in grid.tables.values()} == {"bilinear_none", "bilinear_crm", "srm_none",
                                                          "srm_crm_ce", "srm_crm_k1"}


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("suite", list(SUITES))
def test_dry_run_job_counts(wf, suite, profile):
    for d in ("data", "results", ".snakemake"):
        shutil.rmtree(wf / d, ignore_errors=True)
    res = run_snakemake(wf, "-n", "--profile", f"profiles/{profile}", "--configfile", suite, "--cores", "2")
    assert job_counts(res.stdout) == expected_counts(suite), res.stdout[-3000:]


def test_lint_reports_nothing(wf):
    res = run_snakemake(wf, "--lint", check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Lints for" not in res.stdout + res.stderr, res.stdout + res.stderr


def test_bad_suite_config_is_refused_before_any_job(wf, tmp_path):
    bad = tmp_path / "bad.yaml"
    cfg = yaml.safe_load((REPO / "config/smoke.yaml").read_text())
    cfg["tables"] = ["components", "nosuchtable"]
    bad.write_text(yaml.safe_dump(cfg))
    res = run_snakemake(wf, "-n", "--cores", "1", "--configfile", str(bad), check=False)
    assert res.returncode != 0
    assert "unknown table 'nosuchtable'" in res.stdout + res.stderr

    cfg = yaml.safe_load((REPO / "config/smoke.yaml").read_text())
    cfg["seeds"] = "zero"
    bad.write_text(yaml.safe_dump(cfg))
    res = run_snakemake(wf, "-n", "--cores", "1", "--configfile", str(bad), check=False)
    assert res.returncode != 0 and "seeds" in res.stdout + res.stderr
