"""Flow Alignment Module (FAM) of SFNet (Li et al., "Semantic Flow for Fast and Accurate Scene
Parsing", ECCV 2020), as in the authors' ``AlignedModule``."""

from __future__ import annotations

import torch
import torch.nn as nn

from ..layers import resize
from ..registry import register_align
from .grid import in_fp32, warp


@register_align("fam")
class FAM(nn.Module):
    """1x1 convs (no bias) reduce ``low`` and ``high`` to C/2; a 3x3 conv over
    cat[resize(high'), low'] predicts a 2-channel flow; the original coarse ``high`` is warped
    straight onto the fine grid with grid = identity + flow / (W, H) (SFNet's own unit, about half
    a fine pixel), bilinear, align_corners=True, zero padding; output ``low + warped``.

    Default (non-zero) initialisation, as SFNet. ``last_offsets = {"flow": (B,2,H,W)}`` holds the
    flow converted to fine-grid pixels (x, y).
    """

    offset_layers: tuple[str, ...] = ("flow",)  # the flow conv (train.optimizer.offset_lr_mult)

    def __init__(self, channels: int):
        super().__init__()
        mid = max(channels // 2, 1)
        self.channels = channels
        self.down_low = nn.Conv2d(channels, mid, 1, bias=False)
        self.down_high = nn.Conv2d(channels, mid, 1, bias=False)
        self.flow = nn.Conv2d(2 * mid, 2, 3, padding=1, bias=False)
        self.last_offsets: dict[str, torch.Tensor] | None = None

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        height, width = low.shape[-2:]
        h = resize(self.down_high(high), (height, width), mode="bilinear", align_corners=True)
        flow = in_fp32(self.flow, torch.cat([h, self.down_low(low)], dim=1))
        warped = warp(high, flow, (float(width), float(height)), padding_mode="zeros")
        with torch.no_grad():
            # SFNet grid units -> fine pixels: flow / W grid units * (W - 1) / 2 pixels per unit.
            to_px = flow.new_tensor(
                [max(width - 1, 1) / (2.0 * width), max(height - 1, 1) / (2.0 * height)]
            ).view(1, 2, 1, 1)
            self.last_offsets = {"flow": flow.detach() * to_px}
        return low + warped
