"""srcr: a reproducible benchmarking and ablation suite for semantic segmentation.

Reconstructs "A Deep Semantic Segmentation Network with Semantic and Contextual Refinements"
(arXiv 2412.08671): the Semantic Refinement Module (SRM) and the Contextual Refinement Module (CRM),
with every ablation partner, the datasets, metrics and training engine needed to regenerate its tables.
"""

__version__ = "0.1.0"

# Importing the models registers the MSCAN backbones with timm's registry, so that
# `timm.create_model("mscan_s", features_only=True)` works after `import srcr`.
from . import models  # noqa: E402,F401
