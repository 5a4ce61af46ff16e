"""Fixtures shared by several test modules (helpers that are not fixtures live in the *_helpers.py
and *_fixtures.py modules beside this one)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def syn_root(tmp_path_factory):
    from srcr.data.synthetic_gen import ensure_synthetic

    root = tmp_path_factory.mktemp("syn") / "synthetic"
    ensure_synthetic(root, 8, 4, (32, 64), 0, workers=1, progress=False)
    return root


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
