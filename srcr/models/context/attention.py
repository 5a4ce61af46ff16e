"""Attention blocks shared by the context modules.

- ChannelAttention: DANet's channel attention module (CAM), Fu et al., CVPR 2019 (dam, crm).
- PositionAttention: DANet's position attention module (PAM) (dam).
- CrissCrossAttention: CCNet's criss-cross attention, Huang et al., ICCV 2019 (ccam).
- DisentangledNonLocal: Disentangled Non-Local block, Yin et al., ECCV 2020 (crm).

Every block is residual, `forward(x) = x + attend(x)`, and `attend` is exactly zero at
initialisation (a zero `gamma`, or DNL's zero-initialised output norm), so each block starts as the
identity and short schedules compare partners fairly.

Precision: the energies are computed and softmax-normalised in float32 with autocast switched off
(`fp32_energy`), because bf16 rounding of un-scaled dot products (DANet, CCNet) or of DNL's
temperature-0.05 logits moves the softmax by whole units; the value aggregation then runs in the
value's dtype. All products are `torch.matmul` with the batch dimensions on both operands, which
fvcore's matmul handle counts exactly (it undercounts when only the second operand is batched).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..layers import ConvNormAct


def at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    """float16/bfloat16 -> float32; float32 and float64 are kept (float64 for reference tests)."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def fp32_energy(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """`a @ b` in at least float32 whatever the autocast state (attention logits)."""
    if torch.is_autocast_enabled(a.device.type):
        with torch.autocast(device_type=a.device.type, enabled=False):
            return torch.matmul(at_least_fp32(a), at_least_fp32(b))
    return torch.matmul(at_least_fp32(a), at_least_fp32(b))


def softmax_weights(energy: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim with underflowing weights set to exactly zero.

    Peaked attention (DANet's unscaled channel energies, DNL's temperature 0.05) leaves many weights
    subnormal; a matmul over subnormal floats runs ~100x slower on x86 CPUs, and flush-to-zero
    (torch.set_flush_denormal) only reaches the calling thread. Zeroing values below the smallest
    normal float changes each weight by < 1.2e-38.
    """
    a = energy.softmax(dim=-1)
    return a.masked_fill(a < torch.finfo(a.dtype).tiny, 0.0)


def max_minus_softmax(energy: torch.Tensor) -> torch.Tensor:
    """softmax(rowmax(E) - E) over the last dim, DANet's (and DRANet's) channel-attention weights."""
    return softmax_weights(energy.amax(dim=-1, keepdim=True) - energy)


class ChannelAttention(nn.Module):
    """DANet channel attention: E = X X^T over channels (B x C x C), A = softmax(rowmax(E) - E),
    out = x + gamma * A X. Kept as the authors wrote it: subtracting E from its row maximum makes the
    softmax favour the *least* similar channels (softmax is shift-invariant, so A = softmax(-E)).
    No parameters other than gamma (zero at init)."""

    def __init__(self) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The B x C x C float32 attention map."""
        flat = x.flatten(2)
        return max_minus_softmax(fp32_energy(flat, flat.transpose(1, 2)))

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        flat = x.flatten(2)
        out = torch.matmul(self.attention(x).to(flat.dtype), flat)
        return self.gamma * out.reshape(b, c, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.attend(x)


class _QKVAttention(nn.Module):
    """1x1 query/key convs to C/reduction, 1x1 value conv C -> C, and a residual gamma that is zero
    at init (DANet and CCNet build their attention the same way)."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        inner = max(channels // reduction, 1)
        self.query = nn.Conv2d(channels, inner, 1)
        self.key = nn.Conv2d(channels, inner, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))


