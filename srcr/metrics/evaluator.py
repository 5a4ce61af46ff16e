"""SegEvaluator: region, boundary (mBF, Boundary IoU), trimap and optional GSCNN-protocol metrics
with per-image counts for bootstrapping (definitions: docs/metrics.md)."""

from __future__ import annotations

import json
import math
import threading
import zipfile
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

import cv2
import numpy as np

from ..errors import UserError
from ..utils.io import atomic_path
from . import summary as _summary
from .biou import inner_bands
from .boundary import bf_counts
from .confusion import joint_histogram, reduce_histogram
from .gscnn import GSCNN_FRACTIONS, check_gscnn_fractions, gscnn_counts
from .maps import (
    BAD,
    MAX_CLASSES,
    VOID,
    as_numpy,
    bad_values,
    class_boundaries,
    single_class_reference,
    to_codes,
    trimap_boundary,
)
from .trimap import width_index

FORMAT = "srcr-per-image-counts/1"


def _numbers(values, what: str, positive: bool = False) -> tuple:
    try:
        out = tuple(float(v) if not float(v).is_integer() else int(v) for v in values)
    except (TypeError, ValueError):
        raise UserError(f"{what}: expected a list of numbers, got {values!r}") from None
    for v in out:
        if not math.isfinite(v) or v < 0 or (positive and v <= 0):
            raise UserError(f"{what}: expected numbers {'>' if positive else '>='} 0, got {v!r}")
    if len(set(out)) != len(out):
        raise UserError(f"{what}: duplicate values in {list(out)}")
    return out


class _Background:
    """Runs one function in a thread (OpenCV releases the GIL), so the distance transform of the
    trimap overlaps the numpy work of the boundary metrics on a second core."""

    def __init__(self, fn, *args, threaded: bool):
        self._result = self._error = None
        if threaded:
            self._thread = threading.Thread(target=self._run, args=(fn, args), daemon=True)
            self._thread.start()
        else:
            self._thread = None
            self._run(fn, args)

    def _run(self, fn, args):
        try:
            self._result = fn(*args)
        except BaseException as e:  # re-raised in the caller's thread
            self._error = e

    def result(self):
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error
        return self._result


