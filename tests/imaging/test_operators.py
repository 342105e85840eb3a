"""Tests of pot_semiunbalanced.imaging.operators."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

from pot_semiunbalanced.imaging import operators as op

SAME_SIZE = ("circular", "reflect", "symmetric", "zero")
SCIPY_MODE = {"circular": "wrap", "reflect": "mirror", "symmetric": "reflect", "zero": "constant"}


def _randn(*shape, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype)


def _adjoint_error(Ax: torch.Tensor, y: torch.Tensor, x: torch.Tensor, ATy: torch.Tensor) -> float:
    assert Ax.shape == y.shape and x.shape == ATy.shape
    lhs = torch.sum(Ax * y).item()
    rhs = torch.sum(x * ATy).item()
    return abs(lhs - rhs) / max(abs(lhs), abs(rhs))


# --------------------------------------------------------------------------- kernel
def test_gaussian_kernel_paper_16_std2():
    k = op.gaussian_kernel(16, 2.0, dtype=torch.float64)
    assert k.shape == (16, 16) and k.dtype == torch.float64
    assert abs(k.sum().item() - 1.0) < 1e-14
    assert torch.equal(k, k.T)
    assert torch.allclose(k, k.flip(0).flip(1), atol=1e-17, rtol=0)
    t = torch.arange(16, dtype=torch.float64)
    marg = k.sum(1)
    mean = (marg * t).sum().item()
    var = (marg * (t - mean) ** 2).sum().item()
    assert abs(mean - 7.5) < 1e-12
    assert abs(var - 4.0) < 1e-2  # truncation at +-3.75 std removes only a little
    # the non-separable definition exp(-|z - c|^2 / (2 s^2)) / Z
    u, v = np.meshgrid(np.arange(16.0), np.arange(16.0), indexing="ij")
    ref = np.exp(-((u - 7.5) ** 2 + (v - 7.5) ** 2) / 8.0)
    ref /= ref.sum()
    np.testing.assert_allclose(k.numpy(), ref, rtol=1e-13, atol=0)


def test_gaussian_kernel_4_std1_and_odd_centre():
    k = op.gaussian_kernel(4, 1.0, dtype=torch.float64)
    w = np.exp(-np.array([1.5, 0.5, 0.5, 1.5]) ** 2 / 2.0)
    np.testing.assert_allclose(k.numpy(), np.outer(w, w) / np.outer(w, w).sum(), rtol=1e-14)
    k5 = op.gaussian_kernel(5, 0.7)
    assert k5.dtype == torch.float32
    assert divmod(int(k5.argmax()), 5) == (2, 2)
    assert torch.equal(op.gaussian_kernel(1, 3.0), torch.ones(1, 1))


@pytest.mark.parametrize("kwargs, match", [({"size": 0, "std": 1.0}, "size"),
                                           ({"size": 4, "std": 0.0}, "std"),
                                           ({"size": 4.5, "std": 1.0}, "size")])
def test_gaussian_kernel_bad(kwargs, match):
    with pytest.raises(ValueError, match=match):
        op.gaussian_kernel(kwargs["size"], kwargs["std"])


# --------------------------------------------------------------------------- adjoints
KERNEL_SHAPES = [(5, 5), (4, 4), (3, 6), (16, 16)]


@pytest.mark.parametrize("boundary", op.BOUNDARY_MODES)
@pytest.mark.parametrize("kshape", KERNEL_SHAPES)
def test_blur_adjoint_identity(boundary, kshape):
    H, W = (19, 23) if boundary == "valid" else (13, 17)  # same-size modes: kernel > image too
    x = _randn(2, 3, H, W, seed=1)
    k = _randn(*kshape, seed=2)
    Ax = op.blur(x, k, boundary=boundary)
    y = _randn(*Ax.shape, seed=3)
    ATy = op.blur_adjoint(y, k, boundary=boundary, input_shape=x.shape)
    assert _adjoint_error(Ax, y, x, ATy) <= 1e-12
    # the default input_shape is the forward input's size
    assert torch.equal(op.blur_adjoint(y, k, boundary=boundary), ATy)


@pytest.mark.parametrize("boundary", op.BOUNDARY_MODES)
@pytest.mark.parametrize("kernel_size, std, factor", [(16, 2.0, 4), (4, 1.0, 2), (5, 1.3, 3), (3, 0.8, 1)])
def test_sr_adjoint_identity(boundary, kernel_size, std, factor):
    x = _randn(2, 2, 37, 46, seed=4)
    kw = dict(kernel_size=kernel_size, std=std, factor=factor, boundary=boundary)
    Ax = op.sr_forward(x, **kw)
    assert tuple(Ax.shape[-2:]) == op.sr_output_shape(x.shape, kernel_size=kernel_size,
                                                      factor=factor, boundary=boundary)
    y = _randn(*Ax.shape, seed=5)
    ATy = op.sr_adjoint(y, input_shape=(37, 46), **kw)
    assert _adjoint_error(Ax, y, x, ATy) <= 1e-12


@pytest.mark.parametrize("boundary", op.BOUNDARY_MODES)
@pytest.mark.parametrize("H, W", [(32, 41), (33, 40)])
def test_pyramid_down_adjoint_identity(boundary, H, W):
    x = _randn(3, 2, H, W, seed=6)
    Ax = op.pyramid_down(x, boundary=boundary)
    y = _randn(*Ax.shape, seed=7)
    ATy = op.pyramid_down_adjoint(y, input_shape=x.shape, boundary=boundary)
    assert _adjoint_error(Ax, y, x, ATy) <= 1e-12


@pytest.mark.parametrize("factor, offset", [(1, 0), (2, 0), (2, 1), (3, (2, 1)), (4, (0, 3)), (4, 3)])
@pytest.mark.parametrize("H, W", [(13, 17), (16, 12)])
def test_subsample_adjoint_identity(factor, offset, H, W):
    x = _randn(2, 3, H, W, seed=8)
    Ax = op.subsample(x, factor, offset=offset)
    y = _randn(*Ax.shape, seed=9)
    ATy = op.subsample_adjoint(y, factor, input_shape=(H, W), offset=offset)
    assert _adjoint_error(Ax, y, x, ATy) <= 1e-12


@pytest.mark.parametrize("boundary", op.BOUNDARY_MODES)
def test_autograd_gradient_is_adjoint(boundary):
    x = _randn(1, 2, 40, 36, seed=10).requires_grad_()
    Ax = op.sr_forward(x, boundary=boundary)
    y = _randn(*Ax.shape, seed=11)
    (Ax * y).sum().backward()
    ATy = op.sr_adjoint(y, input_shape=x.shape, boundary=boundary)
    assert torch.allclose(x.grad, ATy, rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------------- forward values
def test_sr_forward_paper_sizes():
    x = torch.rand(1, 1, 256, 256, generator=torch.Generator().manual_seed(0))
    assert op.sr_forward(x).shape == (1, 1, 61, 61)
    assert op.sr_forward(x, boundary="reflect").shape == (1, 1, 64, 64)
    assert op.sr_forward(x, boundary="circular").shape == (1, 1, 64, 64)
    assert op.sr_output_shape((256, 256)) == (61, 61)
    assert op.pyramid_down(x).shape == (1, 1, 127, 127)
    assert op.pyramid_down_output_shape((256, 256), boundary="zero") == (128, 128)


@pytest.mark.parametrize("boundary", op.BOUNDARY_MODES)
def test_sr_forward_is_blur_then_subsample(boundary):
    x = _randn(2, 1, 30, 27, seed=12)
    k = op.gaussian_kernel(16, 2.0, dtype=torch.float64)
    ref = op.subsample(op.blur(x, k, boundary=boundary), 4)
    assert torch.allclose(op.sr_forward(x, boundary=boundary), ref, rtol=1e-13, atol=1e-15)
    k4 = op.gaussian_kernel(4, 1.0, dtype=torch.float64)
    ref = op.subsample(op.blur(x, k4, boundary=boundary), 2)
    assert torch.allclose(op.pyramid_down(x, boundary=boundary), ref, rtol=1e-13, atol=1e-15)


def test_blur_valid_matches_conv2d_and_sizes():
    x = _randn(2, 3, 20, 25, seed=13)
    k = _randn(16, 16, seed=14)
    y = op.blur(x, k)
    assert y.shape == (2, 3, 5, 10)
    ref = F.conv2d(x.reshape(6, 1, 20, 25), k[None, None]).reshape(2, 3, 5, 10)
    assert torch.allclose(y, ref, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("boundary", SAME_SIZE)
@pytest.mark.parametrize("kshape", KERNEL_SHAPES)
def test_blur_same_size_matches_scipy(boundary, kshape):
    x = _randn(1, 1, 11, 14, seed=15)
    k = _randn(*kshape, seed=16)
    ours = op.blur(x, k, boundary=boundary)[0, 0].numpy()
    origin = tuple(-1 if s % 2 == 0 else 0 for s in kshape)
    ref = ndimage.correlate(x[0, 0].numpy(), k.numpy(), mode=SCIPY_MODE[boundary], origin=origin)
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("ks", [4, 16])
def test_even_kernel_centring(ks):
    x = _randn(1, 1, 20, 21, seed=17)
    c = (ks - 1) // 2
    delta = torch.zeros(ks, ks, dtype=torch.float64)
    delta[c, c] = 1.0
    assert torch.equal(op.blur(x, delta, boundary="zero"), x)
    shifted = torch.zeros(ks, ks, dtype=torch.float64)
    shifted[c + 1, c + 1] = 1.0  # the centre (ks-1)/2 lies between c and c+1
    y = op.blur(x, shifted, boundary="circular")
    assert torch.equal(y, torch.roll(x, shifts=(-1, -1), dims=(-2, -1)))


@pytest.mark.parametrize("boundary", ("valid", "circular", "reflect", "symmetric"))
def test_blur_of_constant_is_constant(boundary):
    x = torch.full((2, 2, 30, 33), 0.37, dtype=torch.float64)
    y = op.blur(x, op.gaussian_kernel(16, 2.0, dtype=torch.float64), boundary=boundary)
    assert torch.allclose(y, torch.full_like(y, 0.37), rtol=0, atol=1e-14)
    z = op.sr_forward(x, boundary=boundary)
    assert torch.allclose(z, torch.full_like(z, 0.37), rtol=0, atol=1e-14)


def test_blur_zero_boundary_darkens_border_only():
    x = torch.ones(1, 1, 30, 30, dtype=torch.float64)
    y = op.blur(x, op.gaussian_kernel(5, 1.0, dtype=torch.float64), boundary="zero")
    assert torch.allclose(y[..., 2:-2, 2:-2], torch.ones(1, 1, 26, 26, dtype=torch.float64))
    assert y[0, 0, 0, 0] < 0.6


def test_subsample_picks_right_pixels():
    x = torch.arange(2 * 1 * 7 * 9, dtype=torch.float64).reshape(2, 1, 7, 9)
    y = op.subsample(x, 3, offset=(1, 2))
    assert y.shape == (2, 1, 2, 3)
    expected = torch.tensor([[1 * 9 + 2, 1 * 9 + 5, 1 * 9 + 8],
                             [4 * 9 + 2, 4 * 9 + 5, 4 * 9 + 8]], dtype=torch.float64)
    assert torch.equal(y[0, 0], expected)
    assert torch.equal(y[1, 0], expected + 63)
    up = op.subsample_adjoint(y, 3, input_shape=(7, 9), offset=(1, 2))
    mask = torch.zeros(7, 9, dtype=torch.bool)
    mask[1::3, 2::3] = True
    assert torch.equal(up[0, 0][mask], expected.flatten())
    assert torch.count_nonzero(up[..., ~mask]) == 0


def test_pyramid_levels_and_sizes():
    x = _randn(1, 1, 64, 70, seed=18)
    levels = op.pyramid(x, 2)
    assert len(levels) == 3 and levels[0] is x
    assert [tuple(t.shape[-2:]) for t in levels] == [(64, 70), (31, 34), (14, 16)]
    assert torch.equal(levels[2], op.pyramid_down(op.pyramid_down(x)))
    refl = op.pyramid(x, 1, boundary="reflect")
    assert refl[1].shape[-2:] == (32, 35)
    assert len(op.pyramid(x, 0)) == 1


def test_simulate_lr_reproducible_and_noise_level():
    x = torch.rand(1, 1, 256, 256, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y1 = op.simulate_lr(x, rng=123)
    y2 = op.simulate_lr(x, rng=np.random.default_rng(123))
    y3 = op.simulate_lr(x, rng=124)
    assert y1.shape == (1, 1, 61, 61)
    assert torch.equal(y1, y2)
    assert not torch.equal(y1, y3)
    resid = (y1 - op.sr_forward(x)).flatten()
    assert abs(resid.std().item() - 0.01) < 0.0005
    assert abs(resid.mean().item()) < 0.0005
    assert torch.equal(op.simulate_lr(x, noise_std=0.0, rng=0), op.sr_forward(x))
    # the same seed gives the same noise in float32 (up to float32 rounding)
    y32 = op.simulate_lr(x.float(), rng=123)
    assert y32.dtype == torch.float32
    assert torch.allclose(y32.double(), y1, rtol=0, atol=1e-6)


def test_upsampling():
    y = torch.rand(1, 1, 61, 61, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    b = op.bicubic_upsample(y, size=256)
    assert b.shape == (1, 1, 256, 256)
    assert b.min() >= 0 and b.max() <= 1
    raw = op.bicubic_upsample(y, size=(256, 256), clamp=False)
    assert raw.min() < 0 or raw.max() > 1  # bicubic overshoots on noise: clamping is needed
    assert torch.equal(b, raw.clamp(0, 1))
    lin = op.bilinear_upsample(y, size=(256, 240))
    assert lin.shape == (1, 1, 256, 240)
    from skimage.transform import resize

    ref_edge = resize(y[0, 0].numpy(), (256, 240), order=1, mode="edge", anti_aliasing=False)
    np.testing.assert_allclose(lin[0, 0].numpy(), ref_edge, rtol=0, atol=1e-12)
    ref_default = resize(y[0, 0].numpy(), (256, 240), order=1)
    np.testing.assert_allclose(lin[0, 0, 2:-2, 2:-2].numpy(), ref_default[2:-2, 2:-2], rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- dtype / device
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_follows_input(dtype):
    x = torch.rand(1, 2, 40, 44, dtype=dtype)
    k = op.gaussian_kernel(4, 1.0)  # float32 kernel is cast to x's dtype
    outs = [
        op.blur(x, k), op.blur(x, k, boundary="reflect"),
        op.blur_adjoint(op.blur(x, k), k),
        op.subsample(x, 2), op.subsample_adjoint(op.subsample(x, 2), 2, input_shape=x.shape),
        op.sr_forward(x), op.sr_adjoint(op.sr_forward(x), input_shape=x.shape),
        op.simulate_lr(x, rng=0), op.pyramid_down(x),
        op.pyramid_down_adjoint(op.pyramid_down(x), input_shape=x.shape),
        *op.pyramid(x, 1), op.bicubic_upsample(x, size=50), op.bilinear_upsample(x, size=50),
    ]
    for out in outs:
        assert out.dtype == dtype and out.device == x.device


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")
@pytest.mark.parametrize("boundary", op.BOUNDARY_MODES)
def test_cuda_matches_cpu(boundary):
    x = _randn(2, 2, 40, 37, seed=20)
    xc = x.cuda()
    y = op.sr_forward(x, boundary=boundary)
    yc = op.sr_forward(xc, boundary=boundary)
    assert yc.is_cuda and yc.dtype == torch.float64
    assert torch.allclose(yc.cpu(), y, rtol=1e-12, atol=1e-12)
    back = op.sr_adjoint(y, input_shape=x.shape, boundary=boundary)
    backc = op.sr_adjoint(yc, input_shape=x.shape, boundary=boundary)
    assert backc.is_cuda and torch.allclose(backc.cpu(), back, rtol=1e-12, atol=1e-12)
    assert _adjoint_error(yc, yc, xc, backc) <= 1e-12
    k = op.gaussian_kernel(5, 1.0)
    assert torch.allclose(op.blur(xc, k, boundary=boundary).cpu(), op.blur(x, k, boundary=boundary),
                          rtol=1e-12, atol=1e-12)
    assert torch.allclose(op.simulate_lr(xc, rng=5, boundary=boundary).cpu(),
                          op.simulate_lr(x, rng=5, boundary=boundary), rtol=1e-12, atol=1e-12)
    assert op.gaussian_kernel(4, 1.0, device="cuda").is_cuda


# --------------------------------------------------------------------------- errors
def test_errors():
    x = torch.rand(1, 1, 20, 20)
    k = op.gaussian_kernel(4, 1.0)
    with pytest.raises(ValueError, match="x must have 4 dimensions"):
        op.blur(torch.rand(20, 20), k)
    with pytest.raises(ValueError, match="x must be a floating-point"):
        op.sr_forward(torch.ones(1, 1, 20, 20, dtype=torch.int64))
    with pytest.raises(ValueError, match="boundary"):
        op.blur(x, k, boundary="periodic")
    with pytest.raises(ValueError, match="boundary"):
        op.sr_adjoint(torch.rand(1, 1, 2, 2), input_shape=(20, 20), boundary="nearest")
    with pytest.raises(ValueError, match="smaller than the kernel"):
        op.blur(torch.rand(1, 1, 10, 30), op.gaussian_kernel(16, 2.0))
    with pytest.raises(ValueError, match="smaller than the kernel"):
        op.sr_forward(torch.rand(1, 1, 12, 12))
    with pytest.raises(ValueError, match="kernel must be a 2-D"):
        op.blur(x, k[None, None])
    with pytest.raises(ValueError, match="kernel_size"):
        op.sr_forward(x, kernel_size=0)
    with pytest.raises(ValueError, match="factor"):
        op.subsample(x, 0)
    with pytest.raises(ValueError, match="factor"):
        op.sr_forward(x, factor=0, kernel_size=4)
    with pytest.raises(ValueError, match="offset"):
        op.subsample(x, 2, offset=2)
    with pytest.raises(ValueError, match="offset"):
        op.subsample(x, 2, offset=(0, -1))
    with pytest.raises(ValueError, match="input_shape"):
        op.subsample_adjoint(torch.rand(1, 1, 5, 5), 2, input_shape=(20, 20))
    with pytest.raises(ValueError, match="input_shape"):
        op.sr_adjoint(torch.rand(1, 1, 61, 61), input_shape=(128, 128))
    with pytest.raises(ValueError, match="input_shape"):
        op.sr_adjoint(torch.rand(1, 1, 2, 2), input_shape=(2, 1, 20, 20), kernel_size=4, std=1.0)
    with pytest.raises(ValueError, match="levels"):
        op.pyramid(x, 4)
    with pytest.raises(ValueError, match="levels"):
        op.pyramid(x, -1)
    with pytest.raises(ValueError, match="noise_std"):
        op.simulate_lr(torch.rand(1, 1, 32, 32), noise_std=-0.1)
    with pytest.raises(ValueError, match="size"):
        op.bicubic_upsample(x, size=(0, 5))
