"""`srcr bench modules` at tiny sizes: every module is built, counted and timed, ratios refer to
the reference modules, and bad arguments fail cleanly. (No timing assertions.)"""

from __future__ import annotations

import json

import pytest
import torch

from srcr.bench.modules import MSCAN_S_CHANNELS, bench
from srcr.cli import main as cli_main
from srcr.flops import count_flops
from srcr.models import ALIGN_MODULES, CONTEXT_MODULES
from srcr.models.decoder import build_align


def test_cli_smoke(tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = cli_main(
        [
            "bench",
            "modules",
            "--size",
            "64x128",
            "--fpn-dim",
            "16",
            "--repeats",
            "2",
            "--warmup",
            "1",
            "--threads",
            "1",
            "--json",
            str(out),
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "vs fam" in printed and "vs ppm" in printed
    data = json.loads(out.read_text())
    s = data["settings"]
    assert s["align_inputs"] == {"low": [1, 16, 16, 32], "high": [1, 16, 8, 16]}
    assert s["context_inputs"] == [
        [1, c, 64 // r, 128 // r] for c, r in zip(MSCAN_S_CHANNELS, (4, 8, 16, 32))
    ]
    assert s["threads"] == 1
    assert [r["name"] for r in data["align"]] == sorted(ALIGN_MODULES)
    assert [r["name"] for r in data["context"]] == sorted(CONTEXT_MODULES)
    for r in data["align"] + data["context"]:
        assert len(r["latency_runs_ms"]) == 2 and r["latency_ms"] > 0 and r["gflops"] > 0
        assert r["latency_ratio"] > 0
    fam = next(r for r in data["align"] if r["name"] == "fam")
    assert fam["latency_ratio"] == 1.0 and fam["gflops_ratio"] == 1.0
    ppm = next(r for r in data["context"] if r["name"] == "ppm")
    assert ppm["latency_ratio"] == 1.0
    srm = next(r for r in data["align"] if r["name"] == "srm")
    assert srm["gflops_ratio"] == pytest.approx(srm["gflops"] / fam["gflops"])


def test_flops_match_count_flops_on_the_same_shapes():
    r = bench(
        (64, 96),
        8,
        repeats=1,
        warmup=0,
        device=torch.device("cpu"),
        align_names=["srm"],
        context_names=["none"],
        align_ref="fam",
        context_ref="ppm",
        profile=True,
        progress=False,
    )
    srm = r["align"][0]
    direct = count_flops(
        build_align("srm", 8, {}, "bn"),
        inputs=(torch.zeros(1, 8, 16, 24), torch.zeros(1, 8, 8, 12)),
    )
    assert srm["gflops"] == direct["gflops"] and srm["params"] == direct["params"]
    assert srm["latency_ratio"] is None  # the reference module was not run
    assert srm["top_ops"] and all(0 <= o["share"] <= 1 for o in srm["top_ops"])


def test_bad_arguments(capsys):
    assert cli_main(["bench", "modules", "--align", "srm,nope", "--size", "32x32"]) == 2
    assert "nope" in capsys.readouterr().err
    assert cli_main(["bench", "modules", "--repeats", "0", "--size", "32x32"]) == 2
    assert cli_main(["bench", "modules", "--size", "big"]) == 2