class SegEvaluator:
    """Accumulates per-image counts; ``compute()`` turns them into the metric dictionary.

    ``update(pred, label)`` takes class-index maps (numpy or torch, any device), H x W or B x H x W,
    predictions at label resolution. Labels must be classes 0..C-1 or ``ignore_index``; predictions
    must be classes wherever the label is not ignored. Keys of ``compute()`` (scores in percent):
    ``aAcc mIoU mAcc IoU Acc``; per tolerance t ``mBF@t mBP@t mBR@t BF@t BP@t BR@t``;
    ``mBIoU BIoU``; ``trimap`` {w: {band_mIoU, band_aAcc, interior_mIoU, interior_aAcc,
    error_share, band_share, band_IoU, interior_IoU}}; with ``gscnn=True`` ``gscnn_F@px`` (GSCNN
    protocol, labelled in ``gscnn_protocol``); ``left_out`` (class indices left out of each mean).
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int = 255,
        bf_tolerances=(1, 3, 5),
        biou_width: float | None = 3,
        trimap_widths=(1, 2, 4, 8, 16, 32),
        gscnn: bool = False,
        class_names: Iterable[str] | None = None,
        gscnn_fractions=GSCNN_FRACTIONS,
    ):
        if not isinstance(num_classes, (int, np.integer)) or not 1 <= num_classes <= MAX_CLASSES:
            raise UserError(
                f"num_classes must be an integer in 1..{MAX_CLASSES}, got {num_classes!r}"
            )
        if not isinstance(ignore_index, (int, np.integer)) or 0 <= ignore_index < num_classes:
            raise UserError(
                f"ignore_index must be an integer outside the classes 0..{num_classes - 1}, "
                f"got {ignore_index!r}"
            )
        names = list(class_names) if class_names is not None else None
        if names is not None and len(names) != num_classes:
            raise UserError(
                f"class_names has {len(names)} entries, expected num_classes={num_classes}"
            )
        if biou_width is not None:
            biou_width = _numbers([biou_width], "biou_width")[0]
        if len(trimap_widths) > 60:
            raise UserError(f"trimap_widths: at most 60 widths, got {len(trimap_widths)}")
        fractions = list(_numbers(gscnn_fractions, "gscnn_fractions", positive=True))
        check_gscnn_fractions(fractions)
        self.config = {
            "num_classes": int(num_classes),
            "ignore_index": int(ignore_index),
            "bf_tolerances": list(_numbers(bf_tolerances, "bf_tolerances")),
            "biou_width": biou_width,
            "trimap_widths": sorted(
                _numbers(trimap_widths, "trimap_widths")
            ),  # band k = width index <= k
            "gscnn": bool(gscnn),
            "gscnn_fractions": fractions,
            "class_names": names,
        }
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.reset()

    # ------------------------------------------------------------------------------------------
    def reset(self) -> None:
        self._records: list[dict[str, np.ndarray]] = []
        self.names: list[str] = []
        self.confusion = np.zeros((self.num_classes, self.num_classes), np.int64)

    def __len__(self) -> int:
        return len(self._records)

    def update(self, pred, label, names: Iterable[str] | str | None = None) -> None:
        """Add one image (H x W) or a batch (B x H x W); ``names`` optionally identifies them."""
        pred = as_numpy(pred, "pred")
        label = as_numpy(label, "label")
        if pred.shape != label.shape:
            raise UserError(
                f"pred shape {tuple(pred.shape)} differs from label shape {tuple(label.shape)} "
                "(predict at label resolution: resize the logits, then argmax)"
            )
        if label.ndim == 2:
            pred, label = pred[None], label[None]
        elif label.ndim != 3:
            raise UserError(
                f"expected H x W or B x H x W class maps, got shape {tuple(label.shape)}"
            )
        if isinstance(names, str):
            names = [names]
        names = list(names) if names is not None else [None] * label.shape[0]
        if len(names) != label.shape[0]:
            raise UserError(f"{len(names)} names for a batch of {label.shape[0]} images")
        for p, l, n in zip(pred, label, names):
            self._update_one(p, l, n)

    def _update_one(self, pred: np.ndarray, label: np.ndarray, name: str | None) -> None:
        C, cfg = self.num_classes, self.config
        if label.size == 0:
            raise UserError(f"empty image of shape {tuple(label.shape)}")
        lab = to_codes(label, C, self.ignore_index, VOID)
        if (lab == BAD).any():
            raise UserError(
                f"label contains values {bad_values(label, lab == BAD)} that are neither classes "
                f"0..{C - 1} nor ignore_index={self.ignore_index}"
            )
        prd = to_codes(pred, C, self.ignore_index, BAD)
        nonvoid = lab != VOID
        wrong = (prd == BAD) & nonvoid
        if wrong.any():
            raise UserError(
                f"pred contains values {bad_values(pred, wrong)} outside the classes 0..{C - 1} "
                "at non-ignored pixels"
            )

        widths = cfg["trimap_widths"]
        if widths:
            widx = _Background(
                width_index, trimap_boundary(lab), widths, threaded=cv2.getNumThreads() > 1
            )
        else:
            widx = _Background(np.zeros, lab.shape, np.uint8, threaded=False)
        bg, bp = class_boundaries(lab, prd)
        ref_g, ref_p = single_class_reference(bg), single_class_reference(bp)
        rec = bf_counts(bg, bp, ref_g, ref_p, cfg["bf_tolerances"], C)
        if cfg["biou_width"] is not None:
            band_g, band_p = inner_bands(lab, prd, nonvoid, ref_g, ref_p, cfg["biou_width"])
        else:
            band_g = band_p = np.zeros(lab.shape, bool)
        if cfg["gscnn"]:
            rec.update(gscnn_counts(lab, prd, C, cfg["gscnn_fractions"]))
        counts, conf = reduce_histogram(
            joint_histogram(lab, prd, widx.result(), band_g, band_p, C, len(widths))
        )
        rec.update(counts)
        rec["hw"] = np.array(lab.shape, np.int64)
        self._records.append({k: np.asarray(v) for k, v in rec.items()})
        self.names.append("" if name is None else str(name))
        self.confusion += conf

    # ------------------------------------------------------------------------------------------
    @property
    def per_image(self) -> dict[str, np.ndarray]:
        """Per-image counts, each array with a leading image axis (int64)."""
        return _stack(self._records, self.config)

    def compute(self) -> dict:
        """The metric dictionary over all images seen (see the class docstring)."""
        if not self._records:
            raise UserError("no images were evaluated")
        return _summary.summarize(self.per_image, self.config)

    # ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume or merge: config, per-image counts, names, confusion."""
        return {
            "format": FORMAT,
            "config": dict(self.config),
            "counts": self.per_image,
            "names": list(self.names),
            "confusion": self.confusion.copy(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.reset()
        self.merge(state)

    def merge(self, other: SegEvaluator | Mapping[str, Any]) -> SegEvaluator:
        """Append another evaluator's images (e.g. from another rank); configs must match."""
        state = other.state_dict() if isinstance(other, SegEvaluator) else other
        if state.get("format") != FORMAT:
            raise UserError(
                f"not a SegEvaluator state (format {state.get('format')!r}, expected {FORMAT!r})"
            )
        theirs = _normalised_config(state["config"])
        if theirs != _normalised_config(self.config):
            raise UserError(
                f"cannot merge evaluators with different settings: {theirs} vs {self.config}"
            )
        counts = state["counts"]
        n = len(state["names"])
        for i in range(n):
            self._records.append({k: np.asarray(v[i]) for k, v in counts.items()})
        self.names.extend(state["names"])
        self.confusion += np.asarray(state["confusion"], np.int64)
        return self

    def save_per_image(self, path) -> None:
        """Write the per-image counts, names and config to ``path`` (npz, atomically)."""
        arrays = {f"counts/{k}": v for k, v in self.per_image.items()}
        arrays["names"] = np.array(self.names, dtype=str)
        arrays["confusion"] = self.confusion
        arrays["config_json"] = np.array(json.dumps(self.config))
        arrays["format"] = np.array(FORMAT)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **arrays)

    @classmethod
    def from_file(cls, path) -> SegEvaluator:
        """An evaluator holding the counts saved by :meth:`save_per_image`."""
        state = load_per_image(path)
        cfg = state["config"]
        ev = cls(
            cfg["num_classes"],
            cfg["ignore_index"],
            cfg["bf_tolerances"],
            cfg["biou_width"],
            cfg["trimap_widths"],
            cfg["gscnn"],
            cfg["class_names"],
            cfg["gscnn_fractions"],
        )
        ev.merge(state)
        return ev


def _normalised_config(cfg: Mapping) -> dict:
    return json.loads(json.dumps(dict(cfg)))


def _stack(records: list[dict], config: Mapping) -> dict[str, np.ndarray]:
    if records:
        return {k: np.stack([r[k] for r in records]).astype(np.int64) for k in records[0]}
    C, T, K = config["num_classes"], len(config["bf_tolerances"]), len(config["trimap_widths"])
    shapes = {
        "conf_tp": (C,),
        "conf_gt": (C,),
        "conf_pred": (C,),
        "band_tp": (K, C),
        "band_gt": (K, C),
        "band_pred": (K, C),
        "bf_np": (C,),
        "bf_ng": (C,),
        "bf_tpp": (T, C),
        "bf_tpg": (T, C),
        "biou_inter": (C,),
        "biou_g": (C,),
        "biou_p": (C,),
        "hw": (2,),
    }
    if config["gscnn"]:
        F = len(config["gscnn_fractions"])
        shapes.update(
            gscnn_tau=(F,), gscnn_np=(C,), gscnn_ng=(C,), gscnn_tpp=(F, C), gscnn_tpg=(F, C)
        )
    return {k: np.zeros((0,) + s, np.int64) for k, s in shapes.items()}


def load_per_image(path) -> dict[str, Any]:
    """Read a file written by ``SegEvaluator.save_per_image``: a state dict (``config``,
    ``counts``, ``names``, ``confusion``) usable with :func:`summarize` and ``merge``."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if "format" not in z.files or str(z["format"]) != FORMAT:
                raise UserError(f"{path}: not a per-image counts file (expected format {FORMAT})")
            return {
                "format": FORMAT,
                "config": json.loads(str(z["config_json"])),
                "counts": {k.split("/", 1)[1]: z[k] for k in z.files if k.startswith("counts/")},
                "names": [str(s) for s in z["names"]],
                "confusion": z["confusion"],
            }
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as e:
        # a truncated or damaged file (zipfile names neither the file nor the cause)
        raise UserError(
            f"{path}: cannot read per-image counts ({type(e).__name__}: {e}); "
            f"re-run srcr evaluate for it"
        ) from None
