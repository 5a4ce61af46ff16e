"""Run the Snakemake workflow of this repository in a scratch copy (so tests never touch the
checkout's results/ or data/), and read its dry-run job counts."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = ("Snakefile", "workflow", "config", "ablations", "profiles")


# A suite small enough to train for real in a test: the `loss` table (two variants), one seed.
TINY_SETS = [
    "data.synthetic={n_train: 8, n_val: 4, size: [32, 64], seed: 0}",
    "data.train_pipeline.scale=[32, 64]",
    "data.train_pipeline.crop_size=[32, 32]",
    "train.iterations=120",
    "train.checkpoint_interval=10",
    "train.log_interval=10",
    "train.schedule.warmup_iters=5",
    "train.loss.contrastive.warmup=10",
    "eval.num_vis=1",
    "eval.offset_images=1",
]
TINY_RESOURCES = {"threads": 1, "mem_mb": 1000, "runtime": 5, "gpu": 0}


def tiny_suite(path: Path, name: str, sets: list[str] = (), **over) -> Path:
    """Write the tiny suite config (TINY_SETS, then ``sets``; other keys from ``over``) to ``path``."""
    cfg = {
        "name": name,
        "base_config": "config/default.yaml",
        "grid": "ablations/grid.yaml",
        "tables": ["loss"],
        "seeds": [0],
        "data_root": "data/tiny",
        "set": TINY_SETS + list(sets),
        "resources": {"train": TINY_RESOURCES, "evaluate": TINY_RESOURCES, "flops": TINY_RESOURCES},
    }
    path.write_text(yaml.safe_dump({**cfg, **over}))
    return path


def snakemake_cmd() -> list[str]:
    return [sys.executable, "-m", "snakemake"]


def workflow_copy(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, dirs_exist_ok=True)
        elif src.exists():
            shutil.copy2(src, dest / name)
    return dest


def env() -> dict:
    # the scratch copy imports srcr from this checkout, whatever is installed
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def run_snakemake(workdir: Path, *args: str, timeout: float = 600, check: bool = True):
    res = subprocess.run(
        snakemake_cmd() + list(args),
        cwd=workdir,
        env=env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and res.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
        )
    return res


_STATS_ROW = re.compile(r"^(\w+)\s+(\d+)$")


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a snakemake (dry) run, as {rule: count}, without the total."""
    counts: dict[str, int] = {}
    lines = output.splitlines()
    try:
        start = next(i for i, ln in enumerate(lines) if ln.strip() == "Job stats:")
    except StopIteration:
        return counts
    for ln in lines[start + 1 :]:
        m = _STATS_ROW.match(ln.strip())
        if m:
            if m.group(1) == "total":
                break
            counts[m.group(1)] = int(m.group(2))
        elif counts and not ln.strip():
            break
    return counts
