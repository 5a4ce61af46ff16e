"""FPN decoder in the UPerNet (Xiao et al., ECCV 2018) / SFNet (Li et al., ECCV 2020) layout, with a
pluggable context module at stride 32 and a pluggable alignment module at every top-down step
(docs/model.md, "Decoder")."""

from __future__ import annotations

import inspect
from typing import Any

import torch
import torch.nn as nn

from ..errors import UserError
from .init_streams import init_stream
from .layers import ConvNormAct, resize
from .registry import ALIGN_MODULES, CONTEXT_MODULES


def _accepts(cls: type, name: str) -> bool:
    params = inspect.signature(cls.__init__).parameters
    return name in params and params[name].kind in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.KEYWORD_ONLY,
    )


def _module_class(slot: str, name: str, table: dict[str, type]) -> type:
    if name not in table:
        raise UserError(
            f"model.{slot}: unknown {slot} module {name!r}; expected one of: "
            f"{', '.join(sorted(table))}"
        )
    return table[name]


def _check_options(
    slot: str, name: str, cls: type, options: dict[str, Any], positional: tuple[str, ...]
) -> None:
    """Both slots alike: an option that is not a keyword of ``cls.__init__`` (besides the sizes the
    decoder passes itself) is a UserError listing the allowed ones, before anything is built."""
    allowed = [
        p
        for p in inspect.signature(cls.__init__).parameters
        if p not in ("self", *positional) and _accepts(cls, p)
    ]
    unknown = [k for k in options if k not in allowed]
    if unknown:
        raise UserError(
            f"model.{slot}_options: {name} does not accept {unknown}; allowed: "
            f"{', '.join(allowed) if allowed else '(none)'}"
        )


def build_align(
    name: str, channels: int, options: dict[str, Any] | None = None, norm: str = "bn"
) -> nn.Module:
    """``ALIGN_MODULES[name](channels, **options)``; the decoder's ``norm`` is passed to modules
    that take a ``norm`` argument unless ``options`` sets it. Unknown names/options -> UserError."""
    cls = _module_class("align", name, ALIGN_MODULES)
    options = dict(options or {})
    _check_options("align", name, cls, options, ("channels",))
    if _accepts(cls, "norm"):
        options.setdefault("norm", norm)
    return cls(channels, **options)


def build_context(
    name: str,
    in_channels: list[int],
    out_channels: int,
    options: dict[str, Any] | None = None,
    norm: str = "bn",
) -> nn.Module:
    """``CONTEXT_MODULES[name](in_channels, out_channels, **options)``; ``norm`` and the checks as
    for :func:`build_align`."""
    cls = _module_class("context", name, CONTEXT_MODULES)
    options = dict(options or {})
    _check_options("context", name, cls, options, ("in_channels", "out_channels"))
    if _accepts(cls, "norm"):
        options.setdefault("norm", norm)
    return cls(list(in_channels), out_channels, **options)


