"""srcr's own backbones, built without timm (importing this package does not import timm).

MSCAN's timm registration (``timm.create_model("mscan_s", ...)``) is in
:mod:`srcr.models.backbones.mscan_timm`: import it to register ``mscan_t/s/b/l`` with timm.
"""

from .mscan import MSCAN, MSCANFeatures, load_mscan_checkpoint, mscan_features  # noqa: F401
