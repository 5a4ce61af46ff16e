"""MSCAN, the Multi-Scale Convolutional Attention Network backbone of SegNeXt.

Guo, Lu, Hou, Liu, Cheng, Hu, "SegNeXt: Rethinking Convolutional Attention Design for Semantic
Segmentation", NeurIPS 2022 (arXiv 2209.08575). Pure PyTorch, timm style, and importing it does not
import timm: :func:`mscan_features` builds the features-only backbone (four stage maps, strides 4, 8,
16, 32) that srcr trains, with the same weights, state-dict keys and outputs as
``timm.create_model("mscan_s", features_only=True)``. The timm registration (``mscan_t``,
``mscan_s``, ``mscan_b``, ``mscan_l``) lives in :mod:`srcr.models.backbones.mscan_timm`; import that
module to create MSCAN through timm.

Module names follow the official code inside a block (``norm1``, ``attn.proj_1``,
``attn.spatial_gating_unit.conv0_1``, ``layer_scale_1``, ``mlp.fc1`` ...), while the stages are
grouped as ``stages.{i}.{downsample,blocks,norm}`` so timm's feature wrapper can run them in order.
:func:`load_mscan_checkpoint` maps the official key layout (``patch_embed1.proj.0.weight``,
``block1.0.attn...``, ``norm1.weight``) onto this one. No weights are ever downloaded.
"""

from __future__ import annotations

import math
import os
import pickle
import re
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn

from ...errors import UserError
from ..depthwise import depthwise_conv2d
from ..state_dict_report import raise_on_mismatch

__all__ = [
    "MSCAN",
    "MSCAN_ARCHS",
    "MSCANFeatures",
    "mscan_features",
    "load_mscan_checkpoint",
    "official_to_srcr_key",
    "srcr_to_official_key",
]


def drop_path(
    x: torch.Tensor, drop_prob: float = 0.0, training: bool = False, scale_by_keep: bool = True
) -> torch.Tensor:
    """Stochastic depth per sample, as ``timm.layers.drop_path`` (same random draws for a seed)."""
    if drop_prob == 0.0 or not training:
        return x
    keep_prob = 1 - drop_prob
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    random_tensor = x.new_empty(shape).bernoulli_(keep_prob)
    if keep_prob > 0.0 and scale_by_keep:
        random_tensor.div_(keep_prob)
    return x * random_tensor


class DropPath(nn.Module):
    """Drop paths (stochastic depth) per sample in the main path of residual blocks: timm's
    ``DropPath``, kept local so that building MSCAN does not import timm."""

    def __init__(self, drop_prob: float = 0.0, scale_by_keep: bool = True):
        super().__init__()
        self.drop_prob = drop_prob
        self.scale_by_keep = scale_by_keep

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.drop_prob, self.training, self.scale_by_keep)

    def extra_repr(self) -> str:
        return f"drop_prob={round(self.drop_prob, 3):0.3f}"


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of a BxCxHxW map (SegNeXt's per-stage ``norm{i}``, which the
    official code applies to BxNxC tokens; same parameters, same result)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = super().forward(x)
        return x.permute(0, 3, 1, 2)


