"""A suite's `latency:` switch: off by default (no job added); on, one `srcr bench model` job per
variant whose figures runs.csv carries beside the GFLOPs."""

from __future__ import annotations

import json
import shlex

import pandas as pd
import pytest
import torch
from suite_helpers import fabricate, suite
from train_helpers import TINY_MODEL
from workflow_helpers import job_counts, run_snakemake, tiny_suite, workflow_copy

from srcr.bench.model import bench_model
from srcr.cli import main
from srcr.config import load_config
from srcr.suite.plan import LATENCY_DEFAULTS, make_plan


def test_plan_latency_is_off_by_default_and_filled_with_defaults():
    assert make_plan(suite()).latency is None
    plan = make_plan(suite(latency={"dtype": "bf16", "batch": 2}))
    assert plan.latency == {**LATENCY_DEFAULTS, "dtype": "bf16", "batch": 2}


def test_aggregate_adds_the_measured_latency_beside_gflops(tmp_path):
    results = tmp_path / "results"
    fabricate(results, {("a", 0): 70.0, ("a", 1): 72.0})
    cfg = load_config(None, TINY_MODEL + ["model.num_classes=3"])
    card = bench_model(cfg, (32, 32), 1, "fp32", "whole", 1, 0, torch.device("cpu"))
    (results / "latency").mkdir()
    (results / "latency" / "a.json").write_text(json.dumps(card))
    runs = tmp_path / "runs.csv"
    assert (
        main(
            [
                "aggregate",
                "--results",
                str(results),
                "--variants",
                "a",
                "--seeds",
                "0,1",
                "--latency",
                "--out",
                str(runs),
            ]
        )
        == 0
    )
    df = pd.read_csv(runs)
    # runs.csv keeps 4 decimals
    assert df["latency_ms"].tolist() == pytest.approx([card["latency_ms"]] * 2, abs=1e-4)
    assert df["achieved_gflops_per_s"].iloc[0] == pytest.approx(
        card["achieved_gflops_per_s"], abs=1e-4
    )
    assert df["latency_dtype"].iloc[0] == "fp32" and df["latency_size"].iloc[0] == "32x32"
    assert "gflops" in df.columns
    # without the switch the columns are absent; with it, a missing card names its file
    assert (
        main(
            [
                "aggregate",
                "--results",
                str(results),
                "--variants",
                "a",
                "--seeds",
                "0",
                "--out",
                str(runs),
            ]
        )
        == 0
    )
    assert "latency_ms" not in pd.read_csv(runs).columns
    (results / "latency" / "a.json").unlink()
    assert (
        main(
            [
                "aggregate",
                "--results",
                str(results),
                "--variants",
                "a",
                "--seeds",
                "0",
                "--latency",
                "--out",
                str(runs),
            ]
        )
        == 2
    )


@pytest.mark.parametrize("latency", [None, {"dtype": "bf16", "repeats": 5}])
def test_workflow_adds_one_latency_job_per_variant_only_when_asked(tmp_path, latency):
    pytest.importorskip("snakemake")
    wf = workflow_copy(tmp_path / "wf")
    cfg = tiny_suite(wf / "config" / "suite_tiny.yaml", "tiny", latency=latency)
    res = run_snakemake(wf, "--configfile", str(cfg), "--cores", "1", "-n", "-p")
    counts = job_counts(res.stdout)
    assert counts.get("latency", 0) == (2 if latency else 0)  # the loss table's two variants
    if latency:
        lines = [ln.strip().removeprefix("Shell command: ") for ln in res.stdout.splitlines()]
        cmds = [ln for ln in lines if ln.startswith("srcr bench model")]
        assert len(cmds) == 2
        argv = shlex.split(cmds[0])
        assert (
            argv[argv.index("--dtype") + 1] == "bf16" and argv[argv.index("--repeats") + 1] == "5"
        )
        assert argv[argv.index("--device") + 1] == "cpu"
        agg = next(ln for ln in lines if ln.startswith("srcr aggregate"))
        assert "--latency" in agg
