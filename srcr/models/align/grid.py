"""Sampling-grid helpers shared by the offset-predicting alignment modules (FAM, AlignFA, SRM).

grid_sample's grid holds (x, y) in [-1, 1]. With align_corners=True the identity grid of an output
of size (H, W) is ``linspace(-1, 1, W)`` by ``linspace(-1, 1, H)``, which samples exactly where
``F.interpolate(..., size=(H, W), mode="bilinear", align_corners=True)`` does; one fine-grid pixel
is 2 / (W - 1) grid units in x and 2 / (H - 1) in y.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def identity_grid(
    height: int, width: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """(1, H, W, 2) grid of (x, y) that reproduces align_corners=True bilinear resizing."""
    ys = torch.linspace(-1.0, 1.0, height, dtype=dtype, device=device)
    xs = torch.linspace(-1.0, 1.0, width, dtype=dtype, device=device)
    return torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).unsqueeze(0)


def in_fp32(fn, *tensors, **kwargs):
    """``fn(*tensors, **kwargs)`` on fp32 tensors with autocast off, whatever its state: for the
    convs that predict offsets. In bf16 an offset keeps 3 significant digits (steps of 0.06 px at
    10 px); those convs have a handful of output channels, so fp32 costs little. Without autocast
    it is ``fn(*tensors, **kwargs)`` on the same tensors."""
    with torch.autocast(tensors[0].device.type, enabled=False):
        return fn(*(t.float() for t in tensors), **kwargs)


def pixel_norm(height: int, width: int) -> tuple[float, float]:
    """Divisors (x, y) that turn fine-grid pixel offsets into grid units: ((W-1)/2, (H-1)/2).

    A side of one pixel has a single grid position (-1), so any divisor works there; 1 avoids 0/0.
    """
    return max(width - 1, 1) / 2.0, max(height - 1, 1) / 2.0


def warp(
    x: torch.Tensor, offset: torch.Tensor, norm: tuple[float, float], padding_mode: str = "zeros"
) -> torch.Tensor:
    """Sample ``x`` (B,C,h,w, any size) on the grid ``identity(H, W) + offset / norm``.

    ``offset`` is (B,2,H,W) with channel 0 = x, 1 = y; ``norm`` = (divisor_x, divisor_y) converts
    it to grid units. Bilinear, align_corners=True, so a zero offset equals an align_corners=True
    bilinear resize of ``x`` to (H, W).
    """
    height, width = offset.shape[-2:]
    # Offsets and grids in fp32 (grid_sample autocasts to fp32 anyway): sub-pixel accuracy matters.
    offset = offset.float()
    scale = offset.new_tensor([1.0 / norm[0], 1.0 / norm[1]])
    grid = (
        identity_grid(height, width, torch.float32, offset.device)
        + offset.permute(0, 2, 3, 1) * scale
    )
    out = F.grid_sample(
        x.float(), grid, mode="bilinear", padding_mode=padding_mode, align_corners=True
    )
    return out.to(x.dtype)
