"""The model zoo: backbones, the FPN decoder with its alignment and context slots, and the heads."""

from . import align, backbones, context  # noqa: F401  (imports register every module)
from .backbones.build import build_backbone  # noqa: E402,F401
from .registry import ALIGN_MODULES, CONTEXT_MODULES, register_align, register_context  # noqa: F401
from .segmentor import Segmentor, build_model  # noqa: E402,F401