class PositionAttention(_QKVAttention):
    """DANet position attention: 1x1 query/key convs to C/reduction (8), 1x1 value conv C -> C,
    energies q_i . k_j with no 1/sqrt(d) scaling (as in DANet), softmax over the positions j,
    out = x + gamma * sum_j A_ij v_j, gamma zero at init."""

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The B x N x N float32 attention map (rows: query positions, N = H*W)."""
        q = self.query(x).flatten(2).transpose(1, 2)  # B, N, C'
        k = self.key(x).flatten(2)  # B, C', N
        return softmax_weights(fp32_energy(q, k))

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        v = self.value(x).flatten(2)  # B, C, N
        out = torch.matmul(v, self.attention(x).transpose(1, 2).to(v.dtype))
        return self.gamma * out.reshape(b, c, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.attend(x)


class CrissCrossAttention(_QKVAttention):
    """CCNet criss-cross attention in pure PyTorch. Each pixel attends to the H + W - 1 pixels of its
    own column and row: the column energies exclude the pixel itself (-inf on the diagonal, as in
    CCNet) so it is counted once, by the row term; one softmax runs jointly over both sets.
    Query/key 1x1 convs to C/reduction (8), value C -> C, gamma zero at init.

    Cost is O(HW (H + W) C): the column and row products are batched matmuls over (B, W) and (B, H);
    no dense HW x HW matrix is formed."""

    def attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """float32 weights (column: B x H x W x H', row: B x H x W x W'); they sum to 1 jointly."""
        h, w = x.shape[-2:]
        q = self.query(x)
        k = self.key(x)
        # column energies e[b, w, h, h'] = q[:, :, h, w] . k[:, :, h', w]
        e_col = fp32_energy(q.permute(0, 3, 2, 1), k.permute(0, 3, 1, 2))
        self_mask = torch.eye(h, dtype=torch.bool, device=x.device)
        e_col = e_col.masked_fill(self_mask, float("-inf")).permute(0, 2, 1, 3)  # B, H, W, H'
        # row energies e[b, h, w, w'] = q[:, :, h, w] . k[:, :, h, w']
        e_row = fp32_energy(q.permute(0, 2, 3, 1), k.permute(0, 2, 1, 3))  # B, H, W, W'
        att = softmax_weights(torch.cat([e_col, e_row], dim=-1))
        a_col, a_row = att.split([h, w], dim=-1)
        return a_col, a_row

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        a_col, a_row = self.attention(x)
        v = self.value(x)
        # out_col[b, c, h, w] = sum_h' a_col[b, h, w, h'] v[b, c, h', w]: (B,W,C,H') @ (B,W,H',H)
        out_col = torch.matmul(v.permute(0, 3, 1, 2), a_col.permute(0, 2, 3, 1).to(v.dtype))
        # out_row[b, c, h, w] = sum_w' a_row[b, h, w, w'] v[b, c, h, w']: (B,H,C,W') @ (B,H,W',W)
        out_row = torch.matmul(v.permute(0, 2, 1, 3), a_row.transpose(-1, -2).to(v.dtype))
        out = out_col.permute(0, 2, 3, 1) + out_row.permute(0, 2, 1, 3)
        return self.gamma * out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.attend(x)


class DisentangledNonLocal(nn.Module):
    """Disentangled Non-Local block (DNL), in the form of mmsegmentation's DNLHead block.

    Pairwise term: query/key/value 1x1 convs C -> C' = C/reduction (2); query and key are whitened
    (each channel's spatial mean subtracted), energies scaled by 1/sqrt(C') and divided by the
    temperature (0.05); softmax over positions. Unary term: softmax over positions of a 1x1 conv
    C -> 1, pooling the value into one vector added at every position. One shared output
    Conv1x1(C' -> C) + norm, the norm's weight zero-initialised, and a residual:
    out = x + norm(conv(pairwise + unary))."""

    def __init__(
        self, channels: int, reduction: int = 2, temperature: float = 0.05, norm: str = "bn"
    ) -> None:
        super().__init__()
        inner = max(channels // reduction, 1)
        self.inner = inner
        self.temperature = float(temperature)
        self.query = nn.Conv2d(channels, inner, 1)
        self.key = nn.Conv2d(channels, inner, 1)
        self.value = nn.Conv2d(channels, inner, 1)
        self.unary = nn.Conv2d(channels, 1, 1)
        self.out = ConvNormAct(inner, channels, 1, norm=norm, act="none")
        self.reset_output()

    def reset_output(self) -> None:
        """Zero the output path so the block is the identity (norm weight, or the conv without a norm)."""
        conv, norm_layer = self.out[0], self.out[1]
        if getattr(norm_layer, "weight", None) is not None:
            nn.init.zeros_(norm_layer.weight)
            nn.init.zeros_(norm_layer.bias)
        else:
            nn.init.zeros_(conv.weight)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)

    def pairwise_attention(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """float32 B x N x N pairwise weights from query/key maps (B x C' x H x W), whitened."""
        q = at_least_fp32(q.flatten(2))
        k = at_least_fp32(k.flatten(2))
        q = q - q.mean(dim=-1, keepdim=True)
        k = k - k.mean(dim=-1, keepdim=True)
        energy = fp32_energy(q.transpose(1, 2), k)
        return softmax_weights(energy * (1.0 / (math.sqrt(q.shape[1]) * self.temperature)))

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        v = self.value(x).flatten(2)  # B, C', N
        pair = self.pairwise_attention(self.query(x), self.key(x))
        y = torch.matmul(v, pair.transpose(1, 2).to(v.dtype))  # B, C', N
        unary = at_least_fp32(self.unary(x).flatten(2)).softmax(dim=-1)  # B, 1, N
        y = y + torch.matmul(v, unary.transpose(1, 2).to(v.dtype))  # + B, C', 1
        return self.out(y.reshape(b, self.inner, h, w))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.attend(x)
