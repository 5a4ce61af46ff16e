"""The synthetic dataset on disk, srcr's embedded default: writing it (``generate_dataset``,
``ensure_synthetic``), checking it, and `srcr synth`. The pixels of each image come from
srcr.data.synthetic_scene (what the scenes hold and why: that module and docs/synthetic.md).

PNGs are written with fixed parameters, so the same seed gives byte-identical files (with the same
NumPy and Pillow versions, recorded in meta.json) whatever the worker count.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import UserError
from ..utils.io import write_json
from .synthetic_scene import (  # noqa: F401  (the class ids are re-exported for readers and tests)
    BOAT, BUILDING, CAR, CLASSES, GRASS, IDENTITY_TEXTURE, IGNORE_INDEX, LANE, NUM_CLASSES, POLE,
    ROAD, SHADOW_OPACITY, SKY, SPLIT_IDS, WATER, WINDOW, generate_sample, render_shadow,
    render_vehicle)

# Bump whenever the pixels written for a given (seed, split, index, size) change; ensure_synthetic()
# then refuses an old dataset instead of silently mixing results from two different generators.
GENERATOR_VERSION = 3
FORMAT = "srcr-synthetic"
MIN_SIZE = 32

# Visualisation colours only; the rendered appearance is drawn per image (synthetic_scene).
PALETTE = [
    [70, 130, 180],   # sky
    [70, 70, 70],     # building
    [128, 64, 128],   # road
    [0, 170, 200],    # water
    [107, 142, 35],   # grass
    [250, 170, 30],   # window
    [255, 255, 255],  # lane
    [153, 153, 153],  # pole
    [0, 0, 142],      # car
    [220, 20, 60],    # boat
]

DESCRIPTIONS = {
    "sky": "region above a tilted, wavy horizon; vertical gradient and clouds (overlaps water in colour)",
    "building": "facades rising from the horizon, flat or sloped roofs, mortar-line texture, any hue",
    "road": "context region: ground band (or part of one); same colour distribution and plain texture as "
            "water, told apart only by patches of asphalt grain and by the lane markings along it; cars "
            "sit on it",
    "water": "context region: ground band drawn like road, told apart only by patches of ripples "
             "somewhere along it; boats sit on it",
    "grass": "ground band with streaky vegetation texture, green to dry brown",
    "window": "small object: 5-9 x 6-10 px rectangles in a grid on facades, mostly dark, some lit",
    "lane": "thin structure: markings 2-4 px thick, solid or dashed, following the road band",
    "pole": "thin structure: vertical (slightly tilted) poles 2-4 px wide from the ground into the sky, "
            "some with a 2-3 px arm",
    "car": "context class: a render_vehicle() blob with a render_shadow() contact shadow, placed "
           "inside a road region",
    "boat": "context class: the same render_vehicle() blob and shadow, placed inside a water region",
}
GROUPS = {
    "regions": ["sky", "building", "road", "water", "grass"],
    "thin": ["lane", "pole"],
    "small": ["window"],
    "context_pairs": [["car", "boat"], ["road", "water"]],
}
VOID_DESCRIPTION = ("255 = ignore: a 1 px rim around some cars and boats, and an ego-vehicle hood "
                    "at the bottom of some images")

# writing a dataset

def _png_name(i: int) -> str:
    return f"{i:05d}.png"


def _write_png(path: Path, arr: np.ndarray) -> None:
    from PIL import Image

    # fixed parameters and no metadata chunks: the bytes depend on the pixels only
    Image.fromarray(arr).save(path, format="PNG", compress_level=6, optimize=False)


def _generate_chunk(out: str, split: str, indices: list[int], seed: int, size: tuple[int, int]) -> np.ndarray:
    """Worker: write images/labels for ``indices``; return the label histogram (256 bins)."""
    counts = np.zeros(256, np.int64)
    root = Path(out)
    for i in indices:
        image, label = generate_sample(seed, split, i, size)
        _write_png(root / "images" / split / _png_name(i), image)
        _write_png(root / "labels" / split / _png_name(i), label)
        counts += np.bincount(label.ravel(), minlength=256)
    return counts


def _default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def _meta(n_train: int, n_val: int, size: tuple[int, int], seed: int, counts: dict[str, np.ndarray]) -> dict:
    import PIL

    return {
        "format": FORMAT,
        "generator_version": GENERATOR_VERSION,
        "seed": int(seed),
        "size": [int(size[0]), int(size[1])],
        "splits": {"train": int(n_train), "val": int(n_val)},
        "classes": list(CLASSES),
        "palette": [list(p) for p in PALETTE],
        "ignore_index": IGNORE_INDEX,
        "class_descriptions": dict(DESCRIPTIONS),
        "void_description": VOID_DESCRIPTION,
        "groups": GROUPS,
        "pixel_counts": {
            split: {**{name: int(c[k]) for k, name in enumerate(CLASSES)}, "void": int(c[IGNORE_INDEX])}
            for split, c in counts.items()
        },
        "generator": "srcr.data.synthetic_gen (srcr synth)",
        "numpy_version": np.__version__,
        "pillow_version": PIL.__version__,
    }


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _check_params(n_train: int, n_val: int, size: Sequence[int], seed: int) -> tuple[int, int]:
    if not (_is_int(n_train) and _is_int(n_val)) or n_train < 1 or n_val < 1:
        raise UserError(f"synthetic dataset: n_train and n_val must be integers >= 1, "
                        f"got {n_train!r} and {n_val!r}")
    if (not isinstance(size, (list, tuple)) or len(size) != 2 or not all(_is_int(v) for v in size)
            or min(size) < MIN_SIZE):
        raise UserError(f"synthetic dataset: size must be [H, W], integers >= {MIN_SIZE}, got {size!r}")
    if not _is_int(seed) or seed < 0:
        raise UserError(f"synthetic dataset: seed must be an integer >= 0, got {seed!r}")
    return int(size[0]), int(size[1])


def generate_dataset(root: str | os.PathLike, n_train: int, n_val: int, size: Sequence[int], seed: int,
                     workers: int | None = None, progress: bool = True, replace: bool = False) -> dict:
    """Write the dataset to ``root`` atomically: everything goes into a temporary sibling folder that
    is renamed onto ``root`` only once complete. ``root`` must not exist unless ``replace``."""
    size = _check_params(n_train, n_val, size, seed)
    root = Path(root)
    workers = _default_workers() if workers is None else int(workers)
    if workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    if root.exists() and not replace:
        raise UserError(f"{root} already exists; choose another folder or replace it (srcr synth --force)")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".tmp", dir=root.parent))
    try:
        for split in SPLIT_IDS:
            (tmp / "images" / split).mkdir(parents=True)
            (tmp / "labels" / split).mkdir(parents=True)
        jobs = []
        for split, n in (("train", n_train), ("val", n_val)):
            step = 16
            jobs += [(split, list(range(a, min(a + step, n)))) for a in range(0, n, step)]
        counts = {split: np.zeros(256, np.int64) for split in SPLIT_IDS}
        from tqdm import tqdm

        from ..engine.progress import is_terminal

        bar = tqdm(total=n_train + n_val, desc="synth", unit="img", file=sys.stderr,
                   disable=not (progress and is_terminal()))
        if workers == 1:
            for split, idx in jobs:
                counts[split] += _generate_chunk(str(tmp), split, idx, seed, size)
                bar.update(len(idx))
        else:
            methods = multiprocessing.get_all_start_methods()
            # fork: workers need not re-import torch (srcr/__init__); they only run numpy and PIL
            ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
            ex = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
            try:
                pending = {ex.submit(_generate_chunk, str(tmp), split, idx, seed, size): (split, idx)
                           for split, idx in jobs}
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        split, idx = pending.pop(fut)
                        counts[split] += fut.result()
                        bar.update(len(idx))
            finally:
                ex.shutdown(wait=True, cancel_futures=True)   # on error/Ctrl-C: don't finish the queue
        bar.close()
        meta = _meta(n_train, n_val, size, seed, counts)
        write_json(tmp / "meta.json", meta)
        _install(tmp, root, replace)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


def _install(tmp: Path, root: Path, replace: bool) -> None:
    if replace and root.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{root.name}.old.", dir=root.parent))
        os.rename(root, old / "d")        # never a moment with a half-written root; at worst none
        os.rename(tmp, root)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, root)              # fails if another process installed root meanwhile


def _mismatch(meta_path: Path, key: str, found: Any, expected: Any) -> UserError:
    return UserError(
        f"{meta_path}: key {key!r} is {json.dumps(found)} but {json.dumps(expected)} was requested; "
        f"this folder holds a different synthetic dataset. Delete it (or run `srcr synth --out "
        f"{meta_path.parent} --force ...`) to regenerate, or point data.root elsewhere.")


def check_synthetic(root: str | os.PathLike, n_train: int, n_val: int, size: Sequence[int], seed: int) -> dict:
    """Check that ``root`` holds exactly the requested dataset (meta.json and every file); return the meta."""
    root = Path(root)
    meta_path = root / "meta.json"
    if not meta_path.is_file():
        raise UserError(f"{root} exists but has no meta.json: not a srcr synthetic dataset "
                        f"(remove it or choose another data.root)")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{meta_path}: cannot read JSON ({e}); delete the folder to regenerate it") from None
    if not isinstance(meta, dict):
        raise UserError(f"{meta_path}: expected a JSON object, got {type(meta).__name__}")
    expected = {
        "format": FORMAT,
        "generator_version": GENERATOR_VERSION,
        "seed": int(seed),
        "size": [int(size[0]), int(size[1])],
        "splits": {"train": int(n_train), "val": int(n_val)},
    }
    for key, want in expected.items():
        if key not in meta:
            raise UserError(f"{meta_path}: missing key {key!r} (expected {json.dumps(want)})")
        if meta[key] != want:
            raise _mismatch(meta_path, key, meta[key], want)
    for split, n in expected["splits"].items():
        want = {_png_name(i) for i in range(n)}
        for kind in ("images", "labels"):
            d = root / kind / split
            if not d.is_dir():
                raise UserError(f"{d}: missing folder of the synthetic dataset (meta.json says "
                                f"{n} {split} images); delete {root} to regenerate it")
            have = {p for p in os.listdir(d) if p.endswith(".png")}
            missing, extra = sorted(want - have), sorted(have - want)
            if missing:
                raise UserError(f"{d / missing[0]}: missing ({len(missing)} of {n} {kind} absent); "
                                f"delete {root} to regenerate it")
            if extra:
                raise UserError(f"{d / extra[0]}: unexpected file ({len(extra)} extra .png files; "
                                f"meta.json says {n}); delete {root} to regenerate it")
    return meta


def ensure_synthetic(root: str | os.PathLike, n_train: int, n_val: int, size: Sequence[int], seed: int,
                     workers: int | None = None, progress: bool = True) -> Path:
    """Generate the synthetic dataset at ``root`` if it is missing; otherwise check that its
    meta.json matches the request and that its files are all there (UserError if not)."""
    root = Path(root)
    _check_params(n_train, n_val, size, seed)
    if not root.exists():
        try:
            generate_dataset(root, n_train, n_val, size, seed, workers=workers, progress=progress)
        except (OSError, UserError):
            if not root.exists():       # a genuine failure, not a concurrent process winning the race
                raise
    check_synthetic(root, n_train, n_val, size, seed)
    return root


# --------------------------------------------------------------------------------------------
# `srcr synth`

def parse_size(text: str) -> tuple[int, int]:
    """'128x256' -> (128, 256) (height x width)."""
    parts = str(text).lower().split("x")
    try:
        if len(parts) != 2:
            raise ValueError
        h, w = int(parts[0]), int(parts[1])
    except ValueError:
        raise UserError(f"--size: expected HxW such as 128x256, got {text!r}") from None
    if min(h, w) < MIN_SIZE:
        raise UserError(f"--size: height and width must be >= {MIN_SIZE}, got {text!r}")
    return h, w


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="dataset folder to write (created atomically)")
    parser.add_argument("--n-train", type=int, default=400, help="training images (default 400)")
    parser.add_argument("--n-val", type=int, default=100, help="validation images (default 100)")
    parser.add_argument("--size", default="128x256", help="HxW of every image (default 128x256)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    parser.add_argument("--workers", type=int, default=None,
                        help="generator processes (default min(2, CPUs)); the output does not depend on it")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing synthetic dataset at --out with different parameters")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    size = parse_size(args.size)
    _check_params(args.n_train, args.n_val, size, args.seed)
    out = Path(args.out)
    progress = not args.no_progress
    if out.exists():
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()                    # an empty folder is as good as none
        else:
            try:
                meta = check_synthetic(out, args.n_train, args.n_val, size, args.seed)
            except UserError:
                if not args.force:
                    raise
                if not (out / "meta.json").is_file() or _format_of(out / "meta.json") != FORMAT:
                    raise UserError(f"{out}: refusing to replace a folder that is not a srcr synthetic "
                                    f"dataset (no meta.json with format {FORMAT!r})") from None
            else:
                print(f"{out}: already holds this dataset (seed {args.seed}, {args.n_train}+{args.n_val} "
                      f"images of {size[0]}x{size[1]}); nothing to do", file=sys.stderr)
                _print_summary(meta, None)
                return 0
    t0 = time.perf_counter()
    meta = generate_dataset(out, args.n_train, args.n_val, size, args.seed, workers=args.workers,
                            progress=progress, replace=args.force)
    _print_summary(meta, time.perf_counter() - t0, out)
    return 0


def _format_of(meta_path: Path) -> Any:
    try:
        return json.loads(meta_path.read_text()).get("format")
    except (OSError, ValueError, AttributeError):
        return None


def _print_summary(meta: dict, seconds: float | None, out: Path | None = None) -> None:
    n = meta["splits"]["train"] + meta["splits"]["val"]
    if seconds is not None:
        print(f"wrote {n} images of {meta['size'][0]}x{meta['size'][1]} to {out} in {seconds:.1f} s "
              f"({1000 * seconds / n:.1f} ms/image)")
    counts = meta.get("pixel_counts", {}).get("train")
    if counts:
        total = sum(counts.values())
        print("train pixel share: " + ", ".join(f"{k} {100 * v / total:.1f}%" for k, v in counts.items()))
