"""Recurrent criss-cross attention module (CCNet, Huang et al., ICCV 2019), pure PyTorch."""

from __future__ import annotations

import torch
import torch.nn as nn

from ..layers import ConvNormAct
from ..registry import register_context
from ._common import NORMS, check_choice, check_in_channels, check_int, reduced
from .attention import CrissCrossAttention


@register_context("ccam")
class CCAM(nn.Module):
    """CCNet's RCCA module on C5: Conv3x3-BN-ReLU(c5 -> c5 / reduction) -> criss-cross attention
    applied `recurrence` (2) times with shared weights (gamma = 0 at init) -> Conv3x3-BN-ReLU ->
    concatenation with C5 -> Conv3x3-BN-ReLU(c5 + c5 / reduction -> out_channels).

    "CCAM" in the paper's ablation is not confirmed to be CCNet's module; DRANet's compact channel
    attention module is the other reading, offered as context `ccam_dran`. CCNet's convs are followed
    by InPlaceABNSync, whose activation is leaky ReLU (slope 0.01); the default here is the project's
    BN + ReLU (a fidelity-table row), ``act='leaky_relu'`` computes CCNet's RCCA exactly.

    Options: reduction (4), recurrence (2), attention_reduction (8, query/key width), norm ('bn'),
    act ('relu' | 'leaky_relu', the activation after each of the three convs)."""

    def __init__(
        self,
        in_channels: list[int],
        out_channels: int,
        *,
        reduction: int = 4,
        recurrence: int = 2,
        attention_reduction: int = 8,
        norm: str = "bn",
        act: str = "relu",
    ) -> None:
        super().__init__()
        in_channels = check_in_channels("ccam", in_channels, out_channels)
        check_choice("ccam", "norm", norm, NORMS)
        check_choice("ccam", "act", act, ("relu", "leaky_relu"))
        c5 = in_channels[-1]
        inter = reduced("ccam", "reduction", c5, check_int("ccam", "reduction", reduction))
        self.recurrence = check_int("ccam", "recurrence", recurrence)
        check_int("ccam", "attention_reduction", attention_reduction)
        self.conv_in = ConvNormAct(c5, inter, 3, norm=norm, act=act)
        self.cca = CrissCrossAttention(inter, attention_reduction)
        self.conv_out = ConvNormAct(inter, inter, 3, norm=norm, act=act)
        self.bottleneck = ConvNormAct(c5 + inter, out_channels, 3, norm=norm, act=act)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = feats[-1]
        y = self.conv_in(x)
        for _ in range(self.recurrence):
            y = self.cca(y)
        y = self.conv_out(y)
        return self.bottleneck(torch.cat([x, y], dim=1))
