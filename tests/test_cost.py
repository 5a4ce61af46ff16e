"""`srcr cost` in GPU-hours: from a measured throughput (srcr bench gpu's JSON or
--images-per-second) or a stated assumption; the batch comes from each suite's config."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from suite_helpers import REPO, suite

from srcr.cli import main
from srcr.suite.cost import _train_forward


@pytest.fixture
def smoke(tmp_path):
    path = tmp_path / "suite_smoke.yaml"
    path.write_text(yaml.safe_dump({**suite(), "tables": ["loss"]}))  # srm_crm_ce, srm_crm
    return path


def reference(tmp_path):
    """A run config whose training forward is the reference's (the smoke suite's base)."""
    from srcr.config import load_config

    cfg = load_config(REPO / "config" / "default.yaml", ["data.train_pipeline.crop_size=[64, 64]"])
    path = tmp_path / "ref.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, cfg


def test_gpu_hours_from_images_per_second(smoke, tmp_path, capsys):
    ref, cfg = reference(tmp_path)
    out = tmp_path / "cost.json"
    assert (
        main(
            [
                "cost",
                "--suite",
                str(smoke),
                "--images-per-second",
                "40",
                "--reference",
                str(ref),
                "--gpus",
                "4",
                "--json",
                str(out),
                "--threads",
                "1",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    cost = json.loads(out.read_text())
    fwd_ref, how = _train_forward(cfg["model"], [64, 64])
    assert how == "training-mode forward (all heads)"  # aux and embedding heads counted
    rate = 3 * fwd_ref * 40
    assert cost["throughput"]["train_flops_per_s"] == pytest.approx(rate)
    s = cost["suites"][0]
    for v in s["variants"]:
        assert v["counted"] == "training-mode forward (all heads)"
        assert v["batch"] == 4  # the smoke suite's own train.batch_size
        assert v["gpu_hours_per_run"] == pytest.approx(
            v["train_pflops_per_run"] * 1e15 / rate / 3600
        )
    per_seed = sum(v["gpu_hours_per_run"] for v in s["variants"])
    assert s["seeds"] == 2 and s["gpu_hours_per_seed"] == pytest.approx(per_seed)
    assert s["gpu_hours_total"] == pytest.approx(2 * per_seed)
    assert s["wall_hours_total"] == pytest.approx(2 * per_seed / 4)
    assert "measured (--images-per-second): 40 images/s per GPU" in printed
    assert "ASSUMED" not in printed


def test_batch_is_read_from_the_config(smoke, tmp_path):
    other = tmp_path / "suite_b8.yaml"
    base = suite()
    other.write_text(
        yaml.safe_dump({**base, "tables": ["loss"], "set": base["set"] + ["train.batch_size=8"]})
    )
    outs = []
    for path in (smoke, other):
        out = tmp_path / f"{path.stem}.json"
        assert main(["cost", "--suite", str(path), "--json", str(out), "--threads", "1"]) == 0
        outs.append(json.loads(out.read_text())["suites"][0])
    a, b = (o["variants"][0] for o in outs)
    assert (a["batch"], b["batch"]) == (4, 8)
    assert b["gpu_hours_per_run"] == pytest.approx(2 * a["gpu_hours_per_run"])


def test_without_a_measurement_it_states_the_assumption(smoke, tmp_path, capsys):
    out = tmp_path / "cost.json"
    assert (
        main(
            [
                "cost",
                "--suite",
                str(smoke),
                "--assumed-tflops",
                "20",
                "--json",
                str(out),
                "--threads",
                "1",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert printed.startswith("ASSUMED, not measured: 20 TFLOP/s of training per GPU")
    cost = json.loads(out.read_text())
    assert cost["throughput"]["source"] == "assumed"
    v = cost["suites"][0]["variants"][0]
    assert v["gpu_hours_per_run"] == pytest.approx(v["train_pflops_per_run"] * 1e15 / 20e12 / 3600)


def test_throughput_from_the_gpu_check_json(smoke, tmp_path, capsys):
    ref, cfg = reference(tmp_path)
    check = tmp_path / "gpu_check.json"
    report = {
        "mode": "paper scale",
        "config": str(ref),
        "machine": {"gpu": "NVIDIA H100"},
        "train": {
            "images_per_s": 30.0,
            "world_size": 1,
            "crop_size": [64, 64],
            "batch_per_process": 2,
        },
    }
    check.write_text(json.dumps(report))
    out = tmp_path / "cost.json"
    assert (
        main(
            [
                "cost",
                "--suite",
                str(smoke),
                "--throughput",
                str(check),
                "--json",
                str(out),
                "--threads",
                "1",
            ]
        )
        == 0
    )
    assert "NVIDIA H100" in capsys.readouterr().out
    fwd_ref, _ = _train_forward(cfg["model"], [64, 64])
    assert json.loads(out.read_text())["throughput"]["train_flops_per_s"] == pytest.approx(
        3 * fwd_ref * 30
    )
    # a dry run is no measurement
    check.write_text(json.dumps({**report, "mode": "tiny (dry rehearsal)"}))
    assert main(["cost", "--suite", str(smoke), "--throughput", str(check)]) == 2
    assert "not a measurement of the paper-scale model" in capsys.readouterr().err
    assert main(["cost", "--suite", str(smoke), "--gpus", "0"]) == 2


class PooledNorm(torch.nn.Module):
    """BatchNorm on a 1x1 map: training mode refuses batch 1."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 1)
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.norm = torch.nn.BatchNorm2d(4)

    def forward(self, x):
        return self.norm(self.pool(self.conv(x)))


def default_model():
    from srcr.config import load_config
    from srcr.models.segmentor import build_model

    cfg = load_config(REPO / "config" / "default.yaml")
    torch.manual_seed(0)
    return build_model({**cfg["model"], "pretrained": None})


@pytest.mark.parametrize("make", [default_model, PooledNorm], ids=["segmentor", "bn-on-1x1"])
def test_training_forward_is_counted_per_image_whatever_the_batch(make):
    # batch 1 where training-mode BatchNorm allows it, else batch 2: the same per-image count
    from srcr.bench.train import TrainForward, train_forward_flops
    from srcr.flops import count_flops

    model = make()
    fwd, how = train_forward_flops(model, (64, 64))
    assert how == "training-mode forward (all heads)"
    x2 = torch.zeros(2, 3, 64, 64)
    two = count_flops(TrainForward(model), inputs=(x2,), breakdown=[("model", "m")])["flops"]
    assert fwd == two // 2 > 0


def test_paper_model_is_counted_in_training_mode_with_its_heads():
    # drop path draws its keep mask with bernoulli_ in training mode: a documented ignored op, so
    # the count is the training forward (with the auxiliary and embedding heads), not the fallback
    from srcr.bench.train import train_forward_flops
    from srcr.config import load_config
    from srcr.flops import model_flops
    from srcr.models.segmentor import build_model

    cfg = load_config(REPO / "config" / "cityscapes_mscan_s.yaml")
    # the embedding head (and the auxiliary head where a config has one) train but are not inferred
    assert cfg["model"]["backbone_options"]["drop_path_rate"] > 0 and cfg["model"]["embed_dim"] > 0
    torch.manual_seed(0)
    fwd, how = train_forward_flops(build_model({**cfg["model"], "pretrained": None}), (64, 64))
    assert how == "training-mode forward (all heads)"
    assert fwd > model_flops(cfg["model"], (64, 64))["flops"]  # the heads the eval count drops
