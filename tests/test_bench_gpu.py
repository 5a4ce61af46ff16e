"""`srcr bench gpu --dry` (the GPU acceptance check's code at tiny sizes, bf16 autocast on the CPU,
DDP through torchrun) and `srcr bench model` (the efficiency card). No timing assertions: the
figures are checked for consistency, not speed."""

from __future__ import annotations

import json

import pytest
import torch
from train_helpers import TINY_MODEL

from srcr.bench.gpu_phases import PHASES, loss_trend
from srcr.bench.model import bench_model, slide_windows
from srcr.cli import main as cli_main
from srcr.config import load_config
from srcr.flops import model_flops


def test_dry_run_checks_training_ddp_evaluation_and_forward(tmp_path, capsys):
    out = tmp_path / "gpu"
    rc = cli_main(
        [
            "bench",
            "gpu",
            "--dry",
            "--out",
            str(out),
            "--iters",
            "4",
            "--warmup",
            "1",
            "--threads",
            "1",
        ]
    )
    printed = capsys.readouterr().out
    assert rc == 0, printed
    report = json.loads((out / "gpu_check.json").read_text())
    assert (out / "gpu_check.md").read_text() == printed
    names = [c["name"] for c in report["checks"]]
    assert names == [
        "training loss",
        "training settings",
        "evaluation",
        "ddp loss",
        "ddp settings",
        "ddp wrapping",
        "forward",
    ]
    assert all(c["ok"] for c in report["checks"])
    # the fixture is in Cityscapes' layout at the stated size
    images = sorted((out / "data" / "cityscapes_tiny" / "leftImg8bit").rglob("*_leftImg8bit.png"))
    assert len(images) == 4 and report["image_size"] == [64, 128]
    for key, ddp in (("train", False), ("ddp", True)):
        t = report[key]
        assert t["iterations"] == 4 and t["timed_iterations"] == 3 and len(t["losses"]) == 4
        assert t["batch_per_process"] == 2 and t["crop_size"] == [32, 32]
        assert set(t["phase_ms"]) == set(PHASES) and all(v >= 0 for v in t["phase_ms"].values())
        assert sum(t["phase_ms"].values()) == pytest.approx(t["step_ms"])
        assert t["images_per_s"] == pytest.approx(2000 / t["step_ms"])
        assert {"ce", "aux", "contrast"} <= set(
            t["last_terms"]
        )  # every loss term, contrastive included
        assert t["bf16_autocast"] and t["channels_last"] and t["fused_optimizer"]
        assert t["ddp"] is ddp and t["sync_bn"] is ddp
    assert report["ddp"]["backend"] == "gloo" and report["ddp"]["world_size"] == 1
    # on the CPU one process and a group of one train the same weights from the same batches
    assert report["ddp"]["losses"] == report["train"]["losses"]
    ev = report["eval"]
    assert ev["images"] == 2 and ev["mode"] == "slide" and ev["crop_size"] == [32, 32]
    assert (out / "train" / "eval" / "metrics.json").is_file()
    assert [c["dtype"] for c in report["forward"]] == ["fp32", "bf16"]
    for c in report["forward"]:
        assert c["achieved_tflops_per_s"] == pytest.approx(c["gflops_per_image"] / c["latency_ms"])


def test_check_refuses_bad_arguments_before_any_work(tmp_path, capsys):
    out = tmp_path / "gpu"
    assert cli_main(["bench", "gpu", "--dry", "--out", str(out), "--iters", "1"]) == 2
    assert "--iters must be >= 2" in capsys.readouterr().err
    assert (
        cli_main(
            ["bench", "gpu", "--dry", "--out", str(out), "--config", "config/ade20k_mscan_s.yaml"]
        )
        == 2
    )
    assert "give a Cityscapes config" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert cli_main(["bench", "gpu", "--out", str(out)]) == 2
        assert "no CUDA device" in capsys.readouterr().err
    assert not out.exists()


def test_loss_trend_known_answers():
    t = loss_trend([3.0, 2.9, 2.5, 2.6, 2.4, 2.2, 2.1, 2.0, 2.0, 1.9])
    assert (
        t["window"] == 2
        and t["first_mean"] == pytest.approx(2.95)
        and t["last_mean"] == pytest.approx(1.95)
    )
    assert t["finite"] and t["decreasing"]
    assert not loss_trend([2.0, 2.0, 2.1, 2.2, 2.3])["decreasing"]
    nan = loss_trend([3.0, float("nan"), 1.0])
    assert not nan["finite"] and not nan["decreasing"]


def test_slide_windows_matches_the_sliding_inference():
    assert slide_windows((1024, 2048), (1024, 1024), (768, 768)) == 3  # Cityscapes: 1 x 3
    assert slide_windows((512, 683), (512, 512), (341, 341)) == 2
    assert slide_windows((100, 100), (512, 512), (341, 341)) == 1  # smaller than a window


def tiny_cfg(*more):
    return load_config(
        None, TINY_MODEL + ["model.num_classes=5", "model.aux_head=true"] + list(more)
    )


@pytest.mark.parametrize("mode,windows", [("whole", 1), ("slide", 3)])
def test_bench_model_card(mode, windows):
    cfg = tiny_cfg("eval.crop_size=[32, 32]", "eval.stride=[16, 16]")
    c = bench_model(cfg, (32, 64), 2, "fp32", mode, repeats=2, warmup=1, device=torch.device("cpu"))
    window = (32, 64) if mode == "whole" else (32, 32)
    counted = model_flops(cfg["model"], window)  # eval mode, no aux / embedding head
    assert c["windows_per_image"] == windows
    assert c["gflops_per_image"] == pytest.approx(counted["gflops"] * windows)
    assert c["params"] == counted["params"]
    assert len(c["latency_runs_ms"]) == 2 and c["latency_ms"] > 0
    assert c["achieved_gflops_per_s"] == pytest.approx(
        c["gflops_per_image"] * 2 / (c["latency_ms"] / 1e3)
    )
    assert c["images_per_s"] == pytest.approx(2 / (c["latency_ms"] / 1e3))
    assert "batch 2, fp32" in c["protocol"] and "heads dropped" in c["protocol"]


def test_bench_model_cli(tmp_path, capsys):
    cfg_path = tmp_path / "cfg.yaml"
    import yaml

    cfg_path.write_text(yaml.safe_dump(tiny_cfg()))
    out = tmp_path / "card.json"
    rc = cli_main(
        [
            "bench",
            "model",
            "--config",
            str(cfg_path),
            "--size",
            "32x32",
            "--dtype",
            "bf16",
            "--repeats",
            "1",
            "--warmup",
            "0",
            "--threads",
            "1",
            "--json",
            str(out),
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    card = json.loads(out.read_text())
    assert card["dtype"] == "bf16" and card["size"] == [32, 32] and card["config"] == str(cfg_path)
    assert "bf16 autocast" in printed and "GFLOP/s" in printed
    assert cli_main(["bench", "model", "--config", str(cfg_path), "--batch", "0"]) == 2
    assert "--batch" in capsys.readouterr().err
