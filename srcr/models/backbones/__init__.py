"""Backbones registered with timm's model registry (importing this package registers them)."""

from .mscan import MSCAN, load_mscan_checkpoint  # noqa: F401  (registers mscan_t/s/b/l with timm)
