"""The suite's DAG, dry-run on every shipped suite config with each profile, without data present:
the job counts must be what the grid says (Snakemake has had bugs where rules silently did not
run), and `snakemake --lint` must report nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from dataset_fixtures import make_folder
from workflow_helpers import REPO, job_counts, run_snakemake, workflow_copy

from srcr.suite.grid import load_grid

pytest.importorskip("snakemake")

SUITES = {
    # suite config -> (runs per variant, variants, synthetic data to generate)
    "config/suite.yaml": (4, 17, True),
    "config/suite_smoke.yaml": (2, 5, True),
    "config/suite_cityscapes.yaml": (1, 13, False),
    "config/suite_bdd100k.yaml": (1, 13, False),
    "config/suite_ade20k.yaml": (1, 13, False),
    "config/suite_folder.yaml": (1, 13, False),
}
# suites whose plan reads the dataset (a folder dataset's classes.yaml): a fixture at its data_root
NEEDS_DATA = {"config/suite_folder.yaml": make_folder}
PROFILES = [p.name for p in sorted((REPO / "profiles").iterdir()) if p.is_dir()]


@pytest.fixture(scope="module")
def wf(tmp_path_factory) -> Path:
    return workflow_copy(tmp_path_factory.mktemp("wf"))


def expected_counts(suite: str) -> dict[str, int]:
    seeds, variants, synthetic = SUITES[suite]
    cfg = yaml.safe_load((REPO / suite).read_text())
    grid = load_grid(REPO / cfg["grid"])
    assert len(grid.variants_of(cfg["tables"])) == variants  # the grid says so, not just this table
    counts = {"flops": variants, "aggregate": 1, "report": 1, "all": 1}
    if cfg.get("group_by_seed"):  # one job per seed trains (evaluates) every variant
        counts.update(train_seed=seeds, evaluate_seed=seeds)
    else:
        counts.update(train=variants * seeds, evaluate=variants * seeds)
    if synthetic:
        counts["synth"] = 1
    if cfg.get("pretrain"):
        counts["pretrain"] = 1
        if synthetic:
            counts["synth_pretrain"] = 1
    return counts


def test_default_grid_has_17_distinct_variants_over_5_tables_and_a_control():
    grid = load_grid(REPO / "ablations" / "grid.yaml")
    assert len(grid.variants) == 17 and len(grid.tables) == 6
    assert [t.name for t in grid.tables.values() if t.twins] == ["controls"]
    assert grid.variants_of(list(grid.tables)) == list(
        grid.variants
    )  # every declared variant is used
    assert {t.baseline for t in grid.tables.values()} == {
        "bilinear_none",
        "bilinear_crm",
        "srm_none",
        "srm_crm_ce",
        "srm_crm_k1",
        None,
    }


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("suite", list(SUITES))
def test_dry_run_job_counts(wf, suite, profile):
    for d in ("data", "results", ".snakemake"):
        shutil.rmtree(wf / d, ignore_errors=True)
    if suite in NEEDS_DATA:
        NEEDS_DATA[suite](
            wf / yaml.safe_load((REPO / suite).read_text())["data_root"], n_per_split=1
        )
    res = run_snakemake(
        wf, "-n", "--profile", f"profiles/{profile}", "--configfile", suite, "--cores", "2"
    )
    assert job_counts(res.stdout) == expected_counts(suite), res.stdout[-3000:]


def test_lint_reports_nothing(wf):
    res = run_snakemake(wf, "--lint", check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Lints for" not in res.stdout + res.stderr, res.stdout + res.stderr


def test_bad_suite_config_is_refused_before_any_job(wf, tmp_path):
    bad = tmp_path / "bad.yaml"
    cfg = yaml.safe_load((REPO / "config/suite_smoke.yaml").read_text())
    cfg["tables"] = ["components", "nosuchtable"]
    bad.write_text(yaml.safe_dump(cfg))
    res = run_snakemake(wf, "-n", "--cores", "1", "--configfile", str(bad), check=False)
    assert res.returncode != 0
    assert "unknown table 'nosuchtable'" in res.stdout + res.stderr

    cfg = yaml.safe_load((REPO / "config/suite_smoke.yaml").read_text())
    cfg["seeds"] = "zero"
    bad.write_text(yaml.safe_dump(cfg))
    res = run_snakemake(wf, "-n", "--cores", "1", "--configfile", str(bad), check=False)
    assert res.returncode != 0 and "seeds" in res.stdout + res.stderr


def test_multi_gpu_training_runs_under_torchrun_with_one_process_per_gpu(wf):
    shutil.rmtree(wf / ".snakemake", ignore_errors=True)
    res = run_snakemake(
        wf, "-n", "-p", "--cores", "16", "--configfile", "config/suite_cityscapes.yaml"
    )
    lines = [ln.removeprefix("Shell command: ") for ln in res.stdout.splitlines()]
    train_cmds = [ln for ln in lines if " train --config " in ln]
    assert len(train_cmds) == 13
    # 8 GPUs: 8 processes; the job's 16 threads (32 asked, capped by --cores) split over them
    assert all(
        ln.startswith("torchrun --standalone --nproc_per_node 8 -m srcr.cli train")
        for ln in train_cmds
    )
    assert all("--threads 2 --device cuda" in ln for ln in train_cmds)
    evals = [ln for ln in lines if " evaluate --config " in ln]
    assert evals and all(ln.startswith("srcr evaluate") and "--device cuda" in ln for ln in evals)


def test_a_suite_given_with_configfile_inherits_nothing_from_the_default_suite(wf, tmp_path):
    # Snakemake would merge a --configfile over the Snakefile's configfile key by key: a suite
    # that leaves out `pretrain` would then pretrain as the default suite does.
    cfg = yaml.safe_load((REPO / "config/suite_smoke.yaml").read_text())
    del cfg["pretrain"], cfg["resources"]["pretrain"]
    cfg["set"] = [s for s in cfg["set"] if not s.startswith("train.freeze_backbone")]
    own = tmp_path / "own.yaml"
    own.write_text(yaml.safe_dump(cfg))
    shutil.rmtree(wf / ".snakemake", ignore_errors=True)
    res = run_snakemake(wf, "-n", "-p", "--cores", "2", "--configfile", str(own))
    counts = job_counts(res.stdout)
    assert "pretrain" not in counts and "synth_pretrain" not in counts, counts
    assert counts["train"] == 10 and "model.pretrained=" not in res.stdout


def test_seeds_given_on_the_command_line_are_integers(wf):
    shutil.rmtree(wf / ".snakemake", ignore_errors=True)
    res = run_snakemake(wf, "-n", "--cores", "2", "--config", "seeds=[0,1]")
    counts = job_counts(res.stdout)
    assert counts["train_seed"] == 2 and counts["evaluate_seed"] == 2, counts


def test_folder_suite_takes_its_data_root_and_class_count_from_the_command_line(wf, tmp_path):
    shutil.rmtree(wf / ".snakemake", ignore_errors=True)
    args = ["-n", "-p", "--cores", "16", "--configfile", "config/suite_folder.yaml"]
    res = run_snakemake(wf, *args, "--config", f"data_root={tmp_path}", check=False)
    assert (
        res.returncode != 0 and f"{tmp_path / 'classes.yaml'} not found" in res.stdout + res.stderr
    )
    root = make_folder(tmp_path / "mine", n_per_split=1)
    res = run_snakemake(wf, *args, "--config", f"data_root={root}")
    trains = [ln for ln in res.stdout.splitlines() if " train --config " in ln]
    assert len(trains) == 13 and all(f"--set data.root={root}" in ln for ln in trains)
    assert all("--device cuda" in ln for ln in trains)
