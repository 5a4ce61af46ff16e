"""Helpers of the evaluation tests: a tiny evaluation config and a checkpoint saved from it."""

from __future__ import annotations

from pathlib import Path

import torch
from train_helpers import TINY_MODEL

from srcr.config import load_config


def tiny_cfg(root, *more):
    return load_config(
        None,
        TINY_MODEL
        + [
            "model.num_classes=10",
            f"data.root={root}",
            "data.synthetic={n_train: 4, n_val: 4, size: [32, 64], seed: 0}",
            "eval.mode=whole",
            "eval.num_vis=2",
            "eval.offset_images=3",
            *more,
        ],
    )


def save_ckpt(cfg, path: Path, iteration=7, seed=0) -> Path:
    from srcr.models.segmentor import build_model

    torch.manual_seed(seed)
    model = build_model(cfg["model"])
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict(), "iteration": iteration, "config": cfg}, path)
    return path
