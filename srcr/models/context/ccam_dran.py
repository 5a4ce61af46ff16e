"""Compact Channel Attention Module (DRANet, Fu et al., "Scene Segmentation With Dual Relation-Aware
Attention Network", IEEE TNNLS 2021): the other reading of the paper's "CCAM"."""

from __future__ import annotations

import torch
import torch.nn as nn

from ..layers import ConvNormAct
from ..registry import register_context
from ._common import NORMS, check_choice, check_in_channels, check_int, reduced
from .attention import fp32_energy, max_minus_softmax


class CompactChannelAttention(nn.Module):
    """DRANet's CCAM: an encoder Conv1x1-BN-ReLU(C -> K = C / compact) gathers K "centres" Y;
    E = X Y^T (B x C x K), A = softmax(rowmax(E) - E) over the K centres (DANet's form, as the
    authors wrote it), out = x + gamma * A Y, gamma zero at init. Channel attention at cost C*K*N
    instead of DANet's C*C*N."""

    def __init__(self, channels: int, compact: int = 16, norm: str = "bn") -> None:
        super().__init__()
        centres = max(channels // compact, 1)
        self.encoder = ConvNormAct(channels, centres, 1, norm=norm)
        self.gamma = nn.Parameter(torch.zeros(1))

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        flat = x.flatten(2)  # B, C, N
        centres = self.encoder(x).flatten(2)  # B, K, N
        energy = fp32_energy(flat, centres.transpose(1, 2))  # B, C, K
        att = max_minus_softmax(energy)
        out = torch.matmul(att.to(centres.dtype), centres)  # B, C, N
        return self.gamma * out.reshape(b, c, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.attend(x)


@register_context("ccam_dran")
class CCAMDran(nn.Module):
    """DRANet's CCAM branch on C5: Conv3x3-BN-ReLU(c5 -> c5 / reduction) -> compact channel
    attention (K = width / 16 centres) -> Conv3x3-BN-ReLU(-> out_channels). DRANet's head also has
    a compact position branch (CPAM) and a fusion conv; only the channel branch is taken, its
    closing 3x3 conv producing out_channels.

    Options: reduction (4), compact (16), norm ('bn')."""

    def __init__(
        self,
        in_channels: list[int],
        out_channels: int,
        *,
        reduction: int = 4,
        compact: int = 16,
        norm: str = "bn",
    ) -> None:
        super().__init__()
        in_channels = check_in_channels("ccam_dran", in_channels, out_channels)
        check_choice("ccam_dran", "norm", norm, NORMS)
        c5 = in_channels[-1]
        inter = reduced(
            "ccam_dran", "reduction", c5, check_int("ccam_dran", "reduction", reduction)
        )
        reduced("ccam_dran", "compact", inter, check_int("ccam_dran", "compact", compact))
        self.conv_in = ConvNormAct(c5, inter, 3, norm=norm)
        self.ccam = CompactChannelAttention(inter, compact, norm=norm)
        self.conv_out = ConvNormAct(inter, out_channels, 3, norm=norm)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return self.conv_out(self.ccam(self.conv_in(feats[-1])))
