"""Semantic Refinement Module (SRM) of "A Deep Semantic Segmentation Network with Semantic and
Contextual Refinements" (arXiv 2412.08671), reconstructed from its abstract (docs/model.md).

The paper only says that SRM learns a per-pixel transformation offset for the upsampled map,
guided by the high-resolution map and by neighbouring offsets in a 3x3 window, and resamples the
upsampled map with it. Our reconstruction:

1. g = cat[resize(Conv1x1(high -> C/2)), Conv1x1(low -> C/2)]
2. initial offset d0 = Conv3x3(C -> 2)(g), fine-grid pixels (x, y), zero-initialised
3. neighbour weights w = softmax (or sigmoid) over the k*k channels of Conv3x3(C -> k*k)(g)
4. refined offset d(p) = sum_q w_q(p) d0(p + q) over the k x k window, replicate padding
5. out = low + grid_sample(high, identity + d / ((W-1)/2, (H-1)/2), bilinear,
   align_corners=True, padding_mode="border")

An untrained SRM is therefore exactly ``low + resize(high, align_corners=True)``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...errors import UserError
from ..layers import resize
from ..registry import register_align
from .grid import in_fp32, pixel_norm, warp

WEIGHT_NORMS = ("softmax", "sigmoid")


def neighbour_refine(d0: torch.Tensor, weights: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """d(p) = sum_q weights[:, q](p) * d0(p + q), q over the k x k window in row-major order
    (the order of F.unfold), offsets outside the map taken from the nearest inside pixel.

    k*k shifted slices of one replicate-padded map: no k*k-times larger unfold tensor.
    """
    if kernel_size == 1:
        return d0 * weights
    r = kernel_size // 2
    height, width = d0.shape[-2:]
    padded = F.pad(d0, (r, r, r, r), mode="replicate")
    out = None
    for dy in range(kernel_size):
        for dx in range(kernel_size):
            q = dy * kernel_size + dx
            term = weights[:, q : q + 1] * padded[:, :, dy : dy + height, dx : dx + width]
            out = term if out is None else out + term
    return out


@register_align("srm")
class SRM(nn.Module):
    """Semantic Refinement Module (reconstruction; see the module docstring).

    Options: ``kernel_size`` (odd, default 3; 1 switches the neighbour refinement off, d = d0) and
    ``weight_norm`` ('softmax', default: the weights of a window sum to 1, so a constant offset
    field is kept; 'sigmoid': independent gates in (0, 1), not normalised).

    ``last_offsets = {"initial": d0 (B,2,H,W), "weights": w (B,k*k,H,W), "refined": d (B,2,H,W)}``,
    detached, fine-grid pixels (x, y); for k = 1 the weights are ones.
    """

    # The layer whose output is the offset (train.optimizer.offset_lr_mult scales its lr). The
    # neighbour weights only mix offsets d0 already holds, as Deformable DETR's attention
    # weights, which its lr_linear_proj_mult leaves at the full lr.
    offset_layers: tuple[str, ...] = ("offset",)

    def __init__(self, channels: int, kernel_size: int = 3, weight_norm: str = "softmax"):
        super().__init__()
        if (
            isinstance(kernel_size, bool)
            or not isinstance(kernel_size, int)
            or kernel_size < 1
            or kernel_size % 2 == 0
        ):
            raise UserError(f"srm: kernel_size must be a positive odd integer; got {kernel_size!r}")
        if weight_norm not in WEIGHT_NORMS:
            raise UserError(
                f"srm: weight_norm must be one of {', '.join(WEIGHT_NORMS)}; got {weight_norm!r}"
            )
        mid = max(channels // 2, 1)
        self.channels = channels
        self.kernel_size = kernel_size
        self.weight_norm = weight_norm
        self.reduce_high = nn.Conv2d(channels, mid, 1, bias=False)
        self.reduce_low = nn.Conv2d(channels, mid, 1, bias=False)
        self.offset = nn.Conv2d(2 * mid, 2, 3, padding=1)
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)
        self.weight = (
            nn.Conv2d(2 * mid, kernel_size * kernel_size, 3, padding=1) if kernel_size > 1 else None
        )
        self.last_offsets: dict[str, torch.Tensor] | None = None

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        height, width = low.shape[-2:]
        # Reduce before resizing: the 1x1 conv costs 4x less on the coarse map and commutes with
        # the (linear) bilinear resize.
        h = resize(self.reduce_high(high), (height, width), mode="bilinear", align_corners=True)
        g = torch.cat([h, self.reduce_low(low)], dim=1)
        if self.weight is None:
            d0 = in_fp32(self.offset, g)
            w = d0.new_ones(d0.shape[0], 1, height, width)
            d = d0
        else:
            # One 3x3 conv with 2 + k*k outputs instead of two: on CPU a conv with a handful of
            # output channels costs about the same as one with 11 (it is bound by reading g).
            # fp32 under mixed precision: the offsets and the softmax over the window
            both = in_fp32(
                F.conv2d,
                g,
                torch.cat([self.offset.weight, self.weight.weight]),
                torch.cat([self.offset.bias, self.weight.bias]),
                padding=1,
            )
            d0, logits = both[:, :2], both[:, 2:]
            w = logits.softmax(dim=1) if self.weight_norm == "softmax" else logits.sigmoid()
            d = neighbour_refine(d0, w, self.kernel_size)
        out = low + warp(high, d, pixel_norm(height, width), padding_mode="border")
        # Copies, not views: a consumer editing them in place must not touch tensors autograd saved.
        self.last_offsets = {
            "initial": d0.detach().clone(),
            "weights": w.detach().clone(),
            "refined": d.detach().clone(),
        }
        return out
