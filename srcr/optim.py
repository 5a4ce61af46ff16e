"""Optimiser with parameter groups, and the poly learning-rate schedule with linear warm-up.

The paper-scale recipe is SegNeXt's (Guo et al., NeurIPS 2022): AdamW, lr 6e-5, weight decay 0.01
with none on norms and biases, head lr x10, linear warm-up over 1500 iterations then poly decay
(power 1.0) to 0 at 160k iterations.

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
OPTIMIZER_DEFAULTS: dict[str, Any] = {
    "name": "adamw", "lr": 6.0e-5, "weight_decay": 0.01, "betas": [0.9, 0.999], "momentum": 0.9,
    "head_lr_mult": 10.0, "eps": 1.0e-8, "nesterov": False, "offset_lr_mult": 0.1,
}
SCHEDULE_DEFAULTS: dict[str, Any] = {
    "power": 1.0, "warmup_iters": 1500, "warmup_ratio": 1.0e-6, "min_lr": 0.0,
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
                name = name[len(prefix):]
                changed = True
    return name


def _merge(path: str, given: dict | None, defaults: dict) -> dict:
    given = given or {}
    check_keys(path, given, defaults)
    return {**defaults, **given}


def param_groups(model: nn.Module, lr: float, weight_decay: float,
                 head_lr_mult: float = 1.0) -> list[dict]:
    """Split trainable parameters into up to four groups: {backbone, head} x {decay, no_decay}.

    No weight decay on: every parameter of a norm layer (BatchNorm/SyncBN/InstanceNorm, GroupNorm,
    LayerNorm), every bias, and every parameter with ndim <= 1 (layer scales, attention gammas).
    ``head`` = every parameter whose name (DDP/compile prefixes removed) does not start with
    ``backbone.``; its lr is ``lr * head_lr_mult``. Each group records ``initial_lr`` (its base lr,
    read by ``apply_lr``), ``lr_mult``, ``decay_mult`` and a ``name``; empty groups are dropped.
    """
    buckets: dict[tuple[str, str], list[tuple[str, torch.nn.Parameter]]] = {
        ("backbone", "decay"): [], ("backbone", "no_decay"): [],
        ("head", "decay"): [], ("head", "no_decay"): [],
    }
    seen: set[int] = set()
    for mod_name, module in model.named_modules():
        is_norm = isinstance(module, _NORM_TYPES)
        for p_name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            full = _strip_wrappers(f"{mod_name}.{p_name}" if mod_name else p_name)
            part = "backbone" if full.startswith("backbone.") else "head"
            no_decay = is_norm or p_name == "bias" or p_name.endswith(".bias") or param.ndim <= 1
            buckets[(part, "no_decay" if no_decay else "decay")].append((full, param))

    groups = []
    for (part, decay), items in buckets.items():
        if not items:
            continue
        mult = 1.0 if part == "backbone" else float(head_lr_mult)
        group_lr = float(lr) * mult
        groups.append({
            "name": f"{part}.{decay}",
            "params": [p for _, p in items],
            "param_names": [n for n, _ in items],
            "lr": group_lr,
            "initial_lr": group_lr,
            "lr_mult": mult,
            "weight_decay": float(weight_decay) if decay == "decay" else 0.0,
            "decay_mult": 1.0 if decay == "decay" else 0.0,
        })
    return groups


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
            out.append({**group, "params": [p for _, p in keep],
                        "param_names": [n for n, _ in keep]})
        if moved:
            lr = group["lr"] * float(mult)
            out.append({**group, "name": f"{group['name']}.offset", "params": [p for _, p in moved],
                        "param_names": [n for n, _ in moved], "lr": lr, "initial_lr": lr,
                        "lr_mult": group["lr_mult"] * float(mult)})
    return out


def build_optimizer(model: nn.Module, opt_cfg: dict | None) -> torch.optim.Optimizer:
    """AdamW or SGD over ``param_groups(model, ...)`` from the config's ``train.optimizer`` section
    (keys: name, lr, weight_decay, betas [AdamW], eps [AdamW], momentum [SGD], nesterov [SGD],
    head_lr_mult, offset_lr_mult). Unknown keys or names raise ``UserError``."""
    cfg = _merge("train.optimizer", opt_cfg, OPTIMIZER_DEFAULTS)
    name = cfg["name"]
    if not isinstance(name, str) or name.lower() not in OPTIMIZERS:
        raise UserError(f"train.optimizer.name: unknown optimizer {name!r}; expected one of: "
                        f"{', '.join(OPTIMIZERS)}")
    name = name.lower()
    _check_number("train.optimizer.lr", cfg["lr"], positive=True)
    _check_number("train.optimizer.weight_decay", cfg["weight_decay"], minimum=0)
    _check_number("train.optimizer.head_lr_mult", cfg["head_lr_mult"], positive=True)
    _check_number("train.optimizer.offset_lr_mult", cfg["offset_lr_mult"], positive=True)
    groups = param_groups(model, cfg["lr"], cfg["weight_decay"], cfg["head_lr_mult"])
    groups = split_offset_groups(model, groups, cfg["offset_lr_mult"])
    if not groups:
        raise UserError("train.optimizer: the model has no trainable parameters")
    if name == "adamw":
        betas = cfg["betas"]
        if (not isinstance(betas, (list, tuple)) or len(betas) != 2
                or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas)):
            raise UserError(f"train.optimizer.betas: expected two numbers in [0, 1), got {betas!r}")
        _check_number("train.optimizer.eps", cfg["eps"], positive=True)
        return torch.optim.AdamW(groups, lr=float(cfg["lr"]), betas=tuple(float(b) for b in betas),
                                 eps=float(cfg["eps"]), weight_decay=float(cfg["weight_decay"]),
                                 **_fused(groups))
    _check_number("train.optimizer.momentum", cfg["momentum"], minimum=0)
    if not isinstance(cfg["nesterov"], bool):
        raise UserError(f"train.optimizer.nesterov: expected true or false, got {cfg['nesterov']!r}")
    return torch.optim.SGD(groups, lr=float(cfg["lr"]), momentum=float(cfg["momentum"]),
                           weight_decay=float(cfg["weight_decay"]), nesterov=cfg["nesterov"], **_fused(groups))


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
        raise UserError(f"train.schedule.warmup_iters: expected fewer than train.iterations "
                        f"({total_iters}), got {cfg['warmup_iters']}")
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