class AttentionModule(nn.Module):
    """Multi-scale convolutional attention (MSCA): a depthwise 5x5, then three depthwise strip-conv
    branches (1x7/7x1, 1x11/11x1, 1x21/21x1) summed with the 5x5 output, a 1x1 conv to mix
    channels, and the result multiplied into the input."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv0 = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)
        self.conv0_1 = nn.Conv2d(dim, dim, (1, 7), padding=(0, 3), groups=dim)
        self.conv0_2 = nn.Conv2d(dim, dim, (7, 1), padding=(3, 0), groups=dim)
        self.conv1_1 = nn.Conv2d(dim, dim, (1, 11), padding=(0, 5), groups=dim)
        self.conv1_2 = nn.Conv2d(dim, dim, (11, 1), padding=(5, 0), groups=dim)
        self.conv2_1 = nn.Conv2d(dim, dim, (1, 21), padding=(0, 10), groups=dim)
        self.conv2_2 = nn.Conv2d(dim, dim, (21, 1), padding=(10, 0), groups=dim)
        self.conv3 = nn.Conv2d(dim, dim, 1)

    @staticmethod
    def _dw(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
        # same result as conv(x), faster on the CPU (srcr.models.depthwise)
        return depthwise_conv2d(x, conv.weight, conv.bias, conv.padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attn = self._dw(self.conv0, x)
        a0 = self._dw(self.conv0_2, self._dw(self.conv0_1, attn))
        a1 = self._dw(self.conv1_2, self._dw(self.conv1_1, attn))
        a2 = self._dw(self.conv2_2, self._dw(self.conv2_1, attn))
        attn = self.conv3(attn + a0 + a1 + a2)
        return attn * x


class SpatialAttention(nn.Module):
    """1x1 conv, GELU, MSCA, 1x1 conv, plus the input (SegNeXt's attention sub-layer)."""

    def __init__(self, dim: int):
        super().__init__()
        self.proj_1 = nn.Conv2d(dim, dim, 1)
        self.activation = nn.GELU()
        self.spatial_gating_unit = AttentionModule(dim)
        self.proj_2 = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.proj_2(self.spatial_gating_unit(self.activation(self.proj_1(x))))
        return x + shortcut


class Mlp(nn.Module):
    """Convolutional feed-forward: 1x1, depthwise 3x3, GELU, 1x1."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.act = nn.GELU()
        self.drop = nn.Dropout(drop)
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.act(self.dwconv(self.fc1(x))))
        return self.drop(self.fc2(x))


class Block(nn.Module):
    """Pre-norm (BatchNorm) block: x + ls1 * attn(bn(x)), then x + ls2 * mlp(bn(x)); layer scale 1e-2."""

    def __init__(
        self,
        dim: int,
        mlp_ratio: float = 4.0,
        drop: float = 0.0,
        drop_path: float = 0.0,
        layer_scale_init: float = 1e-2,
    ):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(dim)
        self.attn = SpatialAttention(dim)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        self.layer_scale_1 = nn.Parameter(layer_scale_init * torch.ones(dim))
        self.layer_scale_2 = nn.Parameter(layer_scale_init * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.layer_scale_1[:, None, None] * self.attn(self.norm1(x)))
        x = x + self.drop_path(self.layer_scale_2[:, None, None] * self.mlp(self.norm2(x)))
        return x


def _stem(in_chans: int, dim: int) -> nn.Sequential:
    # indices 0, 1, 3, 4 carry weights, as the official StemConv.proj
    return nn.Sequential(
        nn.Conv2d(in_chans, dim // 2, 3, stride=2, padding=1),
        nn.BatchNorm2d(dim // 2),
        nn.GELU(),
        nn.Conv2d(dim // 2, dim, 3, stride=2, padding=1),
        nn.BatchNorm2d(dim),
    )


def _downsample(in_dim: int, dim: int) -> nn.Sequential:
    # the official OverlapPatchEmbed(patch_size=3, stride=2): proj (conv) then norm (BN)
    return nn.Sequential(nn.Conv2d(in_dim, dim, 3, stride=2, padding=1), nn.BatchNorm2d(dim))


class MSCANStage(nn.Module):
    """Downsample (stem for the first stage), blocks, then a channel LayerNorm."""

    def __init__(
        self,
        downsample: nn.Module,
        dim: int,
        depth: int,
        mlp_ratio: float,
        drop: float,
        drop_paths: Sequence[float],
    ):
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.Sequential(
            *[Block(dim, mlp_ratio, drop, drop_paths[j]) for j in range(depth)]
        )
        self.norm = ChannelLayerNorm(dim, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.blocks(self.downsample(x)))


class MSCAN(nn.Module):
    """SegNeXt's MSCAN backbone (Guo et al., NeurIPS 2022).

    Args:
        in_chans: input channels.
        num_classes: classifier outputs (global average pool + Linear, as the ImageNet pre-training);
            0 for no classifier. Ignored by ``features_only``.
        embed_dims: channels of the four stages.
        depths: blocks per stage.
        mlp_ratios: MLP expansion per stage.
        drop_rate: dropout inside the MLPs and before the classifier.
        drop_path_rate: stochastic depth, linearly increasing over all blocks up to this value.
    """

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dims: Sequence[int] = (64, 128, 320, 512),
        depths: Sequence[int] = (2, 2, 4, 2),
        mlp_ratios: Sequence[float] = (8, 8, 4, 4),
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        global_pool: str = "avg",
    ):
        super().__init__()
        embed_dims, depths, mlp_ratios = list(embed_dims), list(depths), list(mlp_ratios)
        if not (len(embed_dims) == len(depths) == len(mlp_ratios) == 4):
            raise ValueError(
                f"MSCAN needs 4 stages: got embed_dims={embed_dims}, depths={depths}, mlp_ratios={mlp_ratios}"
            )
        if any(d < 1 for d in depths) or any(c < 1 for c in embed_dims) or embed_dims[0] % 2:
            # the stem's first conv has embed_dims[0] // 2 channels
            raise ValueError(
                f"MSCAN: depths must be >= 1 and embed_dims positive with embed_dims[0] even, "
                f"got embed_dims={embed_dims}, depths={depths}"
            )
        if global_pool not in ("avg", ""):
            raise ValueError(f"MSCAN: global_pool must be 'avg' or '', got {global_pool!r}")
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.embed_dims = embed_dims
        self.num_features = self.head_hidden_size = embed_dims[-1]
        self.drop_rate = drop_rate
        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()

        stages, cur, prev = [], 0, in_chans
        self.feature_info = []
        for i, (dim, depth, ratio) in enumerate(zip(embed_dims, depths, mlp_ratios)):
            down = _stem(in_chans, dim) if i == 0 else _downsample(prev, dim)
            stages.append(MSCANStage(down, dim, depth, ratio, drop_rate, dpr[cur : cur + depth]))
            self.feature_info.append(dict(num_chs=dim, reduction=4 * 2**i, module=f"stages.{i}"))
            cur += depth
            prev = dim
        self.stages = nn.Sequential(*stages)
        # registered after `stages`: timm's feature wrapper keeps children up to the last stage it needs
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dims[-1], num_classes) if num_classes > 0 else nn.Identity()
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        # the official init_weights: fan-out normal for convs, trunc-normal 0.02 for linears
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        if global_pool is not None:
            self.global_pool = global_pool
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(x)

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The four stage outputs (strides 4, 8, 16, 32), as the official ``MSCAN.forward``."""
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.global_pool == "avg":
            x = x.mean(dim=(2, 3))
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


# --------------------------------------------------------------------------------------------
# Features-only backbone without timm

MSCAN_ARCHS: dict[str, dict[str, Any]] = {
    "mscan_t": dict(
        embed_dims=[32, 64, 160, 256],
        depths=[3, 3, 5, 2],
        mlp_ratios=[8, 8, 4, 4],
        drop_path_rate=0.1,
    ),
    "mscan_s": dict(
        embed_dims=[64, 128, 320, 512],
        depths=[2, 2, 4, 2],
        mlp_ratios=[8, 8, 4, 4],
        drop_path_rate=0.1,
    ),
    "mscan_b": dict(
        embed_dims=[64, 128, 320, 512],
        depths=[3, 3, 12, 3],
        mlp_ratios=[8, 8, 4, 4],
        drop_path_rate=0.1,
    ),
    "mscan_l": dict(
        embed_dims=[64, 128, 320, 512],
        depths=[3, 5, 27, 3],
        mlp_ratios=[8, 8, 4, 4],
        drop_path_rate=0.3,
    ),
}
# what timm's build_model_with_cfg fills in from the pretrained cfg (mscan_timm._cfg); num_classes
# matters even without a classifier in the result: the head is built and initialised before it is
# dropped, so it draws random numbers between the stages' construction and their init
_TIMM_CFG_DEFAULTS: dict[str, Any] = dict(num_classes=1000, in_chans=3)


class FeatureInfo:
    """The part of ``timm.models.FeatureInfo`` that srcr reads: ``info`` (one dict per stage),
    ``out_indices``, and the ``channels()`` / ``reduction()`` / ``module_name()`` accessors.

    Args:
        info: dicts with ``num_chs``, ``reduction`` and ``module``, one per feature.
        out_indices: the features returned.
    """

    def __init__(self, info: Sequence[dict[str, Any]], out_indices: Sequence[int]):
        self.info = [{**fi, "index": fi.get("index", i)} for i, fi in enumerate(info)]
        self.out_indices = tuple(out_indices)

    def get(self, key: str, idx: int | Sequence[int] | None = None) -> Any:
        """``key`` at each output (``idx`` None), at the feature ``idx``, or at each of a list."""
        if idx is None:
            return [self.info[i][key] for i in self.out_indices]
        if isinstance(idx, (tuple, list)):
            return [self.info[i][key] for i in idx]
        return self.info[idx][key]

    def channels(self, idx: int | Sequence[int] | None = None) -> Any:
        return self.get("num_chs", idx)

    def reduction(self, idx: int | Sequence[int] | None = None) -> Any:
        return self.get("reduction", idx)

    def module_name(self, idx: int | Sequence[int] | None = None) -> Any:
        return self.get("module", idx)

    def __getitem__(self, item: int) -> dict[str, Any]:
        return self.info[item]

    def __len__(self) -> int:
        return len(self.info)


class MSCANFeatures(nn.Module):
    """MSCAN's four stage maps (strides 4, 8, 16, 32, NCHW) as a list: the native equivalent of
    timm's ``FeatureListNet`` around :class:`MSCAN` with ``flatten_sequential=True``.

    The stages are children ``stages_0`` .. ``stages_3``, so state-dict keys match the timm wrapper
    (and srcr checkpoints written with it). The whole :class:`MSCAN` is built first and its
    classifier dropped, which keeps the random draws, hence the weights for a seed, equal to timm's.

    Args:
        **kwargs: :class:`MSCAN` arguments (``embed_dims``, ``depths``, ``mlp_ratios``,
            ``drop_rate``, ``drop_path_rate``, ``in_chans``, ``num_classes``, ``global_pool``).
    """

    def __init__(self, **kwargs: Any):
        super().__init__()
        net = MSCAN(**kwargs)
        for i, stage in enumerate(net.stages):
            self.add_module(f"stages_{i}", stage)
        self.feature_info = FeatureInfo(net.feature_info, range(len(net.stages)))
        self.out_channels = list(self.feature_info.channels())
        self.out_strides = list(self.feature_info.reduction())
        self.feature_format = "NCHW"

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for stage in self.children():
            x = stage(x)
            outs.append(x)
        return outs


def mscan_features(variant: str, **kwargs: Any) -> MSCANFeatures:
    """``timm.create_model(variant, features_only=True, **kwargs)`` for MSCAN, without timm.

    Args:
        variant: ``mscan_t``, ``mscan_s``, ``mscan_b`` or ``mscan_l`` (:data:`MSCAN_ARCHS`).
        **kwargs: overrides of the variant's :class:`MSCAN` arguments; None values are dropped, as
            ``timm.create_model`` does. An argument :class:`MSCAN` does not take raises TypeError,
            an invalid value ValueError.
    """
    if variant not in MSCAN_ARCHS:
        raise KeyError(f"unknown MSCAN variant {variant!r}; expected one of {sorted(MSCAN_ARCHS)}")
    given = {k: v for k, v in kwargs.items() if v is not None}
    return MSCANFeatures(**{**_TIMM_CFG_DEFAULTS, **MSCAN_ARCHS[variant], **given})


# --------------------------------------------------------------------------------------------
# Official (SegNeXt / mmseg) checkpoint keys <-> ours

_OFFICIAL_RULES = [
    (
        re.compile(r"^patch_embed1\.proj\.(\d+)\.(.*)$"),
        lambda m: f"stages.0.downsample.{m[1]}.{m[2]}",
    ),
    (
        re.compile(r"^patch_embed([2-4])\.proj\.(.*)$"),
        lambda m: f"stages.{int(m[1]) - 1}.downsample.0.{m[2]}",
    ),
    (
        re.compile(r"^patch_embed([2-4])\.norm\.(.*)$"),
        lambda m: f"stages.{int(m[1]) - 1}.downsample.1.{m[2]}",
    ),
    (
        re.compile(r"^block([1-4])\.(\d+)\.(.*)$"),
        lambda m: f"stages.{int(m[1]) - 1}.blocks.{m[2]}.{m[3]}",
    ),
    (re.compile(r"^norm([1-4])\.(.*)$"), lambda m: f"stages.{int(m[1]) - 1}.norm.{m[2]}"),
    (re.compile(r"^head\.(.*)$"), lambda m: f"head.{m[1]}"),
]
_SRCR_RULES = [
    (
        re.compile(r"^stages\.0\.downsample\.(\d+)\.(.*)$"),
        lambda m: f"patch_embed1.proj.{m[1]}.{m[2]}",
    ),
    (
        re.compile(r"^stages\.([1-3])\.downsample\.0\.(.*)$"),
        lambda m: f"patch_embed{int(m[1]) + 1}.proj.{m[2]}",
    ),
    (
        re.compile(r"^stages\.([1-3])\.downsample\.1\.(.*)$"),
        lambda m: f"patch_embed{int(m[1]) + 1}.norm.{m[2]}",
    ),
    (
        re.compile(r"^stages\.([0-3])\.blocks\.(\d+)\.(.*)$"),
        lambda m: f"block{int(m[1]) + 1}.{m[2]}.{m[3]}",
    ),
    (re.compile(r"^stages\.([0-3])\.norm\.(.*)$"), lambda m: f"norm{int(m[1]) + 1}.{m[2]}"),
    (re.compile(r"^head\.(.*)$"), lambda m: f"head.{m[1]}"),
]


def official_to_srcr_key(key: str) -> str | None:
    """Map an official SegNeXt key (``block2.1.mlp.dwconv.dwconv.weight``) to ours, None if unknown."""
    key = key.replace(".mlp.dwconv.dwconv.", ".mlp.dwconv.")
    for pattern, repl in _OFFICIAL_RULES:
        m = pattern.match(key)
        if m:
            return repl(m)
    return None


def srcr_to_official_key(key: str) -> str | None:
    """Inverse of :func:`official_to_srcr_key` (used to write checkpoints in the official layout)."""
    key = re.sub(r"^stages_(\d)\.", r"stages.\1.", key)
    for pattern, repl in _SRCR_RULES:
        m = pattern.match(key)
        if m:
            return repl(m).replace(".mlp.dwconv.", ".mlp.dwconv.dwconv.")
    return None


def _extract_state_dict(obj: Any, path: str) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        for k in ("state_dict", "model", "state_dict_ema"):
            if k in obj and isinstance(obj[k], dict):
                obj = obj[k]
                break
    if (
        not isinstance(obj, dict)
        or not obj
        or not all(isinstance(v, torch.Tensor) for v in obj.values())
    ):
        raise UserError(
            f"{path}: expected a state dict (or a dict with 'state_dict' / 'model') of tensors"
        )
    sd = {k[len("module.") :] if k.startswith("module.") else k: v for k, v in obj.items()}
    # a whole mmseg segmentor: keep only its backbone
    if any(k.startswith("backbone.") for k in sd):
        sd = {k[len("backbone.") :]: v for k, v in sd.items() if k.startswith("backbone.")}
    return sd


def load_mscan_checkpoint(model: nn.Module, path: str | os.PathLike) -> dict[str, list[str]]:
    """Load a local SegNeXt (official, mmseg) or srcr/timm MSCAN checkpoint into ``model``.

    ``model`` is an :class:`MSCAN`, an :class:`MSCANFeatures`, or timm's ``features_only`` wrapper
    around an :class:`MSCAN`. Accepted files:
    a state dict, or a dict holding it under ``state_dict`` / ``model``; ``module.`` prefixes are
    stripped and, for a whole mmseg segmentor, only ``backbone.*`` is used. Keys may be in the
    official layout (``patch_embed1.proj.0.weight``, ``block1.0.attn.spatial_gating_unit.conv0.weight``,
    ``norm1.weight``) or in ours (``stages.0...``). The ImageNet classifier (``head.*``) loads only
    into a model with a classifier of the same shape and is skipped otherwise, as are the stages a
    pruned feature wrapper (``out_indices`` ending early) does not hold. Any other missing or
    unexpected key, or a shape mismatch, raises :class:`UserError` naming a few of them.

    Returns ``{"skipped": [...]}``, the checkpoint keys deliberately not loaded.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(
            f"MSCAN checkpoint {path!r} does not exist (pretrained weights are local files only)"
        )
    from ...engine.checkpoint import checkpoint_damage

    damage = checkpoint_damage(path)
    if damage:
        raise UserError(f"MSCAN checkpoint {path} is damaged: {damage}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # mmcv/mmseg checkpoints carry a 'meta' dict that may hold objects the safe loader refuses;
        # the file is the user's own local choice, so unpickle it fully
        try:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e:
            raise UserError(
                f"{path}: cannot be read as a torch checkpoint ({type(e).__name__}: {e})"
            ) from None
    except Exception as e:  # corrupt or truncated file, not a torch file, ...
        raise UserError(
            f"{path}: cannot be read as a torch checkpoint ({type(e).__name__}: {e})"
        ) from None
    sd = _extract_state_dict(obj, path)

    target = model.state_dict()
    is_wrapper = not isinstance(model, MSCAN)
    present_stages = (
        {int(k.split(".")[0][len("stages_") :]) for k in target if k.startswith("stages_")}
        if is_wrapper
        else {0, 1, 2, 3}
    )

    def to_target(ours: str) -> str:
        return re.sub(r"^stages\.(\d)\.", r"stages_\1.", ours) if is_wrapper else ours

    new_sd: dict[str, torch.Tensor] = {}
    unexpected, skipped, mismatched = [], [], []
    for key, value in sd.items():
        ours = key if key.startswith(("stages.", "stages_")) else official_to_srcr_key(key)
        if ours is not None:
            ours = re.sub(r"^stages_(\d)\.", r"stages.\1.", ours)
        if ours is None:
            unexpected.append(key)
            continue
        if ours.startswith("head."):
            if ours in target and target[ours].shape == value.shape:
                new_sd[ours] = value
            else:
                skipped.append(key)
            continue
        stage = int(ours.split(".")[1])
        if stage not in present_stages:
            skipped.append(key)
            continue
        tkey = to_target(ours)
        if tkey not in target:
            unexpected.append(key)
        elif target[tkey].shape != value.shape:
            mismatched.append(f"{key} {tuple(value.shape)} vs model {tuple(target[tkey].shape)}")
        else:
            new_sd[tkey] = value

    missing = [k for k in target if k not in new_sd and not k.endswith("num_batches_tracked")]
    raise_on_mismatch(f"MSCAN checkpoint {path}", mismatched, missing, unexpected, what="MSCAN")
    model.load_state_dict(new_sd, strict=False)
    return {"skipped": skipped}
