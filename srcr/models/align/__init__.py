"""Alignment modules (one per file), each registered in ALIGN_MODULES by decorator.

Every module is built as ``cls(channels, **options)`` and fuses a lateral map with the coarser
top-down map: ``forward(low: BxCxHxW, high: BxCxhxw) -> BxCxHxW``. Offset-predicting modules keep
the detached offsets of their last forward in ``last_offsets`` (see docs/architecture.md), and
name the submodules whose output is an offset or flow in the class attribute ``offset_layers``
(``train.optimizer.offset_lr_mult`` scales their lr; srcr.optim.split_offset_groups).
"""

from . import alignfa, bilinear, fam, srm  # noqa: F401  (imports register the modules)
from .alignfa import AlignFA  # noqa: F401
from .bilinear import BilinearAlign  # noqa: F401
from .fam import FAM  # noqa: F401
from .srm import SRM, neighbour_refine  # noqa: F401
