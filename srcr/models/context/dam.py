"""Dual Attention Module (DANet, Fu et al., CVPR 2019)."""

from __future__ import annotations

import torch
import torch.nn as nn

from ..layers import ConvNormAct
from ..registry import register_context
from ._common import NORMS, check_choice, check_in_channels, check_int, reduced
from .attention import ChannelAttention, PositionAttention


@register_context("dam")
class DAM(nn.Module):
    """DANet's dual attention head on C5: two branches, each Conv3x3-BN-ReLU(c5 -> c5 / reduction);
    one applies position attention (query/key at C/8, no 1/sqrt(d) scaling, gamma = 0), the other
    channel attention (softmax(rowmax(E) - E), gamma = 0, as the authors wrote it); each is
    followed by a Conv3x3-BN-ReLU; the two branches are summed.

    Mapping to out_channels: the post-attention Conv3x3-BN-ReLU of each branch outputs
    out_channels directly (DANet's conv51/conv52 keep c5/4 and its classifier follows the sum; here
    the decoder follows, so the two 3x3 convs take over the width change and no extra layer is
    added).

    Options: reduction (4, the branch width c5 / reduction), attention_reduction (8, query/key
    width of the position attention), norm ('bn')."""

    def __init__(
        self,
        in_channels: list[int],
        out_channels: int,
        *,
        reduction: int = 4,
        attention_reduction: int = 8,
        norm: str = "bn",
    ) -> None:
        super().__init__()
        in_channels = check_in_channels("dam", in_channels, out_channels)
        check_choice("dam", "norm", norm, NORMS)
        c5 = in_channels[-1]
        inter = reduced("dam", "reduction", c5, check_int("dam", "reduction", reduction))
        check_int("dam", "attention_reduction", attention_reduction)
        self.pam_in = ConvNormAct(c5, inter, 3, norm=norm)
        self.pam = PositionAttention(inter, attention_reduction)
        self.pam_out = ConvNormAct(inter, out_channels, 3, norm=norm)
        self.cam_in = ConvNormAct(c5, inter, 3, norm=norm)
        self.cam = ChannelAttention()
        self.cam_out = ConvNormAct(inter, out_channels, 3, norm=norm)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = feats[-1]
        return self.pam_out(self.pam(self.pam_in(x))) + self.cam_out(self.cam(self.cam_in(x)))
