"""Context modules (one per file), each registered in CONTEXT_MODULES by decorator.

Shared pieces: attention.py (DANet position/channel attention, criss-cross attention,
Disentangled Non-Local), _common.py (option checks -> UserError)."""

from . import ccam, ccam_dran, crm, dam, dappm, none, ppm  # noqa: F401  (imports register the modules)
