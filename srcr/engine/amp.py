"""bf16 autocast as ``train.amp`` asks, on any device: the one place training (srcr.train), its
benchmarks (srcr.bench) and the CPU rehearsal of the CUDA path (tests/test_amp.py) open it.

``train.amp``: ``true`` = bf16 autocast on CUDA, fp32 elsewhere (CPU results stay those of fp32);
``false`` = fp32 everywhere; ``"always"`` = bf16 autocast on every device, so the CPU runs the very
code the GPU runs under mixed precision (slow on CPUs without bf16 units; for tests and rehearsals).
Whatever the autocast state, offsets, sampling grids, attention energies and softmaxes and the loss
are computed in fp32 (the modules cast them); the weights and the optimiser stay fp32.
"""

from __future__ import annotations

import contextlib

import torch

AMP_DTYPE = torch.bfloat16
AMP_VALUES = (True, False, "always")


def amp_enabled(amp, device: torch.device) -> bool:
    """Whether ``train.amp`` = ``amp`` runs bf16 autocast on ``device``."""
    if amp not in AMP_VALUES or isinstance(amp, int) and not isinstance(amp, bool):
        raise ValueError(f"train.amp: expected true, false or 'always', got {amp!r}")
    return amp == "always" or (amp is True and device.type == "cuda")


def autocast(amp, device: torch.device):
    """The autocast context of ``train.amp`` = ``amp`` on ``device`` (a null context when off)."""
    if not amp_enabled(amp, device):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=AMP_DTYPE)


__all__ = ["AMP_DTYPE", "AMP_VALUES", "amp_enabled", "autocast"]
