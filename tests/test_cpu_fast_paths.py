"""The CPU fast paths of resize (matmul backward) and the pixel cross-entropy (one-pass backward)
equal torch's F.interpolate / F.cross_entropy: forward bit for bit, gradients to rounding."""

import pytest
import torch
import torch.nn.functional as F

from srcr.losses.cross_entropy import _per_pixel
from srcr.models.layers import interp_matrix, resize


@pytest.mark.parametrize(
    "shape,size",
    [
        ((2, 3, 32, 32), (128, 128)),
        ((1, 4, 33, 17), (129, 65)),
        ((2, 2, 1, 5), (64, 80)),
        ((1, 2, 16, 64), (128, 256)),
    ],
)
def test_resize_matmul_backward_equals_interpolate(shape, size):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)
    grad = torch.randn(shape[0], shape[1], *size, generator=g, dtype=torch.float64)
    ref = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
    (ref_grad,) = torch.autograd.grad(ref, x, grad)
    out = resize(x, size)
    assert out.grad_fn is not None and "BilinearMatmulGrad" in type(out.grad_fn).__name__
    (new_grad,) = torch.autograd.grad(out, x, grad)
    assert torch.equal(out, ref)
    torch.testing.assert_close(new_grad, ref_grad, rtol=0, atol=1e-12)


def test_resize_float32_and_interp_matrix():
    x = torch.randn(4, 10, 32, 32, requires_grad=True)
    grad = torch.randn(4, 10, 128, 128)
    (ref,) = torch.autograd.grad(
        F.interpolate(x, size=(128, 128), mode="bilinear", align_corners=True), x, grad
    )
    (new,) = torch.autograd.grad(resize(x, (128, 128)), x, grad)
    assert (new - ref).abs().max() <= 1e-5 * ref.abs().max()
    m = interp_matrix(5, 9, torch.float64)
    torch.testing.assert_close(m.sum(1), torch.ones(9, dtype=torch.float64))
    # the matrix is the interpolation itself: resizing the identity reproduces it
    eye = torch.eye(5, dtype=torch.float64).view(5, 1, 5, 1).expand(5, 1, 5, 2)
    cols = F.interpolate(eye, size=(9, 2), mode="bilinear", align_corners=True)[:, 0, :, 0]
    torch.testing.assert_close(cols.t(), m, rtol=0, atol=1e-15)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pixel_cross_entropy_equals_torch(dtype):
    g = torch.Generator().manual_seed(0)
    x = (3 * torch.randn(2, 5, 16, 24, generator=g, dtype=dtype)).requires_grad_()
    labels = torch.randint(0, 5, (2, 16, 24), generator=g)
    labels[0, :3] = 255
    grad = torch.rand(2, 16, 24, generator=g, dtype=dtype)
    ref = F.cross_entropy(x, labels, ignore_index=255, reduction="none")
    (ref_grad,) = torch.autograd.grad(ref, x, grad)
    new = _per_pixel(x, labels, 255)
    (new_grad,) = torch.autograd.grad(new, x, grad)
    assert torch.equal(new, ref)
    tol = 1e-6 if dtype == torch.float32 else 1e-14
    torch.testing.assert_close(new_grad, ref_grad, rtol=0, atol=tol)
    assert torch.all(new_grad[0, :, :3] == 0)
