"""Alignment modules: known answers (identity, one-pixel shifts), the neighbour refinement against a
brute-force reference, the recorded offsets, and option checks."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from srcr.errors import UserError
from srcr.models import ALIGN_MODULES
from srcr.models.align.grid import identity_grid, pixel_norm, warp
from srcr.models.align.srm import SRM, neighbour_refine
from srcr.models.layers import resize

C = 6
# odd, non-square, not an exact factor of 2 apart
SIZES = [((13, 21), (7, 11)), ((9, 5), (4, 3)), ((6, 10), (6, 10))]


def _maps(low_hw, high_hw, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    low = torch.randn(batch, C, *low_hw, generator=g)
    high = torch.randn(batch, C, *high_hw, generator=g)
    return low, high


def _bilinear_reference(low, high):
    return low + F.interpolate(high, size=low.shape[-2:], mode="bilinear", align_corners=True)


class ConstOffset(nn.Module):
    """Stands in for an offset head: a constant (x, y) offset at every pixel."""

    def __init__(self, dx: float, dy: float):
        super().__init__()
        self.value = torch.tensor([dx, dy]).view(1, 2, 1, 1)

    def forward(self, g):
        return self.value.expand(g.shape[0], 2, *g.shape[-2:]).to(g.dtype)


def test_registry_names():
    assert {"bilinear", "fam", "alignfa", "srm"} <= set(ALIGN_MODULES)


def test_identity_grid_reproduces_align_corners_resize():
    x = torch.randn(1, 3, 5, 8)
    grid = identity_grid(11, 17, torch.float32, x.device)
    assert grid.shape == (1, 11, 17, 2)
    out = F.grid_sample(x, grid, mode="bilinear", align_corners=True)
    torch.testing.assert_close(out, resize(x, (11, 17)), atol=1e-6, rtol=1e-6)
    assert pixel_norm(11, 17) == (8.0, 5.0)
    assert pixel_norm(1, 1) == (0.5, 0.5)


@pytest.mark.parametrize("low_hw,high_hw", SIZES)
@pytest.mark.parametrize("name", ["bilinear", "fam", "alignfa", "srm"])
def test_zero_offsets_equal_bilinear(name, low_hw, high_hw):
    torch.manual_seed(0)
    m = ALIGN_MODULES[name](C)
    if name == "fam":  # SFNet keeps a non-zero init: force the flow conv to zero
        nn.init.zeros_(m.flow.weight)
    m.train()
    low, high = _maps(low_hw, high_hw)
    out = m(low, high)
    assert out.shape == low.shape
    torch.testing.assert_close(out, _bilinear_reference(low, high), atol=1e-5, rtol=1e-5)


def test_untrained_srm_and_alignfa_are_bilinear_by_initialisation():
    # no forcing: zero-initialised offset convs make both exactly bilinear at init
    torch.manual_seed(1)
    low, high = _maps((11, 15), (6, 8))
    for name in ("srm", "alignfa"):
        m = ALIGN_MODULES[name](C).eval()
        torch.testing.assert_close(
            m(low, high), _bilinear_reference(low, high), atol=1e-5, rtol=1e-5
        )
    # FAM's flow conv is not zero at init (SFNet): it must actually move something
    fam = ALIGN_MODULES["fam"](C).eval()
    assert not torch.allclose(fam(low, high), _bilinear_reference(low, high), atol=1e-4)


def _srm_with_constant_offset(dx, dy, **options):
    m = SRM(C, **options)
    with torch.no_grad():
        m.offset.bias.copy_(torch.tensor([dx, dy]))  # weight stays zero: d0 = (dx, dy) everywhere
    return m


@pytest.mark.parametrize("options", [{}, {"kernel_size": 1}, {"kernel_size": 5}])
def test_srm_one_pixel_shift_x(options):
    low, high = _maps((13, 21), (7, 11))
    up = resize(high, low.shape[-2:])
    out = _srm_with_constant_offset(1.0, 0.0, **options)(low, high) - low
    # +1 in x samples one fine pixel to the right; the last column is clamped (border padding)
    torch.testing.assert_close(out[..., :-1], up[..., 1:], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[..., -1], up[..., -1], atol=1e-5, rtol=1e-5)
    out = _srm_with_constant_offset(-1.0, 0.0, **options)(low, high) - low
    torch.testing.assert_close(out[..., 1:], up[..., :-1], atol=1e-5, rtol=1e-5)


def test_srm_one_pixel_shift_y():
    low, high = _maps((13, 21), (7, 11))
    up = resize(high, low.shape[-2:])
    out = _srm_with_constant_offset(0.0, 1.0)(low, high) - low
    torch.testing.assert_close(out[..., :-1, :], up[..., 1:, :], atol=1e-5, rtol=1e-5)
    # and x is untouched: a swapped x/y normalisation would fail one of these
    assert not torch.allclose(out[..., :-1], up[..., 1:], atol=1e-3)


def test_srm_half_pixel_shift_is_neighbour_average():
    # same-size maps: bilinear sampling half-way between two pixels is their mean
    low, high = _maps((9, 12), (9, 12))
    out = _srm_with_constant_offset(0.5, 0.0)(low, high) - low
    torch.testing.assert_close(
        out[..., :-1], 0.5 * (high[..., :-1] + high[..., 1:]), atol=1e-5, rtol=1e-5
    )


def _unfold_reference(d0, weights, k):
    # brute force: explicit k x k patches of the replicate-padded map
    r = k // 2
    b, _, h, w = d0.shape
    patches = F.unfold(F.pad(d0, (r, r, r, r), mode="replicate"), k).view(b, 2, k * k, h, w)
    return (patches * weights.unsqueeze(1)).sum(dim=2)


@pytest.mark.parametrize("k", [3, 5])
def test_neighbour_refine_matches_unfold_reference(k):
    g = torch.Generator().manual_seed(3)
    d0 = torch.randn(2, 2, 7, 9, generator=g)
    w = torch.randn(2, k * k, 7, 9, generator=g).softmax(1)
    torch.testing.assert_close(
        neighbour_refine(d0, w, k), _unfold_reference(d0, w, k), atol=1e-6, rtol=1e-6
    )


def test_neighbour_refine_known_cases():
    g = torch.Generator().manual_seed(4)
    d0 = torch.randn(1, 2, 6, 7, generator=g)
    # constant field + weights summing to one -> the same constant, borders included
    const = torch.tensor([1.5, -0.25]).view(1, 2, 1, 1).expand(1, 2, 6, 7)
    w = torch.randn(1, 9, 6, 7, generator=g).softmax(1)
    torch.testing.assert_close(
        neighbour_refine(const, w, 3), const.contiguous(), atol=1e-6, rtol=1e-6
    )
    # all weight on the centre -> d0; all weight on the right neighbour -> d0 shifted, replicated edge
    centre = torch.zeros(1, 9, 6, 7)
    centre[:, 4] = 1
    torch.testing.assert_close(neighbour_refine(d0, centre, 3), d0)
    right = torch.zeros(1, 9, 6, 7)
    right[:, 5] = 1
    out = neighbour_refine(d0, right, 3)
    torch.testing.assert_close(out[..., :-1], d0[..., 1:])
    torch.testing.assert_close(out[..., -1], d0[..., -1])


def _copy_shared(dst: SRM, src: SRM):
    dst.reduce_high.load_state_dict(src.reduce_high.state_dict())
    dst.reduce_low.load_state_dict(src.reduce_low.state_dict())
    dst.offset.load_state_dict(src.offset.state_dict())


def test_srm_kernel_size_one_is_no_refinement():
    torch.manual_seed(5)
    low, high = _maps((11, 13), (6, 7))
    k1 = SRM(C, kernel_size=1)
    assert k1.weight is None
    nn.init.normal_(k1.offset.weight, std=0.5)  # a non-trivial offset field
    out1 = k1(low, high)
    d0 = k1.last_offsets["initial"]
    assert d0.abs().max() > 0.5
    torch.testing.assert_close(k1.last_offsets["refined"], d0)
    assert k1.last_offsets["weights"].shape == (2, 1, 11, 13)
    torch.testing.assert_close(
        out1, low + warp(high, d0, pixel_norm(11, 13), padding_mode="border")
    )
    # k = 3 with (practically) all weight on the centre gives the same output; a flat window does not
    k3 = SRM(C, kernel_size=3)
    _copy_shared(k3, k1)
    with torch.no_grad():
        k3.weight.weight.zero_()
        k3.weight.bias.copy_(torch.full((9,), -100.0))
        k3.weight.bias[4] = 100.0
    torch.testing.assert_close(k3(low, high), out1, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        k3.weight.bias.zero_()
    assert not torch.allclose(k3(low, high), out1, atol=1e-4)
    torch.testing.assert_close(
        k3.last_offsets["refined"],
        _unfold_reference(d0, torch.full((2, 9, 11, 13), 1 / 9), 3),
        atol=1e-5,
        rtol=1e-5,
    )


def test_srm_sigmoid_weights():
    torch.manual_seed(6)
    m = _srm_with_constant_offset(1.0, 0.0, weight_norm="sigmoid")
    low, high = _maps((7, 9), (4, 5))
    m(low, high)
    w = m.last_offsets["weights"]
    assert ((w > 0) & (w < 1)).all()
    # not normalised: the refined constant field is scaled by the sum of the gates
    torch.testing.assert_close(m.last_offsets["refined"][:, 0], w.sum(1), atol=1e-5, rtol=1e-5)


def test_srm_options_checked():
    for bad in (
        {"kernel_size": 2},
        {"kernel_size": 0},
        {"kernel_size": True},
        {"weight_norm": "l1"},
    ):
        with pytest.raises(UserError) as e:
            SRM(C, **bad)
        assert "srm" in str(e.value) and str(list(bad.values())[0]) in str(e.value)


def test_alignfa_corrected_warp_shifts_the_right_axis():
    # the original AlignSeg warp swapped the x/y normalisation: a shift in x must move columns
    torch.manual_seed(7)
    m = ALIGN_MODULES["alignfa"](C).eval()
    low, high = _maps((9, 15), (5, 8))
    up = resize(high, low.shape[-2:])
    m.offset_high = ConstOffset(1.0, 0.0)
    out = m(low, high) - low
    torch.testing.assert_close(out[..., :-1], up[..., 1:], atol=1e-5, rtol=1e-5)
    # zero padding (as AlignSeg): one pixel beyond the edge blends to zero
    torch.testing.assert_close(out[..., -1], torch.zeros_like(out[..., -1]), atol=1e-5, rtol=1e-5)
    m.offset_high = ConstOffset(0.0, -1.0)
    out = m(low, high) - low
    torch.testing.assert_close(out[..., 1:, :], up[..., :-1, :], atol=1e-5, rtol=1e-5)
    # the second head warps `low`
    m.offset_high = ConstOffset(0.0, 0.0)
    m.offset_low = ConstOffset(1.0, 0.0)
    out = m(low, high) - up
    torch.testing.assert_close(out[..., :-1], low[..., 1:], atol=1e-5, rtol=1e-5)


def test_fam_flow_unit_and_recorded_pixels():
    # SFNet's unit: grid += flow / (W, H); the recorded flow is in fine pixels and must reproduce
    # the output through the pixel-unit warp
    torch.manual_seed(8)
    m = ALIGN_MODULES["fam"](C).eval()
    low, high = _maps((13, 21), (7, 11))
    out = m(low, high)
    flow_px = m.last_offsets["flow"]
    assert flow_px.abs().max() > 1e-3
    torch.testing.assert_close(
        out, low + warp(high, flow_px, pixel_norm(13, 21)), atol=1e-5, rtol=1e-5
    )
    # a raw flow of W (resp. H) units is one full grid unit = (W-1)/2 pixels
    m.flow = ConstOffset(21.0, 0.0)
    m(low, high)
    torch.testing.assert_close(m.last_offsets["flow"][:, 0], torch.full((2, 13, 21), 10.0))


@pytest.mark.parametrize(
    "name,keys",
    [
        ("srm", {"initial": 2, "weights": 9, "refined": 2}),
        ("fam", {"flow": 2}),
        ("alignfa", {"high": 2, "low": 2}),
    ],
)
def test_recorded_offsets_shapes_and_reproduction(name, keys):
    torch.manual_seed(9)
    m = ALIGN_MODULES[name](C).train()
    assert m.last_offsets is None
    for p in m.parameters():  # make every offset non-trivial
        with torch.no_grad():
            p.add_(0.1 * torch.randn_like(p))
    low, high = _maps((13, 21), (7, 11))
    out = m(low, high)
    rec = m.last_offsets
    assert set(rec) == set(keys)
    for k, ch in keys.items():
        assert rec[k].shape == (2, ch, 13, 21)
        assert not rec[k].requires_grad and torch.isfinite(rec[k]).all()
    norm = pixel_norm(13, 21)
    if name == "srm":
        torch.testing.assert_close(
            rec["refined"], neighbour_refine(rec["initial"], rec["weights"], 3)
        )
        ref = low + warp(high, rec["refined"], norm, padding_mode="border")
    elif name == "alignfa":
        up = resize(high, (13, 21))
        ref = warp(up, rec["high"], norm) + warp(low, rec["low"], norm)
    else:
        ref = low + warp(high, rec["flow"], norm)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["srm", "fam", "alignfa"])
def test_recorded_offsets_do_not_change_output(name):
    torch.manual_seed(10)
    m = ALIGN_MODULES[name](C).eval()  # eval: BN statistics stay put between the two passes
    for p in m.parameters():
        with torch.no_grad():
            p.add_(0.1 * torch.randn_like(p))
    low, high = _maps((9, 11), (5, 6))

    def run(tamper):
        m.zero_grad()
        out = m(low, high)
        if tamper:  # a consumer scribbling on the recorded offsets
            for t in m.last_offsets.values():
                t.mul_(-7).add_(100)
        out.square().sum().backward()
        return out.detach(), [p.grad.clone() for p in m.parameters()]

    out_a, grads_a = run(False)
    out_b, grads_b = run(True)
    torch.testing.assert_close(out_a, out_b, atol=0, rtol=0)
    for ga, gb in zip(grads_a, grads_b):
        torch.testing.assert_close(ga, gb, atol=0, rtol=0)


def test_bilinear_records_nothing():
    m = ALIGN_MODULES["bilinear"](C)
    m(*_maps((5, 7), (3, 4)))
    assert m.last_offsets is None and len(list(m.parameters())) == 0


@pytest.mark.parametrize("name", ["fam", "alignfa", "srm"])
def test_gradients_reach_offset_heads(name):
    torch.manual_seed(11)
    m = ALIGN_MODULES[name](C).train()
    for p in m.parameters():  # zero-initialised heads pass no gradient to what precedes them
        with torch.no_grad():
            p[p == 0] = 0.05 * torch.randn(int((p == 0).sum()))
    low, high = _maps((9, 11), (5, 6), batch=1)
    low.requires_grad_(True)
    high.requires_grad_(True)
    out = m(low, high)
    (out * torch.randn_like(out)).sum().backward()
    for n, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, n
    assert low.grad.abs().sum() > 0 and high.grad.abs().sum() > 0


def _alignfa_negative_preactivation(act: str | None) -> nn.Module:
    """AlignFA whose first head sees the constant pre-activation z = -2 (from low's channel 0) and
    turns act(z) into an x offset of -50 * act(z) pixels; the second head stays zero-initialised."""
    m = ALIGN_MODULES["alignfa"](2) if act is None else ALIGN_MODULES["alignfa"](2, act=act)
    m.eval()
    conv1, bn, _, conv3 = m.offset_high
    with torch.no_grad():
        conv1.weight.zero_()
        conv1.weight[:, 0] = -2.0  # z_k = -2 * low[:, 0] for both hidden channels
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - bn.eps)  # BN is exactly the identity in eval
        conv3.weight.zero_()
        conv3.weight[0, 0, 1, 1] = -50.0  # dx = -50 * act(z_0), centre tap only; dy = 0
    return m


def test_alignfa_offset_head_activation_is_inplace_abn_leaky_relu():
    # AlignSeg's delta_gen = Conv1x1 - InPlaceABNSync - Conv3x3; InPlaceABN's activation defaults to
    # leaky_relu with slope 0.01, so z = -2 gives act(z) = -0.02 and an offset of exactly +1 px.
    # ReLU would give 0 and no shift at all.
    g = torch.Generator().manual_seed(12)
    low = torch.ones(1, 2, 5, 7)
    high = torch.randn(1, 2, 5, 7, generator=g)  # same size: h = high exactly
    out = _alignfa_negative_preactivation(None)(low, high) - low
    expected = torch.zeros_like(high)
    expected[..., :-1] = high[
        ..., 1:
    ]  # one pixel to the right; beyond the edge zero padding gives 0
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    # the old Conv-BN-ReLU heads on request: the negative pre-activation is cut to 0
    out_relu = _alignfa_negative_preactivation("relu")(low, high) - low
    torch.testing.assert_close(out_relu, high, atol=1e-6, rtol=1e-6)


def test_alignfa_matches_hand_written_alignseg_forward():
    # random weights in every layer (BN in eval with non-trivial statistics): the module equals an
    # explicit functional AlignSeg CAB (corrected warp) with leaky ReLU 0.01 written out by hand
    torch.manual_seed(13)
    m = ALIGN_MODULES["alignfa"](C).eval()
    for head in (m.offset_high, m.offset_low):
        with torch.no_grad():
            head[1].running_mean.normal_()
            head[1].running_var.uniform_(0.5, 2.0)
            head[1].weight.normal_()
            head[1].bias.normal_()
            head[3].weight.normal_(std=0.3)
    low, high = _maps((9, 13), (5, 7))

    def head_ref(head, g):
        conv1, bn, _, conv3 = head
        z = F.conv2d(g, conv1.weight)
        z = (z - bn.running_mean.view(1, -1, 1, 1)) / torch.sqrt(
            bn.running_var.view(1, -1, 1, 1) + bn.eps
        )
        z = z * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1)
        z = torch.where(z >= 0, z, 0.01 * z)
        return F.conv2d(z, conv3.weight, padding=1)

    h = F.interpolate(high, size=(9, 13), mode="bilinear", align_corners=True)
    g = torch.cat([low, h], 1)
    d1, d2 = head_ref(m.offset_high, g), head_ref(m.offset_low, g)
    assert (d1.abs() > 0.5).any()

    def grid_sample_ref(x, d):  # AlignSeg's bilinear_interpolate_torch_gridsample2
        n, _, out_h, out_w = d.shape
        norm = torch.tensor([(out_w - 1) / 2.0, (out_h - 1) / 2.0]).view(1, 1, 1, 2)
        ys, xs = torch.meshgrid(
            torch.linspace(-1, 1, out_h), torch.linspace(-1, 1, out_w), indexing="ij"
        )
        grid = torch.stack([xs, ys], -1).unsqueeze(0) + d.permute(0, 2, 3, 1) / norm
        return F.grid_sample(x, grid, align_corners=True)

    ref = grid_sample_ref(h, d1) + grid_sample_ref(low, d2)
    torch.testing.assert_close(m(low, high), ref, atol=1e-5, rtol=1e-5)


def test_alignfa_act_option():
    from srcr.models.decoder import build_align

    assert isinstance(ALIGN_MODULES["alignfa"](C).offset_high[2], nn.LeakyReLU)
    assert ALIGN_MODULES["alignfa"](C).offset_low[2].negative_slope == 0.01
    m = build_align("alignfa", C, {"act": "relu"})
    assert isinstance(m.offset_high[2], nn.ReLU) and isinstance(m.offset_low[2], nn.ReLU)
    with pytest.raises(UserError) as e:
        ALIGN_MODULES["alignfa"](C, act="gelu")
    assert "alignfa" in str(e.value) and "gelu" in str(e.value)


def test_fam_matches_hand_written_sfnet_aligned_module():
    # SFNet's AlignedModule.flow_warp written out: grid = identity + flow / (out_w, out_h),
    # grid_sample(align_corners=True, zero padding); UperNetAlignHead adds the lateral: low + warped
    torch.manual_seed(14)
    m = ALIGN_MODULES["fam"](C).eval()
    low, high = _maps((13, 21), (7, 11))
    with torch.no_grad():
        m.flow.weight.mul_(20.0)  # flows of several pixels, some reaching past the border
        low_r = F.conv2d(low, m.down_low.weight)
        high_r = F.interpolate(
            F.conv2d(high, m.down_high.weight), size=(13, 21), mode="bilinear", align_corners=True
        )
        flow = F.conv2d(torch.cat([high_r, low_r], 1), m.flow.weight, padding=1)
        assert flow.abs().max() > 10.0  # up to ~5 fine pixels (SFNet units: ~half a pixel each)
        ys = torch.linspace(-1.0, 1.0, 13).view(-1, 1).repeat(1, 21)
        xs = torch.linspace(-1.0, 1.0, 21).repeat(13, 1)
        grid = torch.stack([xs, ys], -1).unsqueeze(0) + flow.permute(0, 2, 3, 1) / torch.tensor(
            [21.0, 13.0]
        )
        ref = low + F.grid_sample(high, grid, align_corners=True)
        torch.testing.assert_close(m(low, high), ref, atol=1e-5, rtol=1e-5)