def shift_directions(images: torch.Tensor) -> torch.Tensor:
    """(B, 2) signs (rows, columns), each +1 or -1, a fixed function of each image's pixels: the
    same image gets the same direction in every variant, and augmented training crops get
    directions that look random. A fixed direction would not be a handicap: the convolutions
    before it learn to pre-shift their output (measured: no loss at all)."""
    h = (images.detach().flatten(1)[:, ::61].float().sum(1) * 997.0).floor().long().abs()
    return torch.stack([(h % 2) * 2 - 1, ((h // 2) % 2) * 2 - 1], dim=1)


def _shift_axis(x: torch.Tensor, shift: float, sign: torch.Tensor, dim: int) -> torch.Tensor:
    n = x.shape[dim]
    whole, frac = int(shift), shift - int(shift)
    idx = torch.arange(n, device=x.device)
    s = sign.view(-1, 1, 1, 1) > 0

    def at(k: int) -> torch.Tensor:  # x at i + k (sign > 0) or i - k, border replicated
        ahead = x.index_select(dim, (idx + k).clamp(0, n - 1))
        behind = x.index_select(dim, (idx - k).clamp(0, n - 1))
        return torch.where(s, ahead, behind)

    near = at(whole) if whole else x
    return near if frac == 0.0 else (1.0 - frac) * near + frac * at(whole + 1)


def shift_coarse(x: torch.Tensor, shift: float, signs: torch.Tensor) -> torch.Tensor:
    """``x`` resampled (bilinear, border replicated) at (i + shift * signs[:, 0], j + shift *
    signs[:, 1]) per sample: the control handicap of ``model.coarse_shift``, a misalignment that
    bilinear upsampling cannot undo and a learned offset, which sees both maps, can."""
    if shift == 0.0:
        return x
    return _shift_axis(_shift_axis(x, shift, signs[:, 0], 2), shift, signs[:, 1], 3)


class FPNDecoder(nn.Module):
    """P5' = context(C2..C5); top-down for strides 16, 8, 4: L_i = Conv1x1-norm-ReLU(C_i),
    F_i = align_i(L_i, F_{i+1}) (F_5 = P5'), P_i = Conv3x3-norm-ReLU(F_i); fusion: P3, P4, P5'
    resized to P2 (bilinear, align_corners=True), cat[P2, P3, P4, P5'], Conv3x3-norm-ReLU(4d -> d).

    ``coarse_shift`` > 0 (a control, not a model): every coarse input to an alignment step, and
    every coarse map the fusion upsamples, is first shifted by that fraction of its cell, in a
    direction given per image (:func:`shift_coarse`;
    ``forward(feats, shift_signs)``, the signs from :func:`shift_directions`).

    ``laterals``, ``align`` and ``fpn_convs`` are ModuleLists in top-down order: index 0, 1, 2 =
    strides 16, 8, 4. ``forward(feats)`` returns the fused stride-4 map (B, fpn_dim, H4, W4).
    """

    def __init__(
        self,
        in_channels: list[int],
        fpn_dim: int = 256,
        align: str = "srm",
        align_options: dict[str, Any] | None = None,
        context: str = "crm",
        context_options: dict[str, Any] | None = None,
        norm: str = "bn",
        coarse_shift: float = 0.0,
    ):
        super().__init__()
        if not 0.0 <= coarse_shift <= 4.0:
            raise ValueError(f"coarse_shift must be in [0, 4] coarse cells; got {coarse_shift}")
        self.coarse_shift = float(coarse_shift)
        if len(in_channels) != 4:
            raise ValueError(
                f"FPNDecoder needs 4 input maps (strides 4, 8, 16, 32); got channels {in_channels}"
            )
        self.in_channels = list(in_channels)
        self.fpn_dim = fpn_dim
        top_down = (2, 1, 0)  # C4, C3, C2
        with init_stream("decoder.context"):
            self.context = build_context(context, in_channels, fpn_dim, context_options, norm)
        with init_stream("decoder.laterals"):
            self.laterals = nn.ModuleList(
                ConvNormAct(in_channels[i], fpn_dim, 1, norm=norm) for i in top_down
            )
        with init_stream("decoder.align"):
            self.align = nn.ModuleList(
                build_align(align, fpn_dim, align_options, norm) for _ in top_down
            )
        with init_stream("decoder.fpn_convs"):
            self.fpn_convs = nn.ModuleList(
                ConvNormAct(fpn_dim, fpn_dim, 3, norm=norm) for _ in top_down
            )
        with init_stream("decoder.fuse"):
            self.fuse = ConvNormAct(4 * fpn_dim, fpn_dim, 3, norm=norm)

    def forward(
        self, feats: list[torch.Tensor], shift_signs: torch.Tensor | None = None
    ) -> torch.Tensor:
        if self.coarse_shift and shift_signs is None:
            raise ValueError(
                "FPNDecoder with coarse_shift > 0 needs shift_signs (see shift_directions)"
            )
        top = self.context(feats)
        f = top
        pyramid = [top]  # P5', P4, P3, P2
        for lateral, align, conv, i in zip(self.laterals, self.align, self.fpn_convs, (2, 1, 0)):
            f = align(lateral(feats[i]), shift_coarse(f, self.coarse_shift, shift_signs))
            pyramid.append(conv(f))
        size = pyramid[-1].shape[-2:]
        # the handicap also misaligns the fusion's coarse maps, or the network would route the
        # coarse semantics around the top-down path (measured: then it costs nothing)
        fused = torch.cat(
            [pyramid[3]]
            + [
                resize(
                    shift_coarse(p, self.coarse_shift, shift_signs),
                    size,
                    mode="bilinear",
                    align_corners=True,
                )
                for p in (pyramid[2], pyramid[1], pyramid[0])
            ],
            dim=1,
        )
        return self.fuse(fused)
