"""Common random numbers: for one seed every variant of the grid starts from the same backbone
weights and sees the same data order and augmentation, so differences between variants are
paired by seed. This fails if a variant's overrides (or the model builder) stop preserving that."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from srcr.config import flatten, load_config
from srcr.suite.grid import load_grid
from srcr.train import build_train_dataset, init_model

REPO = Path(__file__).resolve().parents[1]
GRID = load_grid(REPO / "ablations" / "grid.yaml")
SMALL = [
    "data.synthetic={n_train: 8, n_val: 4, size: [32, 64], seed: 0}",
    "data.train_pipeline.scale=[32, 64]",
    "data.train_pipeline.crop_size=[32, 32]",
]


def variant_cfg(variant: str, seed: int, root: Path | None = None) -> dict:
    extra = [f"data.root={root}"] if root else []
    return load_config(
        REPO / "config" / "default.yaml",
        SMALL + extra + list(GRID.variants[variant].overrides) + [f"seed={seed}"],
    )


def backbone_state(cfg: dict) -> dict:
    return {k: v.clone() for k, v in init_model(cfg).backbone.state_dict().items()}


@pytest.mark.parametrize("seed", [0, 3])
def test_every_variant_starts_from_the_same_backbone_weights(seed):
    ref = backbone_state(variant_cfg("bilinear_none", seed))
    for v in GRID.variants:
        state = backbone_state(variant_cfg(v, seed))
        assert state.keys() == ref.keys()
        assert all(torch.equal(state[k], ref[k]) for k in ref), v
    other = backbone_state(variant_cfg("bilinear_none", seed + 1))
    assert not all(torch.equal(other[k], ref[k]) for k in ref)  # the seed does change them


def test_no_variant_touches_what_decides_the_sample_stream():
    # data order and augmentation are a function of seed, data.* and the batch size alone
    base = flatten(variant_cfg("bilinear_none", 0))
    decisive = [k for k in base if k == "seed" or k.startswith("data.") or k == "train.batch_size"]
    for v in GRID.variants:
        cfg = flatten(variant_cfg(v, 0))
        assert {k: cfg[k] for k in decisive} == {k: base[k] for k in decisive}, v


def test_every_variant_sees_the_same_batches(tmp_path):
    from srcr.engine.sampler import InfiniteSeededSampler

    def first_batches(variant: str, n: int = 3):
        cfg = variant_cfg(variant, 0, tmp_path / "syn")
        ds = build_train_dataset(cfg)
        sampler = iter(InfiniteSeededSampler(len(ds), cfg["seed"], cfg["train"]["batch_size"]))
        return [ds[next(sampler)] for _ in range(n * cfg["train"]["batch_size"])]

    ref = first_batches("bilinear_none")
    for v in ("srm_crm", "fam_crm", "srm_crm_ce", "srm_dappm"):
        got = first_batches(v)
        assert all(
            torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
            for a, b in zip(ref, got)
        ), v


def decoder_state(cfg: dict) -> dict:
    return {
        k: v.clone()
        for k, v in init_model(cfg).state_dict().items()
        if not k.startswith("backbone.") and v.is_floating_point()
    }


@pytest.mark.parametrize("seed", [0, 3])
def test_decoder_parts_that_variants_share_start_from_the_same_weights(seed):
    # without named init streams a different context module (built first) shifted every later
    # draw: srm_crm and bilinear_none then started their laterals, fusion and heads unrelated
    ref = decoder_state(variant_cfg("bilinear_none", seed))
    for v in ("srm_crm", "fam_crm", "srm_dappm", "srm_crm_k5", "bilinear_crm_shift"):
        state = decoder_state(variant_cfg(v, seed))
        shared = [k for k in ref if k in state and state[k].shape == ref[k].shape]
        assert {"decoder.fuse.0.weight", "head.1.weight", "decoder.laterals.2.0.weight"} <= set(
            shared
        ), v
        assert all(torch.equal(state[k], ref[k]) for k in shared), v
    other = decoder_state(variant_cfg("bilinear_none", seed + 1))
    assert not torch.equal(
        other["decoder.fuse.0.weight"], ref["decoder.fuse.0.weight"]
    )  # the seed does
    assert not torch.equal(other["head.1.weight"], ref["head.1.weight"])


def test_init_streams_restore_the_global_generator_and_are_inert_outside_a_build():
    from srcr.models.init_streams import init_stream, seeded_init

    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    with seeded_init(123):
        with init_stream("a"):
            a = torch.rand(3)
        with init_stream("a"):
            again = torch.rand(3)
        with init_stream("b"):
            b = torch.rand(3)
    assert torch.equal(a, again) and not torch.equal(a, b)
    assert torch.equal(torch.rand(3), expected)  # the global stream went on as if nothing was drawn
    torch.manual_seed(5)
    with init_stream("a"):  # no seeded_init: the global generator, as any torch module
        assert torch.equal(torch.rand(3), expected)
