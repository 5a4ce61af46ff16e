"""Helpers of the training tests (test_train*.py, test_distributed.py): a tiny model and schedule
on a tiny synthetic set, and comparisons of finished runs."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import yaml

from srcr.config import load_config
from srcr.engine.train_log import read_log

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable

TINY_MODEL = [
    "model.backbone=mscan_t",
    "model.backbone_options={embed_dims: [8, 16, 16, 16], depths: [1, 1, 1, 1], drop_path_rate: 0.0}",
    "model.fpn_dim=8",
    "model.embed_dim=8",
]


def tiny_overrides(root: Path, **extra) -> list[str]:
    over = TINY_MODEL + [
        "model.num_classes=10",
        f"data.root={root}",
        "data.num_workers=0",
        "data.synthetic={n_train: 8, n_val: 4, size: [32, 64], seed: 0}",
        "data.train_pipeline={scale: [32, 64], ratio_range: [0.75, 1.25], crop_size: [32, 32]}",
        "train.iterations=6",
        "train.batch_size=4",
        "train.optimizer.lr=1e-3",
        "train.schedule.warmup_iters=2",
        "train.checkpoint_interval=2",
        "train.log_interval=1",
        "train.loss.contrastive={warmup: 2, max_samples: 64, max_views: 8}",
        "eval.mode=whole",
    ]
    return over + [f"{k}={v}" for k, v in extra.items()]


def tiny_cfg(root: Path, *more: str) -> dict:
    return load_config(None, tiny_overrides(root) + list(more))


def write_cfg(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def final_state(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "final.pth", map_location="cpu", weights_only=True)[
        "model"
    ]


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def log_values(run: Path) -> list[tuple]:
    # everything except the wall-clock throughput
    return [
        tuple((k, v) for k, v in r.items() if k != "images_per_s")
        for r in read_log(run / "log.jsonl")
    ]
