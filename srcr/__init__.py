"""srcr: a reproducible benchmarking and ablation suite for semantic segmentation.

Reconstructs "A Deep Semantic Segmentation Network with Semantic and Contextual Refinements"
(arXiv 2412.08671): the Semantic Refinement Module (SRM) and the Contextual Refinement Module (CRM),
with every ablation partner, the datasets, metrics and training engine needed to regenerate its tables.
"""

__version__ = "0.1.0"

# `import srcr` stays cheap (the workflow imports srcr.suite on every job start, torch and timm
# cost seconds). `import srcr.models` loads torch but not timm: the MSCAN backbones are built
# natively, and timm is imported only for other backbone names. `import
# srcr.models.backbones.mscan_timm` registers MSCAN with timm's registry, so that
# `timm.create_model("mscan_s", features_only=True)` works after it. `srcr.models` is also
# reachable as an attribute, imported on first use.


def __getattr__(name: str):
    if name == "models":
        import importlib

        return importlib.import_module(".models", __name__)
    raise AttributeError(f"module 'srcr' has no attribute {name!r}")
