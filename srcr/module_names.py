"""The decoder slots' module names, in one place that imports no torch.

`srcr report`, the workflow's output lists (srcr.report.outputs) and `srcr evaluate` read these
without building a model; the registries (srcr.models.registry) accept only the names declared
here, and a test checks that the config schema's enums list the same names.

``ALIGNS`` maps an alignment module to the offset kinds it records in ``last_offsets``, in fine-grid
pixels: the first is its *primary* kind, the offsets it samples the coarse map with (the
offset-correctness tables report it), the second, if any, is drawn beside it in the offset figures.
An empty tuple: the module predicts no offsets. A new module is added here, in the schema's enum
and in its own file (docs/architecture.md, "Adding an alignment or context module").
"""

from __future__ import annotations

ALIGNS: dict[str, tuple[str, ...]] = {
    "bilinear": (),
    "fam": ("flow",),
    "alignfa": ("high", "low"),
    "srm": ("refined", "initial"),
}
CONTEXTS: tuple[str, ...] = ("none", "ppm", "dappm", "dam", "ccam", "ccam_dran", "crm")

# alignment modules that predict offsets (evaluate records them; the report draws and scores them)
OFFSET_ALIGNS: tuple[str, ...] = tuple(name for name, kinds in ALIGNS.items() if kinds)
PRIMARY: dict[str, str] = {name: kinds[0] for name, kinds in ALIGNS.items() if kinds}
SECONDARY: dict[str, str] = {name: kinds[1] for name, kinds in ALIGNS.items() if len(kinds) > 1}
