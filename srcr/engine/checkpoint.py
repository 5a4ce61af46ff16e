"""Training checkpoints: RUN_DIR/checkpoints/iter_NNNNNNN.pth (model, optimizer, iteration, config,
RNG state), the newest K kept, plus final.pth (weights, iteration, config) once a run completes.
Every file is written atomically, so a killed run leaves only complete checkpoints behind."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..utils.io import torch_save

_ITER_RE = re.compile(r"^iter_(\d{7,})\.pth$")
FINAL_NAME = "final.pth"


def iter_name(iteration: int) -> str:
    return f"iter_{iteration:07d}.pth"


def list_checkpoints(ckpt_dir: str | Path) -> list[tuple[int, Path]]:
    """(iteration, path) of the iteration checkpoints, oldest first."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return []
    out = []
    for p in ckpt_dir.iterdir():
        m = _ITER_RE.match(p.name)
        if m and p.is_file():
            out.append((int(m.group(1)), p))
    return sorted(out)


def latest_checkpoint(ckpt_dir: str | Path) -> Path | None:
    ckpts = list_checkpoints(ckpt_dir)
    return ckpts[-1][1] if ckpts else None


def save_checkpoint(ckpt_dir: str | Path, iteration: int, state: dict, keep: int) -> Path:
    """Write iter_NNNNNNN.pth atomically, then delete all but the newest ``keep`` ones."""
    ckpt_dir = Path(ckpt_dir)
    path = ckpt_dir / iter_name(iteration)
    torch_save(state, path)
    for _, old in list_checkpoints(ckpt_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def save_final(ckpt_dir: str | Path, state: dict) -> Path:
    path = Path(ckpt_dir) / FINAL_NAME
    torch_save(state, path)
    return path


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict:
    import torch

    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # corrupt file, foreign pickle, ...
        raise UserError(f"cannot read checkpoint {path}: {type(e).__name__}: {e}") from None
    if not isinstance(obj, dict):
        raise UserError(f"checkpoint {path}: expected a dict, got {type(obj).__name__}")
    return obj


def model_state_from(ckpt: dict, path: str | Path) -> dict:
    """The model state dict inside a checkpoint (ours: 'model'; mmseg: 'state_dict'; or a bare one)."""
    for key in ("model", "state_dict"):
        if key in ckpt and isinstance(ckpt[key], dict):
            return ckpt[key]
    import torch

    if ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        return ckpt
    raise UserError(f"checkpoint {path}: no model weights found (expected a 'model' or 'state_dict' entry)")
