"""group_by_seed: one Snakemake job per seed trains every variant in one `srcr train` process (and
one evaluates them in one `srcr evaluate` pass), and each run ends with exactly the weights and
metrics of the same run trained and evaluated alone with its own `srcr train` and `srcr evaluate`,
also when the seed's job is killed mid-training and the workflow started again."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
from workflow_helpers import (
    env,
    job_counts,
    run_snakemake,
    snakemake_cmd,
    tiny_suite,
    workflow_copy,
)

from srcr.config import load_yaml
from srcr.engine.checkpoint import list_checkpoints
from srcr.suite.plan import make_plan

pytestmark = pytest.mark.slow  # whole Snakemake suites end to end (`pytest -m "not slow"` skips)

pytest.importorskip("snakemake")


def test_one_job_per_seed_trains_every_variant_as_each_would_train_alone(tmp_path):
    wf = workflow_copy(tmp_path / "wf")
    cfg = str(
        tiny_suite(
            wf / "grouped.yaml",
            name="grouped",
            group_by_seed=True,
            sets=["train.iterations=20", "train.freeze_backbone=true"],
        )
    )
    results = wf / "results" / "grouped"
    targets = [f"results/grouped/{v}/seed0/eval/metrics.json" for v in ("srm_crm", "srm_crm_ce")]
    res = run_snakemake(wf, *targets, "--cores", "2", "--configfile", cfg)
    counts = job_counts(res.stdout + res.stderr)
    assert counts == {"synth": 1, "train_seed": 1, "evaluate_seed": 1}, counts
    log = (results / "logs" / "train" / "seed0.log").read_text()
    assert "one of 2 runs in this process" in log, log
    assert all((wf / t).is_file() for t in targets)
    again = run_snakemake(wf, *targets, "--cores", "2", "--configfile", cfg)
    assert "Nothing to be done" in again.stdout + again.stderr

    plan = make_plan(
        {
            **load_yaml(cfg),
            "grid": str(wf / "ablations/grid.yaml"),
            "base_config": str(wf / "config/default.yaml"),
        }
    )
    for variant in ("srm_crm", "srm_crm_ce"):
        alone = tmp_path / f"alone_{variant}"
        sets = [a for o in plan.overrides(variant, 0) for a in ("--set", o)]
        subprocess.run(
            [
                sys.executable,
                "-m",
                "srcr.cli",
                "train",
                "--config",
                "config/default.yaml",
                "--out",
                str(alone),
                "--threads",
                "1",
                "--device",
                "cpu",
                "--no-progress",
                *sets,
            ],
            cwd=wf,
            env=env(),
            check=True,
            capture_output=True,
            timeout=300,
        )
        a = torch.load(
            results / variant / "seed0" / "checkpoints" / "final.pth", weights_only=True
        )["model"]
        b = torch.load(alone / "checkpoints" / "final.pth", weights_only=True)["model"]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), variant
        subprocess.run(
            [
                sys.executable,
                "-m",
                "srcr.cli",
                "evaluate",
                "--config",
                "config/default.yaml",
                "--checkpoint",
                str(alone),
                "--out",
                str(alone / "eval"),
                "--threads",
                "1",
                "--device",
                "cpu",
                "--no-progress",
                *sets,
            ],
            cwd=wf,
            env=env(),
            check=True,
            capture_output=True,
            timeout=300,
        )
        grouped = results / variant / "seed0" / "eval"
        assert (grouped / "per_class.csv").read_bytes() == (
            alone / "eval" / "per_class.csv"
        ).read_bytes()
        assert (
            json.loads((grouped / "metrics.json").read_text())["metrics"]
            == json.loads((alone / "eval" / "metrics.json").read_text())["metrics"]
        ), variant


def test_a_killed_seed_job_resumes_every_run_from_its_own_checkpoint(tmp_path):
    wf = workflow_copy(tmp_path / "wf")
    cfg = str(
        tiny_suite(
            wf / "grouped.yaml",
            name="grouped",
            group_by_seed=True,
            sets=["train.freeze_backbone=true"],
        )
    )
    results = wf / "results" / "grouped"
    finals = [f"results/grouped/{v}/seed0/checkpoints/final.pth" for v in ("srm_crm", "srm_crm_ce")]
    proc = subprocess.Popen(
        snakemake_cmd() + [*finals, "--cores", "2", "--configfile", cfg],
        cwd=wf,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 300
    while not all(
        [i for i, _ in list_checkpoints(results / v / "seed0" / "checkpoints") if i >= 20]
        for v in ("srm_crm", "srm_crm_ce")
    ):
        assert proc.poll() is None, "snakemake ended before the job could be killed"
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not any((wf / f).exists() for f in finals), "killed too late to test resuming"

    run_snakemake(wf, "--unlock", "--configfile", cfg)
    run_snakemake(wf, *finals, "--cores", "2", "--configfile", cfg)
    log = (results / "logs" / "train" / "seed0.log").read_text()
    for v in ("srm_crm", "srm_crm_ce"):
        assert re.search(rf"resuming results/grouped/{v}/seed0 from iter_\d+\.pth", log), log
    # the resumed group ends as an uninterrupted run of one of its variants alone
    plan = make_plan(
        {
            **load_yaml(cfg),
            "grid": str(wf / "ablations/grid.yaml"),
            "base_config": str(wf / "config/default.yaml"),
        }
    )
    alone = tmp_path / "alone"
    sets = [a for o in plan.overrides("srm_crm", 0) for a in ("--set", o)]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "srcr.cli",
            "train",
            "--config",
            "config/default.yaml",
            "--out",
            str(alone),
            "--threads",
            "1",
            "--device",
            "cpu",
            "--no-progress",
            *sets,
        ],
        cwd=wf,
        env=env(),
        check=True,
        capture_output=True,
        timeout=300,
    )
    a = torch.load(wf / finals[0], weights_only=True)["model"]
    b = torch.load(alone / "checkpoints" / "final.pth", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
