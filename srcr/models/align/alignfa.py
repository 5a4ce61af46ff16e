"""Aligned Feature Aggregation (AlignFA) of AlignSeg (Huang et al., "AlignSeg: Feature-Aligned
Segmentation Networks", TPAMI 2021).

We use the author's corrected warp: the originally released code swapped the x/y normalisation of
the offsets and mixed align_corners conventions (an align_corners=True grid sampled with the
align_corners=False default). Here offsets are in pixels of the fine grid, divided by
((W-1)/2, (H-1)/2), and sampled with align_corners=True throughout, so a zero offset is exactly an
align_corners=True bilinear resize.

Each offset head is AlignSeg's ``delta_gen``: Conv1x1 (no bias), ``InPlaceABNSync(C)``, Conv3x3 (no
bias, zero-init). InPlaceABN's default activation is leaky ReLU with slope 0.01 (not ReLU), so
``act="leaky_relu"`` is the default here; ``act="relu"`` gives the earlier Conv-BN-ReLU heads.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ...errors import UserError
from ..layers import build_act, build_norm, resize
from ..registry import register_align
from .grid import in_fp32, pixel_norm, warp

_NORMS = ("bn", "gn", "ln", "none")
_ACTS = ("leaky_relu", "relu")


def _offset_head(channels: int, norm: str, act: str) -> nn.Sequential:
    head = nn.Sequential(
        nn.Conv2d(2 * channels, channels, 1, bias=False),
        build_norm(norm, channels),
        build_act(act),  # with norm "bn": AlignSeg's InPlaceABNSync (BN + leaky ReLU 0.01)
        nn.Conv2d(channels, 2, 3, padding=1, bias=False),
    )
    nn.init.zeros_(head[-1].weight)  # starts as plain bilinear upsampling, as AlignSeg
    return head


def _offsets(head: nn.Module, g: torch.Tensor) -> torch.Tensor:
    """The head's offsets, its last conv in fp32 (srcr.models.align.grid.in_fp32)."""
    if isinstance(head, nn.Sequential):
        return in_fp32(head[-1], head[:-1](g))
    return in_fp32(head, g)


@register_align("alignfa")
class AlignFA(nn.Module):
    """h = resize(high); two offset heads over cat[low, h], each Conv1x1(2C->C, no bias)-norm-act-
    Conv3x3(C->2, no bias, zero-init), act = leaky ReLU 0.01 as AlignSeg's in-place ABN (``act="relu"``
    for plain ReLU); h is warped by the first, ``low`` by the second (bilinear,
    align_corners=True, zero padding, as AlignSeg); output ``warped_h + warped_low``.

    ``last_offsets = {"high": (B,2,H,W), "low": (B,2,H,W)}`` in fine-grid pixels (x, y).
    """

    # The last conv of each head, whose output is the offset (train.optimizer.offset_lr_mult).
    offset_layers: tuple[str, ...] = ("offset_high.3", "offset_low.3")

    def __init__(self, channels: int, norm: str = "bn", act: str = "leaky_relu"):
        super().__init__()
        if norm not in _NORMS:
            raise UserError(f"alignfa: norm must be one of {', '.join(_NORMS)}; got {norm!r}")
        if act not in _ACTS:
            raise UserError(f"alignfa: act must be one of {', '.join(_ACTS)}; got {act!r}")
        self.channels = channels
        self.offset_high = _offset_head(channels, norm, act)
        self.offset_low = _offset_head(channels, norm, act)
        self.last_offsets: dict[str, torch.Tensor] | None = None

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        height, width = low.shape[-2:]
        h = resize(high, (height, width), mode="bilinear", align_corners=True)
        g = torch.cat([low, h], dim=1)
        d_high = _offsets(self.offset_high, g)
        d_low = _offsets(self.offset_low, g)
        norm = pixel_norm(height, width)
        out = warp(h, d_high, norm, padding_mode="zeros") + warp(
            low, d_low, norm, padding_mode="zeros"
        )
        # copies, not views: a consumer editing them in place must not touch tensors autograd saved
        self.last_offsets = {"high": d_high.detach().clone(), "low": d_low.detach().clone()}
        return out
