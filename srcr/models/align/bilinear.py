"""Plain bilinear upsampling, the baseline alignment of the FPN/UPerNet decoder."""

from __future__ import annotations

import torch
import torch.nn as nn

from ..layers import resize
from ..registry import register_align


@register_align("bilinear")
class BilinearAlign(nn.Module):
    """``low + resize(high)`` (bilinear, align_corners=True): no parameters, no offsets."""

    offset_layers: tuple[str, ...] = ()

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.last_offsets = None  # never predicts offsets

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        return low + resize(high, low.shape[-2:], mode="bilinear", align_corners=True)
