"""Context modules (one per file), each registered in CONTEXT_MODULES by decorator.

Shared pieces: attention.py (DANet position/channel attention, criss-cross attention,
Disentangled Non-Local), _common.py (option checks -> UserError)."""

from . import none, ppm, dappm, dam, ccam, ccam_dran, crm  # noqa: F401  (imports register the modules)
