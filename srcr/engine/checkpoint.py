"""Training checkpoints: RUN_DIR/checkpoints/iter_NNNNNNN.pth (model, optimizer, iteration, config,
RNG state), the newest K kept, plus final.pth (weights, iteration, config) once a run completes.
Every file is written atomically, so a killed run leaves only complete checkpoints behind, and each
has a sidecar NAME.sha256 (`sha256sum -c` reads it), written before the checkpoint takes its name:
loading a checkpoint verifies it, so a damaged file is named, never silently used."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..utils.io import atomic_path, file_sha256, write_text

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
    _save_with_checksum(state, path)
    for _, old in list_checkpoints(ckpt_dir)[:-keep]:
        old.unlink(missing_ok=True)
        checksum_path(old).unlink(missing_ok=True)
    return path


def save_final(ckpt_dir: str | Path, state: dict) -> Path:
    path = Path(ckpt_dir) / FINAL_NAME
    _save_with_checksum(state, path)
    return path


def checksum_path(path: str | Path) -> Path:
    """The sidecar holding a checkpoint's sha256: NAME.sha256."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def _save_with_checksum(state: dict, path: Path) -> None:
    """torch.save to a temporary file, its sha256 to the sidecar, then the rename: a checkpoint
    under its own name always has its checksum beside it."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(state, tmp)
        write_text(checksum_path(path), f"{file_sha256(tmp)}  {path.name}\n")


def checkpoint_damage(path: str | Path, sha: str | None = None) -> str | None:
    """Why ``path`` is not the checkpoint that was written (its sha256, or ``sha`` if given, differs
    from the sidecar's), or None. A checkpoint without a sidecar (written before sidecars, or by
    another code base) cannot be checked here: None."""
    path = Path(path)
    side = checksum_path(path)
    if not side.is_file():
        return None
    recorded = side.read_text().split()[:1]
    actual = sha or file_sha256(path)
    if recorded != [actual]:
        want = recorded[0][:12] + "..." if recorded else "(nothing)"
        return (
            f"its sha256 {actual[:12]}... differs from the {want} recorded in {side.name} when "
            f"it was written ({path.stat().st_size} bytes now)"
        )
    return None


def load_checkpoint(path: str | Path, map_location: Any = "cpu", sha: str | None = None) -> dict:
    """A checkpoint, verified against its sidecar checksum (``sha``: its sha256, if already known);
    a UserError naming the file when it is damaged or unreadable."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    damage = checkpoint_damage(path, sha)
    if damage:
        raise UserError(f"checkpoint {path} is damaged: {damage}")
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
    raise UserError(
        f"checkpoint {path}: no model weights found (expected a 'model' or 'state_dict' entry)"
    )


def final_damage(path: Path) -> str | None:
    """Why a run's final.pth cannot mark it complete (damaged, or unreadable where it has no
    sidecar), or None."""
    damage = checkpoint_damage(path)
    if damage is None and not checksum_path(path).is_file():
        try:
            load_checkpoint(path)
        except UserError as e:
            damage = str(e)
    return damage
