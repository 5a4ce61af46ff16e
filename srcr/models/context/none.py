"""The no-context baseline: C5 projected to the decoder width."""

from __future__ import annotations

import torch
import torch.nn as nn

from ..layers import ConvNormAct
from ..registry import register_context
from ._common import NORMS, check_choice, check_in_channels


@register_context("none")
class NoContext(nn.Module):
    """Conv1x1-BN-ReLU(c5 -> out_channels) on C5; no context aggregation (the ablations' floor).

    Options: norm ('bn')."""

    def __init__(self, in_channels: list[int], out_channels: int, *, norm: str = "bn") -> None:
        super().__init__()
        in_channels = check_in_channels("none", in_channels, out_channels)
        check_choice("none", "norm", norm, NORMS)
        self.proj = ConvNormAct(in_channels[-1], out_channels, 1, norm=norm)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return self.proj(feats[-1])
