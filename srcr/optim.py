"""Optimiser with parameter groups, and the poly learning-rate schedule with linear warm-up.

The paper-scale recipe is SegNeXt's (Guo et al., NeurIPS 2022): AdamW, lr 6e-5, weight decay 0.01,
head lr x10, linear warm-up over 1500 iterations then poly decay (power 1.0) to 0 at 160k iterations.

Two grouping rules decide each parameter's lr and weight-decay multipliers (``train.optimizer.grouping``):

- ``srcr``: no decay on any norm parameter, bias or 1-D parameter (layer scales, attention gammas);
  lr x ``head_lr_mult`` outside the backbone.
- ``mmcv``: SegNeXt's configs' ``paramwise_cfg=dict(custom_keys=...)`` under mmcv's
  ``DefaultOptimizerConstructor`` rule. Of the keys that are a substring of the parameter's full
  name, the longest wins, ties going to the alphabetically first; its ``lr_mult`` / ``decay_mult``
  (1 when absent) apply; a parameter no key matches keeps the base lr and decay (SegNeXt sets no
  ``bias_decay_mult`` or ``norm_decay_mult``). The names matched are those the parameter has in
  SegNeXt's mmseg model (:func:`mmseg_name`), so SegNeXt's keys ``pos_block`` and ``norm``
  (decay 0) and ``head`` (lr x10) select what they select there: the backbone's patch-embedding,
  block and stage norms lose their decay, its stem BNs, biases and layer scales keep it, and every
  parameter outside the backbone, norms included, gets lr x10 with full decay.

Schedule semantics (``lr_factor``), exactly mmseg 1.x's SegNeXt ``param_scheduler``
``[LinearLR(start_factor=warmup_ratio, begin=0, end=W), PolyLR(power=p, eta_min, begin=W, end=T)]``
with the factor applied to every group's base lr (``group['initial_lr']``):

- ``0 <= it < W``:  ``warmup_ratio + (1 - warmup_ratio) * it / W``
- ``W <= it <= T``: ``m + (1 - m) * (1 - (it - W) / (T - W)) ** p``
- ``it > T``:       ``m``

with W = ``warmup_iters``, T = ``total_iters``, p = ``power`` and m = ``min_lr`` read as a fraction
of each group's base lr (so head and backbone groups decay alike; 0, the recipe's value, means
decay to zero). ``it`` is the 0-based index of the iteration about to run, so the first step
uses ``warmup_ratio`` and the last (``it = T - 1``) ``m + (1 - m) * (1 / (T - W)) ** p``. The poly
part runs over [W, T] as mmseg 1.x's ``PolyLR(begin=W)`` does; mmcv 0.x's hook instead multiplied a
poly over [0, T] by the warm-up ramp (a difference below W / T, 0.9 % of the lr, in the recipe).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from .errors import UserError
from .utils.validate import check_keys
from .utils.validate import check_number as _check_number

OPTIMIZERS = ("adamw", "sgd")
GROUPINGS = ("srcr", "mmcv")
OPTIMIZER_DEFAULTS: dict[str, Any] = {
    "name": "adamw",
    "lr": 6.0e-5,
    "weight_decay": 0.01,
    "betas": [0.9, 0.999],
    "momentum": 0.9,
    "head_lr_mult": 10.0,
    "eps": 1.0e-8,
    "nesterov": False,
    "grouping": "srcr",
    "custom_keys": None,
    "offset_lr_mult": 0.1,
}


def segnext_custom_keys(head_lr_mult: float = 10.0) -> dict[str, dict[str, float]]:
    """SegNeXt's ``paramwise_cfg.custom_keys`` (every config in local_configs/segnext/), with the
    ``head`` lr multiplier (10 there) taken from ``head_lr_mult``."""
    return {
        "pos_block": {"decay_mult": 0.0},
        "norm": {"decay_mult": 0.0},
        "head": {"lr_mult": float(head_lr_mult)},
    }


SCHEDULE_DEFAULTS: dict[str, Any] = {
    "power": 1.0,
    "warmup_iters": 1500,
    "warmup_ratio": 1.0e-6,
    "min_lr": 0.0,
}

_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)
# Wrappers that prefix parameter names: DDP ("module.") and torch.compile ("_orig_mod.").
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def _strip_wrappers(name: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if name.startswith(prefix):
                name = name[len(prefix) :]
                changed = True
    return name


def _merge(path: str, given: dict | None, defaults: dict) -> dict:
    given = given or {}
    check_keys(path, given, defaults)
    return {**defaults, **given}


def mmseg_name(name: str) -> str:
    """The name a parameter of srcr's Segmentor (``name`` without DDP/compile prefixes) has in
    SegNeXt's mmseg ``EncoderDecoder``: MSCAN parameters in the official key layout under
    ``backbone.``; the auxiliary head under ``auxiliary_head.``; everything else (decoder,
    alignment and context modules, classifier, embedding head) under ``decode_head.``, where an
    mmseg segmentor keeps its decoder. Other backbones keep their own names."""
    from .models.backbones.mscan import srcr_to_official_key

    top, _, rest = name.partition(".")
    if top == "backbone":
        official = srcr_to_official_key(rest)
        return name if official is None else f"backbone.{official}"
    if top == "aux_head":
        return f"auxiliary_head.{rest}"
    return f"decode_head.{name}"


def match_custom_key(name: str, custom_keys: dict) -> str | None:
    """mmcv's choice among ``custom_keys``: the longest key that is a substring of ``name``, ties
    to the alphabetically first; None when no key matches."""
    for key in sorted(sorted(custom_keys), key=len, reverse=True):
        if key in name:
            return key
    return None


def _srcr_rule(head_lr_mult: float):
    def rule(full: str, p_name: str, param: torch.nn.Parameter, is_norm: bool):
        part = "backbone" if full.startswith("backbone.") else "head"
        no_decay = is_norm or p_name == "bias" or p_name.endswith(".bias") or param.ndim <= 1
        lr_mult = 1.0 if part == "backbone" else float(head_lr_mult)
        return f"{part}.{'no_decay' if no_decay else 'decay'}", lr_mult, 0.0 if no_decay else 1.0

    return rule


def _mmcv_rule(custom_keys: dict):
    def rule(full: str, p_name: str, param: torch.nn.Parameter, is_norm: bool):
        key = match_custom_key(mmseg_name(full), custom_keys)
        mults = custom_keys.get(key, {}) if key is not None else {}
        return (
            f"key:{key}" if key is not None else "base",
            float(mults.get("lr_mult", 1.0)),
            float(mults.get("decay_mult", 1.0)),
        )

    return rule


def param_groups(
    model: nn.Module,
    lr: float,
    weight_decay: float,
    head_lr_mult: float = 1.0,
    grouping: str = "srcr",
    custom_keys: dict | None = None,
) -> list[dict]:
    """Trainable parameters in groups of equal lr and weight-decay multipliers.

    ``grouping`` picks the rule (module docstring). ``srcr``: up to four groups {backbone, head} x
    {decay, no_decay}: no weight decay on every parameter of a norm layer
    (BatchNorm/SyncBN/InstanceNorm, GroupNorm, LayerNorm), every bias, and every parameter with
    ndim <= 1 (layer scales, attention gammas); ``head`` = every parameter whose name (DDP/compile
    prefixes removed) does not start with ``backbone.``; its lr is ``lr * head_lr_mult``. ``mmcv``:
    one group per matched key of ``custom_keys`` (``key:NAME``) and ``base`` for the rest;
    ``custom_keys`` None means :func:`segnext_custom_keys` ``(head_lr_mult)``.

    Each group records ``initial_lr`` (its base lr, read by ``apply_lr``), ``lr_mult``,
    ``decay_mult``, a ``name`` and ``param_names``; empty groups are dropped.
    """
    if grouping == "srcr":
        rule = _srcr_rule(head_lr_mult)
    elif grouping == "mmcv":
        rule = _mmcv_rule(segnext_custom_keys(head_lr_mult) if custom_keys is None else custom_keys)
    else:
        raise UserError(
            f"train.optimizer.grouping: unknown rule {grouping!r}; expected one of: "
            f"{', '.join(GROUPINGS)}"
        )
    buckets: dict[str, tuple[float, float, list[tuple[str, torch.nn.Parameter]]]] = {}
    seen: set[int] = set()
    for mod_name, module in model.named_modules():
        is_norm = isinstance(module, _NORM_TYPES)
        for p_name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            full = _strip_wrappers(f"{mod_name}.{p_name}" if mod_name else p_name)
            name, lr_mult, decay_mult = rule(full, p_name, param, is_norm)
            buckets.setdefault(name, (lr_mult, decay_mult, []))[2].append((full, param))

    groups = []
    for name in _group_order(buckets):
        lr_mult, decay_mult, items = buckets[name]
        group_lr = float(lr) * lr_mult
        groups.append(
            {
                "name": name,
                "params": [p for _, p in items],
                "param_names": [n for n, _ in items],
                "lr": group_lr,
                "initial_lr": group_lr,
                "lr_mult": lr_mult,
                "weight_decay": float(weight_decay) * decay_mult,
                "decay_mult": decay_mult,
            }
        )
    return groups


def _group_order(buckets: dict) -> list[str]:
    # a fixed order, independent of which parameter comes first: the optimiser state of a
    # checkpoint is matched to groups by position
    srcr_order = ["backbone.decay", "backbone.no_decay", "head.decay", "head.no_decay"]
    return [n for n in srcr_order if n in buckets] + sorted(
        n for n in buckets if n not in srcr_order
    )


def check_custom_keys(custom_keys: Any) -> dict | None:
    """``train.optimizer.custom_keys``: null or {key: {lr_mult: x, decay_mult: y}} (either
    optional, non-negative numbers); UserError naming the key otherwise."""
    if custom_keys is None:
        return None
    if not isinstance(custom_keys, dict) or not custom_keys:
        raise UserError(
            f"train.optimizer.custom_keys: expected null or a non-empty mapping of name "
            f"substrings to {{lr_mult, decay_mult}}, got {custom_keys!r}"
        )
    for key, mults in custom_keys.items():
        path = f"train.optimizer.custom_keys.{key}"
        if not isinstance(key, str) or not key:
            raise UserError(
                f"train.optimizer.custom_keys: keys must be non-empty strings, got {key!r}"
            )
        if not isinstance(mults, dict):
            raise UserError(
                f"{path}: expected a mapping with lr_mult and/or decay_mult, got {mults!r}"
            )
        check_keys(path, mults, {"lr_mult": 1.0, "decay_mult": 1.0})
        for k, v in mults.items():
            _check_number(f"{path}.{k}", v, minimum=0)
    return custom_keys


def offset_params(model: nn.Module) -> set[int]:
    """ids of the parameters of every offset- or flow-predicting layer: the submodules that each
    alignment module names in its class attribute ``offset_layers``."""
    ids: set[int] = set()
    for module in model.modules():
        for name in getattr(module, "offset_layers", ()):
            ids.update(id(p) for p in module.get_submodule(name).parameters())
    return ids


def split_offset_groups(model: nn.Module, groups: list[dict], mult: float) -> list[dict]:
    """Move the offset-layer parameters (:func:`offset_params`) of every group into a group of their
    own, named ``<group>.offset``, whose lr (and ``initial_lr``, ``lr_mult``) is the group's times
    ``mult``; weight decay as the group's. ``mult == 1`` leaves the groups as they are.

    Why: Adam moves every weight by about the lr per step, so an offset conv at the head lr can
    push offsets tens of pixels in a few hundred steps (issue 21; Deformable DETR and mmdet train
    their sampling offsets at 0.1x for the same reason).
    """
    ids = offset_params(model)
    if float(mult) == 1.0 or not ids:
        return groups
    out = []
    for group in groups:
        keep = [(n, p) for n, p in zip(group["param_names"], group["params"]) if id(p) not in ids]
        moved = [(n, p) for n, p in zip(group["param_names"], group["params"]) if id(p) in ids]
        if keep:
            out.append(
                {**group, "params": [p for _, p in keep], "param_names": [n for n, _ in keep]}
            )
        if moved:
            lr = group["lr"] * float(mult)
            out.append(
                {
                    **group,
                    "name": f"{group['name']}.offset",
                    "params": [p for _, p in moved],
                    "param_names": [n for n, _ in moved],
                    "lr": lr,
                    "initial_lr": lr,
                    "lr_mult": group["lr_mult"] * float(mult),
                }
            )
    return out


def build_optimizer(model: nn.Module, opt_cfg: dict | None) -> torch.optim.Optimizer:
    """AdamW or SGD over ``param_groups(model, ...)`` from the config's ``train.optimizer`` section
    (keys: name, lr, weight_decay, betas [AdamW], eps [AdamW], momentum [SGD], nesterov [SGD],
    head_lr_mult, grouping, custom_keys [mmcv], offset_lr_mult). Unknown keys or names raise
    ``UserError``."""
    cfg = _merge("train.optimizer", opt_cfg, OPTIMIZER_DEFAULTS)
    name = cfg["name"]
    if not isinstance(name, str) or name.lower() not in OPTIMIZERS:
        raise UserError(
            f"train.optimizer.name: unknown optimizer {name!r}; expected one of: "
            f"{', '.join(OPTIMIZERS)}"
        )
    name = name.lower()
    _check_number("train.optimizer.lr", cfg["lr"], positive=True)
    _check_number("train.optimizer.weight_decay", cfg["weight_decay"], minimum=0)
    _check_number("train.optimizer.head_lr_mult", cfg["head_lr_mult"], positive=True)
    custom_keys = check_custom_keys(cfg["custom_keys"])
    groups = param_groups(
        model, cfg["lr"], cfg["weight_decay"], cfg["head_lr_mult"], cfg["grouping"], custom_keys
    )
    _check_number("train.optimizer.offset_lr_mult", cfg["offset_lr_mult"], positive=True)
    groups = split_offset_groups(model, groups, cfg["offset_lr_mult"])
    if not groups:
        raise UserError("train.optimizer: the model has no trainable parameters")
    if name == "adamw":
        betas = cfg["betas"]
        if (
            not isinstance(betas, (list, tuple))
            or len(betas) != 2
            or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas)
        ):
            raise UserError(f"train.optimizer.betas: expected two numbers in [0, 1), got {betas!r}")
        _check_number("train.optimizer.eps", cfg["eps"], positive=True)
        return torch.optim.AdamW(
            groups,
            lr=float(cfg["lr"]),
            betas=tuple(float(b) for b in betas),
            eps=float(cfg["eps"]),
            weight_decay=float(cfg["weight_decay"]),
            **_fused(groups),
        )
    _check_number("train.optimizer.momentum", cfg["momentum"], minimum=0)
    if not isinstance(cfg["nesterov"], bool):
        raise UserError(
            f"train.optimizer.nesterov: expected true or false, got {cfg['nesterov']!r}"
        )
    return torch.optim.SGD(
        groups,
        lr=float(cfg["lr"]),
        momentum=float(cfg["momentum"]),
        weight_decay=float(cfg["weight_decay"]),
        nesterov=cfg["nesterov"],
        **_fused(groups),
    )


def _fused(groups: list[dict]) -> dict:
    # The fused kernels update every tensor in one pass: on the CPU, AdamW's per-tensor loop costs
    # 3x more than the fused step for the default model's ~200 small tensors. They need floating
    # parameters on CPU or CUDA; anything else keeps the per-tensor implementation.
    params = [p for g in groups for p in g["params"]]
    ok = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return {"fused": True} if ok else {}


def check_schedule(schedule_cfg: dict | None, total_iters: int) -> dict:
    """Validated schedule config with defaults filled in (UserError naming ``train.schedule.<key>``)."""
    cfg = _merge("train.schedule", schedule_cfg, SCHEDULE_DEFAULTS)
    _check_number("train.iterations", total_iters, positive=True, integer=True)
    _check_number("train.schedule.power", cfg["power"], minimum=0)
    _check_number("train.schedule.warmup_iters", cfg["warmup_iters"], minimum=0, integer=True)
    if cfg["warmup_iters"] >= total_iters:
        raise UserError(
            f"train.schedule.warmup_iters: expected fewer than train.iterations "
            f"({total_iters}), got {cfg['warmup_iters']}"
        )
    _check_number("train.schedule.warmup_ratio", cfg["warmup_ratio"], minimum=0, maximum=1)
    _check_number("train.schedule.min_lr", cfg["min_lr"], minimum=0, maximum=1)
    return cfg


def lr_factor(iteration: int, schedule_cfg: dict | None, total_iters: int) -> float:
    """Multiplier of every group's base lr at 0-based ``iteration`` (formula in the module docstring)."""
    cfg = check_schedule(schedule_cfg, total_iters)
    warmup = int(cfg["warmup_iters"])
    it = max(int(iteration), 0)
    if it < warmup:
        ratio = float(cfg["warmup_ratio"])
        return ratio + (1.0 - ratio) * it / warmup
    min_ratio = float(cfg["min_lr"])
    progress = min((it - warmup) / (total_iters - warmup), 1.0)
    return min_ratio + (1.0 - min_ratio) * (1.0 - progress) ** float(cfg["power"])


def apply_lr(optimizer: torch.optim.Optimizer, factor: float) -> None:
    """Set every group's lr to its base lr (``initial_lr``, else ``base_lr``, else the current lr,
    which is then recorded as ``initial_lr``) times ``factor``."""
    for group in optimizer.param_groups:
        if "initial_lr" not in group:
            group["initial_lr"] = group.get("base_lr", group["lr"])
        group["lr"] = group["initial_lr"] * factor
