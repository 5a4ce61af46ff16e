"""Torch's thread count follows the job's allotted threads, so parallel jobs don't oversubscribe cores."""

from __future__ import annotations

import os

from ..errors import UserError

_ENV_VARS = ("SRCR_THREADS", "SLURM_CPUS_PER_TASK", "OMP_NUM_THREADS")


def resolve_threads(requested: int | None = None) -> int | None:
    """The thread count to use: ``requested`` if given, else the first of SRCR_THREADS,
    SLURM_CPUS_PER_TASK, OMP_NUM_THREADS that is set (a value below 1 is refused, as --threads 0
    is); None leaves torch's default."""
    if requested is not None:
        if requested < 1:
            raise UserError(f"--threads must be >= 1, got {requested}")
        return requested
    for var in _ENV_VARS:
        value = os.environ.get(var)
        if value:
            try:
                n = int(value)
            except ValueError:
                raise UserError(
                    f"environment variable {var}={value!r} is not an integer thread count"
                ) from None
            if n < 1:  # as --threads 0: the thread count changes results, so never guess one
                raise UserError(
                    f"environment variable {var}={value!r}: expected a thread count "
                    f">= 1 (unset it, or give --threads N)"
                )
            return n
    return None


def set_threads(requested: int | None = None) -> int:
    """Apply :func:`resolve_threads` to torch (intra-op and, where still possible, inter-op) and OpenCV."""
    import torch

    n = resolve_threads(requested)
    if n is not None:
        torch.set_num_threads(n)
        try:  # OpenCV (transforms, metrics) otherwise uses every core of the node
            import cv2

            cv2.setNumThreads(n)
        except ImportError:
            pass
        try:
            torch.set_num_interop_threads(max(1, min(n, 4)))
        except RuntimeError:
            pass  # inter-op pool already started; intra-op is what matters
    return torch.get_num_threads()
