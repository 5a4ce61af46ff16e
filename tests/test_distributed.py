"""DDP on CPU: two gloo processes (torchrun) train like one process with the same global batch.

The sample stream is identical (each rank takes its slice of the global batch), SyncBN (our
CPUSyncBatchNorm on gloo) normalises with the global batch statistics, and DDP averages the
gradients, so the weights agree with the single-process run up to floating-point reordering and
the per-rank normalisation of the cross-entropy mean over valid pixels."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import yaml

from srcr.config import load_config
from srcr.engine.distributed import CPUSyncBatchNorm, convert_sync_batchnorm
from srcr.engine.train_log import read_log
from srcr.train import train

REPO = Path(__file__).resolve().parents[1]


def test_convert_sync_batchnorm_keeps_parameters_and_is_plain_bn_without_a_group():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Sequential(nn.BatchNorm2d(4)))
    ref = [p for p in net.parameters()]
    x = torch.randn(3, 3, 8, 8)
    y_ref = net(x)
    conv = convert_sync_batchnorm(net, torch.device("cpu"))
    assert isinstance(conv[1], CPUSyncBatchNorm) and isinstance(conv[2][0], CPUSyncBatchNorm)
    assert all(
        a is b for a, b in zip(ref, conv.parameters())
    )  # the optimiser sees the same tensors
    # outside a process group it is exactly BatchNorm (running stats included)
    torch.manual_seed(0)
    net2 = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Sequential(nn.BatchNorm2d(4)))
    conv2 = convert_sync_batchnorm(net2, torch.device("cpu"))
    assert torch.equal(conv2(x), y_ref)
    assert torch.equal(conv2[1].running_var, net[1].running_var)


def test_two_gloo_processes_match_one_process(syn_root, tmp_path):
    cfg = load_config(
        None,
        [
            "model.backbone=mscan_t",
            "model.backbone_options={embed_dims: [8, 16, 16, 16], depths: [1, 1, 1, 1], drop_path_rate: 0.0}",
            "model.fpn_dim=8",
            "model.embed_dim=8",
            "model.num_classes=10",
            "model.dropout=0.0",
            f"data.root={syn_root}",
            "data.num_workers=0",
            "data.synthetic={n_train: 8, n_val: 4, size: [32, 64], seed: 0}",
            # no padded crops: each rank's cross-entropy is a mean over nearly the same number of pixels
            "data.train_pipeline={scale: [32, 64], ratio_range: [1.0, 1.25], crop_size: [32, 32]}",
            "train.iterations=4",
            "train.batch_size=4",
            "train.optimizer={name: sgd, lr: 0.01, momentum: 0.9}",
            "train.schedule.warmup_iters=1",
            "train.checkpoint_interval=2",
            "train.log_interval=1",
            # per-rank random sampling of the contrastive loss cannot equal the single-process one
            "train.loss.contrastive.weight=0.0",
        ],
    )
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(cfg, tmp_path / "single", progress=False)
    finally:
        torch.set_num_threads(n)

    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes=1",
        "--nproc_per_node=2",
        "-m",
        "srcr.cli",
        "train",
        "--config",
        str(cfg_path),
        "--out",
        str(tmp_path / "ddp"),
        "--threads",
        "1",
        "--device",
        "cpu",
        "--no-progress",
    ]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]

    single = torch.load(tmp_path / "single" / "checkpoints" / "final.pth", weights_only=True)[
        "model"
    ]
    ddp = torch.load(tmp_path / "ddp" / "checkpoints" / "final.pth", weights_only=True)["model"]
    assert single.keys() == ddp.keys()  # SyncBN keeps BatchNorm's state-dict keys
    from srcr.models.segmentor import build_model

    torch.manual_seed(cfg["seed"])
    init = build_model(cfg["model"]).state_dict()
    # SGD: the weight updates are linear in the gradients; compare the whole update vector
    keys = [k for k in single if single[k].is_floating_point() and "running" not in k]
    step_s = torch.cat([(single[k] - init[k]).flatten() for k in keys])
    step_d = torch.cat([(ddp[k] - init[k]).flatten() for k in keys])
    rel = float((step_s - step_d).norm() / step_s.norm())
    # measured: 0.8 % (each rank averages its cross-entropy over its own valid pixels); without
    # SyncBN 17 %
    assert rel < 0.03, rel
    assert float(step_s.norm()) > 0.1  # the weights did move
    # BN running statistics come from the global batch (a half batch per rank would differ by far more)
    for k in single:
        if k.endswith("running_var") or k.endswith("running_mean"):
            assert torch.allclose(single[k], ddp[k], rtol=1e-3, atol=1e-4), k
        if k.endswith("num_batches_tracked"):
            assert int(ddp[k]) == 4
    # rank 0 alone writes the log: one line per iteration, losses close to the single process's
    log_s, log_d = (
        read_log(tmp_path / "single" / "log.jsonl"),
        read_log(tmp_path / "ddp" / "log.jsonl"),
    )
    assert [r["iteration"] for r in log_d] == [1, 2, 3, 4]
    for a, b in zip(log_s, log_d):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-3)
