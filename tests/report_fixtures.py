"""A small fabricated results tree for the `srcr report` tests: genuine per_image.npz files from
SegEvaluator on constructed labels and predictions, with planted differences between variants."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

from srcr.evaluate import _json_safe
from srcr.metrics import SegEvaluator

SIZE = 32
N_IMAGES = 16
CLASSES = ["a", "b", "c"]

# variant -> (align, share of pixels wrong in each prediction)
VARIANTS = {
    "base": ("bilinear", 0.30),
    "better": ("bilinear", 0.10),
    "same": ("bilinear", None),
    "offs": ("srm", 0.20),
}
GRID = {
    "variants": {
        v: {"description": f"variant {v}", "set": {"model.align": a}}
        for v, (a, _) in VARIANTS.items()
    },
    "tables": {
        "main": {"title": "Main table", "baseline": "base", "variants": ["base", "better", "same"]},
        "align": {"title": "Alignment", "baseline": "base", "variants": ["base", "offs"]},
    },
}


def labels(n: int = N_IMAGES) -> list[np.ndarray]:
    """Images of three vertical stripes with image-dependent boundaries (the same for every run)."""
    rng = np.random.default_rng(123)
    out = []
    for _ in range(n):
        a, b = sorted(rng.choice(np.arange(6, SIZE - 6), 2, replace=False))
        lab = np.zeros((SIZE, SIZE), np.uint8)
        lab[:, a:] = 1
        lab[:, b:] = 2
        out.append(lab)
    return out


def predictions(labs, wrong: float, rng) -> list[np.ndarray]:
    """Labels with a ``wrong`` share of pixels (chosen at random) set to another class."""
    preds = []
    for lab in labs:
        p = lab.copy().astype(np.int64)
        flip = rng.random(lab.shape) < wrong
        p[flip] = (p[flip] + 1) % len(CLASSES)
        preds.append(p)
    return preds


def write_run(run_dir: Path, variant: str, seed: int, labs, preds, align: str) -> None:
    ev = SegEvaluator(len(CLASSES), class_names=CLASSES)
    for i, (p, l) in enumerate(zip(preds, labs)):
        ev.update(p, l, names=[f"{i:05d}"])
    eval_dir = run_dir / "eval"
    eval_dir.mkdir(parents=True, exist_ok=True)
    ev.save_per_image(eval_dir / "per_image.npz")
    cfg = {
        "seed": seed,
        "model": {"align": align, "context": "none", "backbone": "tiny"},
        "train": {"iterations": 10, "batch_size": 2, "loss": {"contrastive": {"weight": 0.1}}},
        "data": {"dataset": "synthetic"},
    }
    record = {
        "metrics": ev.compute(),
        "config": cfg,
        "device": "cpu",
        "code_version": {"srcr": "0.1.0", "git": "abc"},
        "dataset": {
            "name": "synthetic",
            "split": "val",
            "num_images": len(labs),
            "classes": CLASSES,
        },
    }
    (eval_dir / "metrics.json").write_text(json.dumps(_json_safe(record)))
    with open(run_dir / "log.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in log_records(variant, seed))
    if seed == 1:
        (run_dir / "summary.json").write_text(
            json.dumps(
                {
                    "iterations": 10,
                    "train_time_s": 1.0,
                    "params": 100,
                    "srcr_version": "0.1.0",
                    "machine": {
                        "hostname": "testhost",
                        "platform": "linux",
                        "cpu": "TestCPU",
                        "device": "cpu",
                        "gpu": None,
                        "torch": "2.x",
                        "threads": 1,
                    },
                }
            )
        )
    if align == "srm":
        write_offsets(eval_dir / "offsets.npz", labs[:2], preds[:2])


def log_records(variant: str, seed: int, iterations: int = 10, interval: int = 2) -> list[dict]:
    """A training log as srcr train writes it: decaying loss terms, a warm-up-then-poly lr."""
    k, out = list(VARIANTS).index(variant), []
    for it in range(interval, iterations + 1, interval):
        ce, aux = 2.0 * np.exp(-it / 4) + 0.1 * k + 0.01 * seed, 0.3 * np.exp(-it / 5)
        contrast = 0.0 if it < 6 else 0.05 * (1 + seed)
        out.append(
            {
                "iteration": it,
                "lr": 1e-3 * min(1.0, it / 4) * (1 - it / (iterations + 1)),
                "loss": ce + 0.4 * aux + 0.1 * contrast,
                "ce": ce,
                "aux": aux,
                "contrast": contrast,
                "images_per_s": 10.0,
            }
        )
    return out


def write_offsets(path: Path, labs, preds) -> None:
    rng = np.random.default_rng(7)
    arrays = {
        "image_ids": np.array([f"{i:05d}.png" for i in range(len(labs))]),
        "label": np.stack(labs).astype(np.uint8),
        "pred": np.stack(preds).astype(np.uint8),
        "image": np.stack([np.repeat(l[..., None] * 100, 3, axis=2) for l in labs]).astype(
            np.uint8
        ),
    }
    for step, stride in (("s16", 16), ("s8", 8), ("s4", 4)):
        h = SIZE // stride
        arrays[f"{step}_initial"] = rng.normal(0, 0.5, (len(labs), 2, h, h)).astype(np.float32)
        arrays[f"{step}_refined"] = rng.normal(0, 0.5, (len(labs), 2, h, h)).astype(np.float32)
        w = rng.random((len(labs), 9, h, h)).astype(np.float32)
        arrays[f"{step}_weights"] = w / w.sum(1, keepdims=True)
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)


def make_tree(
    root: Path, seeds=(0, 1), name: str = "synthetic", variants=None
) -> tuple[Path, Path]:
    """results/{name} with every variant x seed, and the grid file; returns (results dir, grid path)."""
    results = root / "results" / name
    labs = labels()
    for v in variants or VARIANTS:
        align, wrong = VARIANTS[v]
        for s in seeds:
            rng = np.random.default_rng([s, 1 + list(VARIANTS).index(v)])
            if wrong is None:  # "same": the baseline's predictions, exactly
                preds = predictions(labs, VARIANTS["base"][1], np.random.default_rng([s, 1]))
            else:
                preds = predictions(labs, wrong, rng)
            write_run(results / v / f"seed{s}", v, s, labs, preds, align)
        flops = results / "flops" / f"{v}.json"
        flops.parent.mkdir(parents=True, exist_ok=True)
        flops.write_text(
            json.dumps({"gflops": 0.1 + 0.01 * list(VARIANTS).index(v), "params": 1000})
        )
    grid = root / "grid.yaml"
    grid.write_text(yaml.safe_dump(GRID))
    return results, grid
