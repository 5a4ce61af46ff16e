"""Atomic writes: the result appears whole or not at all, with ordinary (umask) permissions."""

from __future__ import annotations

import os

import pytest

from srcr.utils.io import atomic_open, write_text


def test_written_file_gets_umask_permissions_not_mkstemps_0600(tmp_path):
    old = os.umask(0o022)
    try:
        write_text(tmp_path / "a.md", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.md").stat().st_mode & 0o777 == 0o644


def test_failed_write_leaves_neither_file_nor_temporary(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_open(tmp_path / "b.json") as f:
            f.write("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
