"""srcr.models.depthwise: the CPU fast paths equal a plain depthwise F.conv2d (outputs and gradients)."""

import pytest
import torch
import torch.nn.functional as F

from srcr.models.backbones.mscan import AttentionModule
from srcr.models.depthwise import depthwise_conv2d

KERNELS = [(5, 5), (3, 3), (1, 7), (7, 1), (1, 11), (11, 1), (1, 21), (21, 1)]


def _grads(fn, x, w, b):
    x, w, b = (t.detach().clone().requires_grad_() for t in (x, w, b))
    y = fn(x, w, b)
    y.backward(torch.linspace(-1, 1, y.numel()).reshape(y.shape))
    return [y.detach(), x.grad, w.grad, b.grad]


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("size", [(4, 4), (16, 16), (16, 32), (17, 15)])
@pytest.mark.parametrize("channels_last", [True, False])
def test_depthwise_equals_conv2d(kernel, size, channels_last):
    g = torch.Generator().manual_seed(0)
    c = 8
    x = torch.randn(2, c, *size, generator=g, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    w = torch.randn(c, 1, *kernel, generator=g, dtype=torch.float64)
    b = torch.randn(c, generator=g, dtype=torch.float64)
    pad = (kernel[0] // 2, kernel[1] // 2)
    ref = _grads(lambda x, w, b: F.conv2d(x, w, b, padding=pad, groups=c), x, w, b)
    new = _grads(lambda x, w, b: depthwise_conv2d(x, w, b, pad), x, w, b)
    for r, n in zip(ref, new):
        assert r.shape == n.shape
        torch.testing.assert_close(n, r, rtol=0, atol=1e-10)


def test_attention_module_float32_close_to_reference():
    torch.manual_seed(0)
    for dim, size in [(16, 32), (128, 4)]:
        m = AttentionModule(dim)
        x = torch.randn(4, dim, size, size).contiguous(memory_format=torch.channels_last)

        def ref_forward(x, m=m):
            attn = m.conv0(x)
            a = [m.conv0_2(m.conv0_1(attn)), m.conv1_2(m.conv1_1(attn)), m.conv2_2(m.conv2_1(attn))]
            return m.conv3(attn + a[0] + a[1] + a[2]) * x

        outs = []
        for fwd in (ref_forward, m):
            xi = x.clone().requires_grad_()
            m.zero_grad(set_to_none=True)
            y = fwd(xi)
            y.square().sum().backward()
            outs.append([y.detach(), xi.grad] + [p.grad.clone() for p in m.parameters()])
        for r, n in zip(*outs):
            # float32 sums of up to 65k products in another order: within 1e-5 of the tensor's scale
            assert (n - r).abs().max() <= 1e-5 * max(1.0, r.abs().max().item())
