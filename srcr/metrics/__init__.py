"""Segmentation metrics of the suite (definitions: docs/metrics.md): mIoU/mAcc/aAcc from a
set-level confusion matrix, exact-Euclidean boundary F-score (mBF@tau), Boundary IoU, trimap
band/interior scores and a GSCNN-protocol compatibility mode, with per-image counts for bootstrap."""

from .evaluator import SegEvaluator, load_per_image
from .gscnn import GSCNN_FRACTIONS, gscnn_tolerances
from .summary import image_weights, summarize

__all__ = [
    "SegEvaluator",
    "summarize",
    "load_per_image",
    "image_weights",
    "GSCNN_FRACTIONS",
    "gscnn_tolerances",
]
