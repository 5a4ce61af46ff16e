"""`srcr bench predict`: `srcr predict`'s images/s beside `srcr evaluate`'s time per image.

For each config the bench writes N random images of --size (PNG) with blocky labels as a folder
dataset, saves the config's model with its initial weights as a checkpoint (the time does not
depend on the weights), then runs the two commands' own code on them: `srcr predict` (decode, the
config's eval inference, three PNGs written; model loading excluded) and `srcr evaluate` (the same
inference plus every metric; its metrics.json ``seconds``, model loading and file writing
excluded). Predict runs first, so with one image its figure includes the one-off costs of the
first forward (pass --images 2 or more to amortise them). Beside the wall-clock figures, CPU
seconds of the process (all threads; evaluate's include its checkpoint loading and file writing):
on a shared machine they show what the work costs when wall time mostly measures waiting. Figures
are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from ..errors import UserError

DEFAULT_CONFIGS = ("config/default.yaml", "config/cityscapes_mscan_s.yaml")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        dest="configs",
        action="append",
        default=[],
        help=f"run config (repeatable; default: {' and '.join(DEFAULT_CONFIGS)})",
    )
    parser.add_argument("--size", default="1024x2048", help="image HxW (default 1024x2048)")
    parser.add_argument("--images", type=int, default=1, help="images per config (default 1)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config entry of every config (repeatable)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")


def run(args: argparse.Namespace) -> int:
    from ..engine.distributed import pick_device
    from ..flops import parse_size
    from ..utils.threads import set_threads

    if args.images < 1:
        raise UserError(f"--images must be >= 1, got {args.images}")
    size = parse_size(args.size)
    threads = set_threads(args.threads)
    device = pick_device(args.device)
    configs = args.configs or list(DEFAULT_CONFIGS)
    results = []
    with tempfile.TemporaryDirectory(prefix="srcr-bench-predict-") as tmp:
        for i, path in enumerate(configs):
            r = bench_config(path, args.overrides, size, args.images, device, Path(tmp) / str(i))
            print(
                f"  {path}: predict {r['predict_images_per_s']:.3f} img/s, evaluate "
                f"{r['evaluate_s_per_image']:.2f} s/img",
                file=sys.stderr,
            )
            results.append(r)
    print(f"device {device} ({threads} threads), {size[0]}x{size[1]} images")
    print(format_table(results))
    if args.json:
        from ..utils.io import write_json

        write_json(
            args.json,
            {"device": str(device), "threads": threads, "size": list(size), "configs": results},
        )
    return 0


def bench_config(
    path: str, overrides: list[str], size: tuple[int, int], n: int, device, tmp: Path
) -> dict:
    """Time predict and evaluate of one config on ``n`` images of ``size`` under ``tmp``."""
    from ..config import load_config
    from ..evaluate import evaluate
    from ..predict import Input, Predictor, predict_all

    num_classes = int(load_config(path, overrides)["model"]["num_classes"])
    root = _write_dataset(tmp / "data", size, n, num_classes)
    cfg = load_config(
        path,
        list(overrides)
        + [
            "data.dataset=folder",
            f"data.root={root}",
            "model.pretrained=null",
            "eval.split=val",
            "eval.num_vis=0",
            "eval.offset_images=0",
        ],
    )
    ckpt = _save_checkpoint(cfg, tmp / "run" / "checkpoints" / "final.pth")
    predictor = Predictor.load(cfg, ckpt, device)
    images = sorted((root / "images" / "val").glob("*.png"))
    t0, c0 = time.perf_counter(), time.process_time()
    predict_all(
        predictor, [Input(p, Path(p.stem)) for p in images], tmp / "pred", [], progress=False
    )
    predict_s, predict_cpu = time.perf_counter() - t0, time.process_time() - c0
    c0 = time.process_time()
    record = evaluate(cfg, ckpt, tmp / "eval", device=str(device), progress=False)
    evaluate_cpu = time.process_time() - c0
    m = cfg["model"]
    return {
        "config": path,
        "model": f"{m['backbone']} + {m['align']} + {m['context']} (fpn {m['fpn_dim']})",
        "eval": _eval_desc(cfg["eval"]),
        "images": n,
        "predict_images_per_s": n / predict_s,
        "predict_s_per_image": predict_s / n,
        "evaluate_s_per_image": record["seconds"] / n,
        "predict_cpu_s_per_image": predict_cpu / n,
        "evaluate_cpu_s_per_image": evaluate_cpu / n,
    }


def _eval_desc(ev: dict) -> str:
    text = ev["mode"] + (
        f" {ev['crop_size'][0]}x{ev['crop_size'][1]}/{ev['stride'][0]}"
        if ev["mode"] == "slide"
        else ""
    )
    return (
        text
        + (" flip" if ev["flip"] else "")
        + (f" scales {ev['scales']}" if ev["scales"] != [1.0] else "")
    )


def _write_dataset(root: Path, size: tuple[int, int], n: int, num_classes: int) -> Path:
    """A folder dataset: n noise images with blocky labels (64 px blocks) in its val split."""
    import numpy as np
    from PIL import Image

    h, w = size
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:h, 0:w]
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        label = ((ys // 64 + xs // 64 + i) % num_classes).astype(np.uint8)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
            root / "images" / "val" / f"{i}.png"
        )
        Image.fromarray(label).save(root / "labels" / "val" / f"{i}.png")
    names = [f"class{c}" for c in range(num_classes)]
    (root / "classes.yaml").write_text("names: " + json.dumps(names) + "\n")
    return root


def _save_checkpoint(cfg: dict, path: Path) -> Path:
    import torch

    from ..models.segmentor import build_model
    from ..utils.io import torch_save

    torch.manual_seed(int(cfg["seed"]))
    model = build_model({**cfg["model"], "pretrained": None})
    torch_save({"model": model.state_dict(), "iteration": 0, "config": cfg}, path)
    return path


def format_table(results: list[dict]) -> str:
    import pandas as pd

    df = pd.DataFrame(
        [
            {
                "config": r["config"],
                "model": r["model"],
                "eval": r["eval"],
                "images": r["images"],
                "predict img/s": f"{r['predict_images_per_s']:.3f}",
                "predict s/img": f"{r['predict_s_per_image']:.2f}",
                "evaluate s/img": f"{r['evaluate_s_per_image']:.2f}",
                "predict CPU s/img": f"{r['predict_cpu_s_per_image']:.2f}",
                "evaluate CPU s/img": f"{r['evaluate_cpu_s_per_image']:.2f}",
            }
            for r in results
        ]
    )
    return df.to_string(index=False)
