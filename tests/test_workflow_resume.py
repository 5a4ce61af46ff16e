"""The suite survives a SIGKILL: `snakemake` killed mid-training and started again finishes only
what is missing, resumes the interrupted run from its newest checkpoint (not iteration 0), ends
with the weights of an uninterrupted `srcr train` of the same run, and a finished suite started
again does nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from workflow_helpers import env, run_snakemake, snakemake_cmd, tiny_suite, workflow_copy

from srcr.engine.checkpoint import list_checkpoints

pytestmark = pytest.mark.slow  # whole Snakemake suites end to end (`pytest -m "not slow"` skips)

pytest.importorskip("snakemake")


def mtimes(paths) -> dict:
    return {p: p.stat().st_mtime_ns for p in paths}


def test_sigkill_mid_training_then_restart_resumes_and_a_finished_suite_does_nothing(tmp_path):
    wf = workflow_copy(tmp_path / "wf")
    cfg = str(tiny_suite(wf / "resume.yaml", name="resume"))
    results = wf / "results" / "resume"
    done_run = results / "srm_crm_ce" / "seed0"
    # one run finished before the kill ...
    run_snakemake(
        wf,
        str(done_run.relative_to(wf) / "eval" / "metrics.json"),
        "--cores",
        "2",
        "--configfile",
        cfg,
    )
    finished = mtimes([done_run / "checkpoints" / "final.pth", done_run / "eval" / "metrics.json"])

    # ... and one killed mid-training, with Snakemake and the job together
    killed = results / "srm_crm" / "seed0"
    proc = subprocess.Popen(
        snakemake_cmd() + ["--cores", "2", "--configfile", cfg],
        cwd=wf,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 300
    while not [i for i, _ in list_checkpoints(killed / "checkpoints") if i >= 20]:
        assert proc.poll() is None, "snakemake ended before the run could be killed"
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "checkpoints" / "final.pth").exists(), "killed too late to test resuming"
    newest = list_checkpoints(killed / "checkpoints")[-1][0]

    run_snakemake(wf, "--unlock", "--configfile", cfg)  # a killed snakemake leaves its lock behind
    res = run_snakemake(wf, "--cores", "2", "--configfile", cfg)
    log = (results / "logs" / "train" / "srm_crm" / "seed0.log").read_text()
    assert f"resuming {killed.relative_to(wf)} from iter_{newest:07d}.pth" in log, log
    assert mtimes(finished) == finished, "a finished run was redone"
    assert (wf / "reports" / "resume" / "tables" / "loss.md").is_file()
    assert "train" in res.stdout + res.stderr

    again = run_snakemake(wf, "--cores", "2", "--configfile", cfg)
    assert "Nothing to be done" in again.stdout + again.stderr

    # the resumed run equals the same `srcr train` call run by hand, uninterrupted
    from srcr.config import load_yaml
    from srcr.suite.plan import make_plan

    plan = make_plan(
        {
            **load_yaml(cfg),
            "grid": str(wf / "ablations/grid.yaml"),
            "base_config": str(wf / "config/default.yaml"),
        }
    )
    by_hand = tmp_path / "by_hand"
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
            str(by_hand),
            "--threads",
            "1",
            "--device",
            "cpu",
            *sets,
        ],
        cwd=wf,
        env=env(),
        check=True,
        capture_output=True,
        timeout=300,
    )
    a = torch.load(killed / "checkpoints" / "final.pth", weights_only=True)["model"]
    b = torch.load(by_hand / "checkpoints" / "final.pth", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
