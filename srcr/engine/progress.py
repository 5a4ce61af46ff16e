"""Progress for a person at a terminal and for a log file that a person or a cluster reads later.

On a terminal a tqdm bar redraws in place. Redirected to a file (a Snakemake `log:`, a SLURM
output file) every redraw would become bytes in the file, so there the loop instead prints one
plain line per interval: ``train seed0: iter 120/600 (20%) | loss 1.234 ce 0.98 | lr 4.1e-03 |
31.2 img/s | ETA 0:01:02``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import IO


def is_terminal(stream: IO | None = None) -> bool:
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def progress_bar(
    total: int, desc: str, *, initial: int = 0, unit: str = "it", enabled: bool = True
):
    """A tqdm bar on stderr when it is a terminal and ``enabled``; otherwise None."""
    if not (enabled and is_terminal()):
        return None
    from tqdm import tqdm

    return tqdm(
        total=total, initial=initial, desc=desc, file=sys.stderr, dynamic_ncols=True, unit=unit
    )


def format_eta(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}"


class PlainProgress:
    """One line per call to :meth:`line`, with the rate and ETA measured since this process began
    (a resumed run's ETA is not skewed by iterations done before the restart)."""

    def __init__(self, total: int, desc: str, initial: int = 0, stream: IO | None = None):
        self.total = int(total)
        self.desc = desc
        self.start_iter = int(initial)
        self.t0 = time.perf_counter()
        self.stream = sys.stderr if stream is None else stream

    def eta(self, iteration: int) -> float | None:
        done = iteration - self.start_iter
        if done <= 0:
            return None
        return (time.perf_counter() - self.t0) / done * (self.total - iteration)

    def line(
        self,
        iteration: int,
        values: Mapping[str, float],
        lr: float | None = None,
        rate: float | None = None,
        unit: str = "img/s",
    ) -> str:
        pct = 100.0 * iteration / max(self.total, 1)
        parts = [f"{self.desc}: iter {iteration}/{self.total} ({pct:.0f}%)"]
        if values:
            parts.append(" ".join(f"{k} {v:.4g}" for k, v in values.items()))
        if lr is not None:
            parts.append(f"lr {lr:.3e}")
        if rate is not None:
            parts.append(f"{rate:.1f} {unit}")
        eta = self.eta(iteration)
        if eta is not None:
            parts.append(f"ETA {format_eta(eta)}")
        text = " | ".join(parts)
        print(text, file=self.stream, flush=True)
        return text
