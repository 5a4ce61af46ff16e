"""`srcr check-data`: decode every image/label pair of a dataset split and report all problems.

Runs the readers' own validation (srcr.data.base) over the whole split, so a broken download is
found before a long training job trips over it: missing folders, unpaired files, unreadable or
truncated files, image/label size mismatches and out-of-range label values. It does not stop at
the first problem. Exit status: 0 clean, 1 problems found, 2 bad arguments or missing root.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..utils.io import write_json
from . import DATASETS
from .base import SPLITS, DataProblem, SegDataset

_MAX_PRINTED = 50
_worker_ds: SegDataset | None = None


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, choices=sorted(DATASETS), help="dataset reader")
    parser.add_argument("--root", required=True, help="dataset root folder (as for data.root in the config)")
    parser.add_argument("--split", default="both", choices=[*SPLITS, "both"], help="split(s) to check (default both)")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                        help="decoding processes (default min(4, CPUs)); 0 or 1 decodes in this process")
    parser.add_argument("--class-counts", action="store_true", help="also print per-class pixel counts")
    parser.add_argument("--json", metavar="PATH", help="also write the summary and every problem to this JSON file")


def _init_worker(ds: SegDataset) -> None:
    global _worker_ds
    _worker_ds = ds


def _check_chunk(indices: list[int]):
    assert _worker_ds is not None
    return [_worker_ds.check_item(i) for i in indices]


def check_split(ds: SegDataset, workers: int = 0) -> tuple[list[DataProblem], np.ndarray]:
    """Decode every pair of ``ds``; returns (problems, per-class pixel counts + ignored count)."""
    from tqdm import tqdm

    problems: list[DataProblem] = []
    counts = np.zeros(ds.num_classes + 1, dtype=np.int64)
    n = len(ds)

    def collect(results):
        nonlocal counts
        for probs, c in results:
            problems.extend(probs)
            if c is not None:
                counts += c

    from ..engine.progress import is_terminal

    with tqdm(total=n, desc=f"check-data {ds.name} {ds.split}", unit="img", file=sys.stderr,
              dynamic_ncols=True, disable=not is_terminal()) as bar:
        if workers <= 1 or n < 2:
            for i in range(n):
                collect([ds.check_item(i)])
                bar.update(1)
        else:
            chunk = max(1, min(16, n // (workers * 4)))
            chunks = [list(range(s, min(s + chunk, n))) for s in range(0, n, chunk)]
            # fork shares the already-built dataset with the workers without pickling the file list
            ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                                     initargs=(ds,)) as ex:
                for idx, res in zip(chunks, ex.map(_check_chunk, chunks)):
                    collect(res)
                    bar.update(len(idx))
    return problems, counts


def run(args: argparse.Namespace) -> int:
    cls = DATASETS[args.dataset]
    root = Path(args.root)
    if not root.is_dir():
        raise UserError(f"dataset root {root} {'is not a directory' if root.exists() else 'does not exist'}; "
                        f"expected {cls.layout_help}")
    if args.workers < 0:
        raise UserError(f"--workers must be >= 0, got {args.workers}")
    splits = list(SPLITS) if args.split == "both" else [args.split]

    all_problems: list[tuple[str, DataProblem]] = []
    summary: dict = {"dataset": args.dataset, "root": str(root), "splits": {}}
    for split in splits:
        ds = cls(root, split, strict=False)  # pairing problems are collected, not raised
        problems = list(ds.problems)
        item_problems, counts = check_split(ds, args.workers)
        problems += item_problems
        all_problems += [(split, p) for p in problems]
        summary["splits"][split] = {
            "pairs": len(ds),
            "problems": len(problems),
            "class_pixels": {name: int(c) for name, c in zip(ds.classes, counts[:-1])},
            "ignored_pixels": int(counts[-1]),
        }
        print(f"{args.dataset} {split}: {len(ds)} image/label pairs checked, {len(problems)} problem(s)")
        if args.class_counts:
            total = max(int(counts.sum()), 1)
            width = max(len(c) for c in ds.classes)
            for name, c in zip([*ds.classes, "(ignored)"], counts):
                print(f"  {name:<{width}}  {int(c):>14d}  {100.0 * c / total:6.2f}%")

    by_kind = Counter(p.kind for _, p in all_problems)
    summary["problems_by_kind"] = dict(by_kind)
    summary["problems"] = [{"split": s, "kind": p.kind, "path": p.path, "message": str(p)} for s, p in all_problems]
    if all_problems:
        print("problems by kind: " + ", ".join(f"{k} {v}" for k, v in sorted(by_kind.items())))
        for split, p in all_problems[:_MAX_PRINTED]:
            print(f"  [{split}] {p.kind}: {p}")
        if len(all_problems) > _MAX_PRINTED:
            print(f"  ... and {len(all_problems) - _MAX_PRINTED} more"
                  + (f" (all in {args.json})" if args.json else " (use --json PATH to list them all)"))
    else:
        print("no problems found")
    if args.json:
        write_json(args.json, summary)
    return 1 if all_problems else 0
