"""Named initialisation streams: for one seed, a decoder part of a given name starts from the same
weights in every variant.

Without them every part draws from torch's one global generator in construction order, so a
variant that builds a different context module (built first) or an alignment module with
parameters shifts the draws of every part after it: the laterals, the FPN convs, the fusion and
the heads of ``srm_crm`` and ``bilinear_none`` started from unrelated weights at the same seed.
Inside ``seeded_init(base)``, each ``init_stream(name)`` block draws from a generator seeded by
(base, name) alone, so what two variants share starts equal and the paired design (docs/
statistics.md) also pairs the decoder's initialisation (tests/test_pairing.py).
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterator

import torch

from ..utils.seed import derive_seed

_BASES: list[int] = []


@contextlib.contextmanager
def seeded_init(base: int) -> Iterator[None]:
    """Make the ``init_stream`` blocks inside draw from streams derived from ``base``."""
    _BASES.append(int(base))
    try:
        yield
    finally:
        _BASES.pop()


@contextlib.contextmanager
def init_stream(name: str) -> Iterator[None]:
    """Build what is inside from the stream ``name`` (outside ``seeded_init``: the global generator,
    so a module built on its own behaves as any torch module). The global CPU generator's state is
    restored afterwards."""
    if not _BASES:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(_BASES[-1], zlib.crc32(name.encode())))
        yield
