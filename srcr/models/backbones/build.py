"""Backbones: srcr's MSCAN (SegNeXt, Guo et al. NeurIPS 2022: ``mscan_t/s/b/l``), built natively,
or any timm model with ``features_only=True`` whose features reach strides 4, 8, 16, 32.

timm is imported only for a non-MSCAN name: ``import timm`` pulls in torchvision and costs seconds
in every train / evaluate / flops process. Nothing is ever downloaded: ``pretrained`` is a local
checkpoint file.
"""

from __future__ import annotations

import difflib
import os
import pickle
from collections.abc import Callable
from types import ModuleType
from typing import Any

import torch
import torch.nn as nn

from ...errors import UserError
from ..state_dict_report import raise_on_mismatch
from .mscan import MSCAN_ARCHS, mscan_features

STRIDES = (4, 8, 16, 32)
# options that build_backbone sets itself
_RESERVED_OPTIONS = (
    "pretrained",
    "features_only",
    "out_indices",
    "pretrained_cfg",
    "pretrained_cfg_overlay",
)


def _timm() -> ModuleType:
    """timm, with srcr's MSCAN registered so that ``mscan_*`` resolves through timm as well."""
    import timm

    from . import mscan_timm  # noqa: F401  (registers mscan_t/s/b/l)

    return timm


def select_out_indices(
    reductions: list[int], strides: tuple[int, ...] = STRIDES
) -> list[int] | None:
    """Indices (into the model's full feature list) of the deepest feature at each wanted stride,
    or None if some stride is absent."""
    chosen = []
    for s in strides:
        at = [i for i, r in enumerate(reductions) if r == s]
        if not at:
            return None
        chosen.append(at[-1])
    return chosen


def _close_names(name: str) -> str:
    close = difflib.get_close_matches(name, _timm().list_models(), n=8, cutoff=0.6)
    return ", ".join(close) if close else "none"


def _guarded(
    name: str, options: dict[str, Any], builder: str, build: Callable[[], nn.Module]
) -> nn.Module:
    """``build()``, with the errors of bad ``options`` turned into UserError."""
    try:
        return build()
    except UserError:
        raise
    except TypeError as e:
        raise UserError(
            f"model.backbone_options: {name} rejects these options {sorted(options)}: {e}"
        ) from None
    except (RuntimeError, ValueError, AssertionError, KeyError) as e:
        raise UserError(
            f"model.backbone: {builder} cannot build {name!r} with features_only=True "
            f"(options {options}): {type(e).__name__}: {e}"
        ) from None


def _create(name: str, options: dict[str, Any], **extra: Any) -> nn.Module:
    timm = _timm()
    return _guarded(
        name,
        options,
        "timm",
        lambda: timm.create_model(name, pretrained=False, features_only=True, **extra, **options),
    )


def _build_timm(name: str, options: dict[str, Any]) -> nn.Module:
    """A timm ``features_only`` model at strides 4, 8, 16, 32, with srcr's attributes set."""
    model = _create(name, options)
    info = model.feature_info
    reductions = [fi["reduction"] for fi in info.info]
    chosen = select_out_indices(reductions)
    if chosen is None:
        raise UserError(
            f"model.backbone: {name} gives features at strides {reductions}; srcr needs one at each "
            f"of {list(STRIDES)}"
        )
    if list(info.out_indices) != chosen:
        model = _create(name, options, out_indices=tuple(chosen))
    got = list(model.feature_info.reduction())
    if got != list(STRIDES):  # should not happen; guards timm models that renumber features
        raise UserError(
            f"model.backbone: {name} with out_indices {chosen} gives strides {got}, "
            f"expected {list(STRIDES)}"
        )
    model.out_channels = list(model.feature_info.channels())
    model.out_strides = list(STRIDES)
    fmt = getattr(model, "output_fmt", "NCHW")
    model.feature_format = str(getattr(fmt, "value", fmt))
    return model


def build_backbone(
    name: str, options: dict[str, Any] | None = None, pretrained: str | None = None
) -> nn.Module:
    """Features-only backbone returning 4 maps at strides 4, 8, 16, 32 (NCHW or, for a few timm
    models, NHWC: see ``feature_format``).

    ``mscan_t/s/b/l`` are built by :func:`~.backbones.mscan.mscan_features` without timm (same keys,
    weights for a seed and outputs as timm's ``features_only`` build). Any other name is a timm
    model, whose ``out_indices`` are chosen from ``feature_info.reduction()``: the deepest feature
    at each stride. The returned module carries ``feature_info``, ``out_channels`` (list of 4 ints),
    ``out_strides`` and ``feature_format`` ('NCHW' or 'NHWC'). ``pretrained``: a local file path
    (see :func:`load_backbone_checkpoint`), never a download.
    """
    options = dict(options or {})
    native = isinstance(name, str) and name in MSCAN_ARCHS
    if not native and (not isinstance(name, str) or not _timm().is_model(name)):
        raise UserError(
            f"model.backbone: unknown timm model {name!r}; close names: {_close_names(str(name))}"
        )
    bad = [k for k in options if k in _RESERVED_OPTIONS]
    if bad:
        raise UserError(
            f"model.backbone_options: {bad} cannot be set (srcr chooses out_indices from the "
            "feature strides; pretrained weights go in model.pretrained as a local path)"
        )
    if native:
        model = _guarded(name, options, "srcr", lambda: mscan_features(name, **options))
    else:
        model = _build_timm(name, options)
    if pretrained is not None:
        load_backbone_checkpoint(model, name, pretrained)
    return model


