"""One list of module names: srcr.module_names, the registries and the config schema agree, and
every alignment module records exactly the offset kinds it declares."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from srcr import module_names
from srcr.models.registry import ALIGN_MODULES, CONTEXT_MODULES, register_align

SCHEMA = Path(__file__).resolve().parents[1] / "srcr" / "schemas" / "config.schema.json"


def _model_enum(key: str) -> list[str]:
    schema = json.loads(SCHEMA.read_text())
    return schema["properties"]["model"]["properties"][key]["enum"]


def test_schema_enums_equal_the_registries():
    assert sorted(_model_enum("align")) == sorted(ALIGN_MODULES) == sorted(module_names.ALIGNS)
    assert (
        sorted(_model_enum("context")) == sorted(CONTEXT_MODULES) == sorted(module_names.CONTEXTS)
    )


def test_offset_names_derive_from_the_declarations():
    assert module_names.OFFSET_ALIGNS == ("fam", "alignfa", "srm")
    assert module_names.PRIMARY == {"fam": "flow", "alignfa": "high", "srm": "refined"}
    assert module_names.SECONDARY == {"alignfa": "low", "srm": "initial"}


@pytest.mark.parametrize("name", sorted(module_names.ALIGNS))
def test_each_alignment_module_records_the_offsets_it_declares(name):
    cls = ALIGN_MODULES[name]
    assert cls.offset_kinds == module_names.ALIGNS[name]
    m = cls(4).eval()
    torch.manual_seed(0)
    with torch.no_grad():
        m(torch.randn(1, 4, 8, 10), torch.randn(1, 4, 4, 5))
    recorded = m.last_offsets or {}
    offsets = {
        k for k, t in recorded.items() if t.shape[1] == 2
    }  # (B, 2, H, W) fields, not weights
    assert offsets == set(cls.offset_kinds)


def test_an_undeclared_module_cannot_register():
    with pytest.raises(KeyError, match="'mine' is not declared in srcr/module_names.py"):
        register_align("mine")
