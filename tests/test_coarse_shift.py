"""The control handicap (model.coarse_shift): a known-answer shift, per-image directions that are
fixed by the image, and the model switch with its error."""

from __future__ import annotations

import pytest
import torch

from srcr.errors import UserError
from srcr.models import build_model
from srcr.models.decoder import shift_coarse, shift_directions


def ramp(batch: int = 2) -> torch.Tensor:
    i = torch.arange(5.0).view(5, 1)
    j = torch.arange(6.0).view(1, 6)
    return (10 * i + j).expand(batch, 3, 5, 6).clone()


@pytest.mark.parametrize("sy, sx", [(1, 1), (-1, 1), (1, -1), (-1, -1)])
def test_shift_moves_content_by_the_fraction_of_a_cell_in_the_given_direction(sy, sx):
    x = ramp()
    out = shift_coarse(x, 0.5, torch.tensor([[sy, sx], [sy, sx]]))
    # a linear ramp resampled at (i + 0.5 sy, j + 0.5 sx): exact away from the replicated border
    assert torch.allclose(out[..., 1:-1, 1:-1], x[..., 1:-1, 1:-1] + 5 * sy + 0.5 * sx)


@pytest.mark.parametrize("shift", [1.0, 1.5, 2.25])
def test_shifts_of_a_cell_or_more(shift):
    x = ramp()
    out = shift_coarse(x, shift, torch.tensor([[1, -1], [1, -1]]))
    # exact where neither sampled neighbour is clamped at the border
    assert torch.allclose(out[..., :1, 3:], x[..., :1, 3:] + 10 * shift - shift)


def test_shift_is_per_sample_and_zero_is_the_identity():
    x = ramp()
    out = shift_coarse(x, 0.25, torch.tensor([[1, 1], [-1, -1]]))
    assert torch.allclose(out[0, :, 2, 2], x[0, :, 2, 2] + 2.75)
    assert torch.allclose(out[1, :, 2, 2], x[1, :, 2, 2] - 2.75)
    assert shift_coarse(x, 0.0, torch.ones(2, 2)) is x


def test_directions_are_fixed_by_the_image_and_cover_all_four():
    g = torch.Generator().manual_seed(0)
    images = torch.randn(400, 3, 16, 16, generator=g)
    d = shift_directions(images)
    assert torch.equal(d, shift_directions(images.clone()))
    assert torch.equal(d[:10], shift_directions(images[:10]))  # per image, not per batch
    assert set(d.unique().tolist()) == {-1, 1}
    combos = {tuple(r) for r in d.tolist()}
    assert combos == {(1, 1), (1, -1), (-1, 1), (-1, -1)}
    assert abs(d.float().mean()) < 0.15


def _model(shift: float):
    cfg = {
        "backbone": "mscan_t",
        "backbone_options": {"embed_dims": [16, 32, 64, 128], "depths": [1, 1, 1, 1]},
        "fpn_dim": 16,
        "embed_dim": 0,
        "aux_head": False,
        "num_classes": 3,
        "align": "bilinear",
        "context": "none",
        "coarse_shift": shift,
    }
    torch.manual_seed(0)
    return build_model(cfg).eval()


def test_model_switch_changes_the_output_and_keeps_the_weights():
    clean, shifted = _model(0.0), _model(0.5)
    assert all(
        torch.equal(a, b)
        for a, b in zip(clean.state_dict().values(), shifted.state_dict().values())
    )
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(clean(x), shifted(x))
        assert torch.equal(shifted(x), shifted(x))


@pytest.mark.parametrize("bad", [4.5, -0.1, "half", True])
def test_bad_shift_is_a_clear_error(bad):
    with pytest.raises(
        UserError, match=r"model.coarse_shift: expected a shift in coarse cells in \[0, 4\]"
    ):
        _model(bad)