# --------------------------------------------------------------------------------------------
# Local checkpoints


def _custom_loader(model: nn.Module, name: str) -> Callable[[str], Any] | None:
    """A backbone-specific loader, if the backbone provides one: a ``load_pretrained(path)`` method
    on the model, ``load_mscan_checkpoint`` for MSCAN, or a module-level
    ``load_pretrained(model, path)`` next to the timm entry point."""
    if callable(getattr(model, "load_pretrained", None)):
        return model.load_pretrained
    if name.startswith("mscan_"):
        from .mscan import load_mscan_checkpoint

        return lambda path: load_mscan_checkpoint(model, path)
    try:
        module = __import__(_timm().models.model_entrypoint(name).__module__, fromlist=["_"])
    except Exception:  # pragma: no cover - entry points always have a module
        return None
    fn = getattr(module, "load_pretrained", None)
    if callable(fn):
        return lambda path: fn(model, path)
    return None


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """Tensors of a local checkpoint (.safetensors or torch file); unwraps 'state_dict' / 'model' /
    'state_dict_ema', strips 'module.', and keeps only 'backbone.*' of a whole mmseg segmentor."""
    if not os.path.isfile(path):
        raise UserError(
            f"model.pretrained: {path!r} does not exist (pretrained weights are local files only)"
        )
    from ...engine.checkpoint import checkpoint_damage

    damage = checkpoint_damage(path)  # a srcr checkpoint (a pretraining run) has a sidecar
    if damage:
        raise UserError(f"model.pretrained: {path} is damaged: {damage}")
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            obj: Any = load_file(path, device="cpu")
        else:
            try:
                obj = torch.load(path, map_location="cpu", weights_only=True)
            except pickle.UnpicklingError:
                # mmcv checkpoints carry a 'meta' dict the safe loader may refuse; the file is the
                # user's own local choice
                obj = torch.load(path, map_location="cpu", weights_only=False)
    except UserError:
        raise
    except Exception as e:
        raise UserError(
            f"model.pretrained: {path} cannot be read as a checkpoint ({type(e).__name__}: {e})"
        ) from None
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "state_dict_ema"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if (
        not isinstance(obj, dict)
        or not obj
        or not all(isinstance(v, torch.Tensor) for v in obj.values())
    ):
        raise UserError(
            f"model.pretrained: {path}: expected a state dict of tensors "
            "(or a dict holding one under 'state_dict' / 'model')"
        )
    sd = {k[len("module.") :] if k.startswith("module.") else k: v for k, v in obj.items()}
    if any(k.startswith("backbone.") for k in sd):
        sd = {k[len("backbone.") :]: v for k, v in sd.items() if k.startswith("backbone.")}
    return sd


def _source_key(key: str, sd: dict[str, torch.Tensor]) -> str | None:
    """The checkpoint key of a features-model key. timm's feature wrappers flatten one level of
    Sequential, renaming 'stages.0.x' to 'stages_0.x'; try each '_' of the first name as a '.'."""
    if key in sd:
        return key
    head, _, rest = key.partition(".")
    for i, ch in enumerate(head):
        if ch == "_":
            cand = f"{head[:i]}.{head[i + 1 :]}.{rest}" if rest else f"{head[:i]}.{head[i + 1 :]}"
            if cand in sd:
                return cand
    return None


def load_state_dict_strict(model: nn.Module, sd: dict[str, torch.Tensor], path: str) -> list[str]:
    """Load ``sd`` (full-model key names) into a features-only model. Checkpoint keys of modules the
    wrapper dropped (classifier, final norm, unused stages) are skipped; any missing model key,
    shape mismatch, or unmatched key of a module the wrapper keeps raises UserError.
    Returns the skipped checkpoint keys."""
    target = model.state_dict()
    new_sd, used, missing, mismatched = {}, set(), [], []
    for key, value in target.items():
        src = _source_key(key, sd)
        if src is None:
            if not key.endswith("num_batches_tracked"):
                missing.append(key)
            continue
        used.add(src)
        if sd[src].shape != value.shape:
            mismatched.append(f"{src} {tuple(sd[src].shape)} vs model {tuple(value.shape)}")
        else:
            new_sd[key] = sd[src]
    # A leftover key is fine only if the wrapper dropped its module (classifier, final norm, stages
    # after the last output); a leftover of a module it keeps means the checkpoint does not fit.
    modules = {n for n, _ in model.named_modules()}
    unexpected, skipped = [], []
    for k in sd:
        if k in used:
            continue
        mod = k.rpartition(".")[0]
        kept = bool(mod) and (mod in modules or mod.replace(".", "_", 1) in modules)
        (unexpected if kept else skipped).append(k)
    raise_on_mismatch(f"model.pretrained: {path}", mismatched, missing, unexpected, what="model")
    model.load_state_dict(new_sd, strict=False)
    return skipped


def load_backbone_checkpoint(model: nn.Module, name: str, path: str | os.PathLike) -> None:
    """Load a local checkpoint into a :func:`build_backbone` model: the backbone's own loader if it
    has one (MSCAN: SegNeXt/mmseg or timm key names), else a timm-layout state dict, strictly."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(
            f"model.pretrained: {path!r} does not exist (pretrained weights are local files only)"
        )
    loader = _custom_loader(model, name)
    if loader is not None:
        loader(path)
        return
    load_state_dict_strict(model, read_state_dict(path), path)
