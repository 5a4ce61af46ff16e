"""One way to spread independent jobs over processes: forked workers (they inherit the parent's
modules and globals, so large shared state needs no pickling), results in job order."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any


def fork_map(fn: Callable[[Any], Any], jobs: Iterable[Any], workers: int) -> list[Any]:
    """``[fn(job) for job in jobs]``, in up to ``workers`` forked processes; in this process when
    ``workers`` <= 1 or there is at most one job. ``fn`` must be a module-level function."""
    jobs = list(jobs)
    if workers <= 1 or len(jobs) < 2:
        return [fn(job) for job in jobs]
    import multiprocessing as mp

    with mp.get_context("fork").Pool(min(workers, len(jobs))) as pool:
        return pool.map(fn, jobs, chunksize=1)
