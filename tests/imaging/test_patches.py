"""Tests of pot_semiunbalanced.imaging.patches."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pot_semiunbalanced.imaging import patches as pa


def _randn(*shape, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype)


def _adjoint_error(Ax, y, x, ATy) -> float:
    assert Ax.shape == y.shape and x.shape == ATy.shape
    lhs = torch.sum(Ax * y).item()
    rhs = torch.sum(x * ATy).item()
    return abs(lhs - rhs) / max(abs(lhs), abs(rhs))


# --------------------------------------------------------------------------- counts
def test_n_patches():
    assert pa.n_patches(256, 256, 6, 1) == 251 * 251 == 63001
    assert pa.n_patches(100, 100, 8, 2) == 47 * 47
    assert pa.n_patches(13, 17, 4, stride=3) == 4 * 5
    assert pa.patch_grid_shape(13, 17, 4, 3) == (4, 5)
    assert pa.n_patches(6, 6, 6) == 1


# --------------------------------------------------------------------------- extraction
def test_extract_patches_known_values_and_ordering():
    x = torch.arange(2 * 4 * 5, dtype=torch.float64).reshape(1, 2, 4, 5)
    P = pa.extract_patches(x, 2)
    assert P.shape == (1, 3 * 4, 2 * 2 * 2)
    # patch 0 at (0, 0): channel 0 rows 0-1 cols 0-1, then channel 1
    assert P[0, 0].tolist() == [0, 1, 5, 6, 20, 21, 25, 26]
    assert P[0, 1].tolist() == [1, 2, 6, 7, 21, 22, 26, 27]  # next column
    assert P[0, 4].tolist() == [5, 6, 10, 11, 25, 26, 30, 31]  # next row (4 positions per row)
    assert P[0, 11].tolist() == [13, 14, 18, 19, 33, 34, 38, 39]  # last: (2, 3)
    Ps = pa.extract_patches(x, 2, stride=2)
    assert Ps.shape == (1, 2 * 2, 8)
    assert Ps[0, :, 0].tolist() == [0, 2, 10, 12]  # top-left pixels (0,0),(0,2),(2,0),(2,2)
    assert P.is_contiguous()


def test_extract_patches_batch_and_general_layout():
    x = _randn(3, 2, 9, 11, seed=1)
    p, s = 4, 2
    P = pa.extract_patches(x, p, stride=s)
    nh, nw = pa.patch_grid_shape(9, 11, p, s)
    assert P.shape == (3, nh * nw, 2 * p * p)
    for b, a, c in [(0, 0, 0), (1, 2, 3), (2, nh - 1, nw - 1)]:
        ref = x[b, :, a * s : a * s + p, c * s : c * s + p].reshape(-1)
        assert torch.equal(P[b, a * nw + c], ref)


@pytest.mark.parametrize("patch_size", [1, 3, 4, 6])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("shape", [(2, 3, 13, 17), (1, 1, 16, 9)])
def test_patches_adjoint_identity(patch_size, stride, shape):
    x = _randn(*shape, seed=2)
    P = pa.extract_patches(x, patch_size, stride=stride)
    Y = _randn(*P.shape, seed=3)
    ATY = pa.patches_adjoint(Y, image_shape=shape, patch_size=patch_size, stride=stride)
    assert _adjoint_error(P, Y, x, ATY) <= 1e-12


def test_patches_adjoint_coverage_and_2d_input():
    shape = (1, 1, 7, 8)
    P = pa.extract_patches(torch.ones(shape, dtype=torch.float64), 3)
    cover = pa.patches_adjoint(P, image_shape=shape[-2:], patch_size=3)
    assert cover[0, 0, 0, 0] == 1 and cover[0, 0, 0, 1] == 2 and cover[0, 0, 1, 1] == 4
    assert cover[0, 0, 3, 3] == 9 and cover[0, 0, -1, -1] == 1
    assert torch.equal(pa.patches_adjoint(P[0], image_shape=(7, 8), patch_size=3), cover)
    # stride 3 on 7 rows: row 6 is covered by no patch
    Ps = pa.extract_patches(torch.ones(shape, dtype=torch.float64), 3, stride=3)
    cs = pa.patches_adjoint(Ps, image_shape=shape, patch_size=3, stride=3)
    assert torch.all(cs[0, 0, 6] == 0) and torch.all(cs[0, 0, :6, :6] == 1)


def test_extract_patches_autograd_is_adjoint():
    x = _randn(1, 2, 10, 12, seed=4).requires_grad_()
    P = pa.extract_patches(x, 3, stride=2)
    Y = _randn(*P.shape, seed=5)
    (P * Y).sum().backward()
    ref = pa.patches_adjoint(Y, image_shape=x.shape, patch_size=3, stride=2)
    assert torch.allclose(x.grad, ref, rtol=1e-13, atol=1e-14)


# --------------------------------------------------------------------------- random patches
def _unique_image(B=1, C=2, H=12, W=15):
    return torch.arange(B * C * H * W, dtype=torch.float64).reshape(B, C, H, W)


def test_random_patches_reproducible_and_distinct():
    x = _unique_image()
    a = pa.random_patches(x, 4, 30, rng=7)
    b = pa.random_patches(x, 4, 30, rng=np.random.default_rng(7))
    c = pa.random_patches(x, 4, 30, rng=8)
    assert a.shape == (30, 2 * 16)
    assert torch.equal(a, b) and not torch.equal(a, c)
    P, pos = pa.random_patches(x, 4, 30, rng=7, return_positions=True)
    assert torch.equal(P, a)
    assert len({tuple(r) for r in pos.tolist()}) == 30
    full = pa.extract_patches(x, 4)[0]
    nw = pa.patch_grid_shape(12, 15, 4)[1]
    for k, (bb, i, j) in enumerate(pos):
        assert bb == 0 and torch.equal(P[k], full[i * nw + j])
    assert len({tuple(r) for r in P.tolist()}) == 30  # distinct patches on a unique image


def test_random_patches_all_positions_stride_and_batch():
    x = _unique_image(B=2, C=1, H=6, W=7)
    p, s = 3, 2
    K = 2 * pa.n_patches(6, 7, p, s)
    P, pos = pa.random_patches(x, p, K, stride=s, rng=0, return_positions=True)
    full = pa.extract_patches(x, p, stride=s).reshape(K, p * p)
    assert sorted(map(tuple, P.tolist())) == sorted(map(tuple, full.tolist()))
    assert set(pos[:, 0].tolist()) == {0, 1}
    assert np.all(pos[:, 1] % s == 0) and np.all(pos[:, 2] % s == 0)
    more = pa.random_patches(x, p, 3 * K, stride=s, rng=0, replace=True)
    assert more.shape == (3 * K, p * p)


def test_random_patches_too_many():
    x = _unique_image(C=1, H=4, W=5)  # 3 x 4 = 12 patches of size 2
    with pytest.raises(ValueError, match=r"reference has only 12 patches of size 2, asked for 13: "
                                         r"lower n or use a larger reference"):
        pa.random_patches(x, 2, 13, rng=0)
    with pytest.raises(ValueError, match="n must be"):
        pa.random_patches(x, 2, 0, rng=0)


def test_random_patches_dtype_and_grad():
    x = torch.rand(1, 1, 20, 20, dtype=torch.float32, requires_grad=True)
    P = pa.random_patches(x, 5, 10, rng=1)
    assert P.dtype == torch.float32
    P.sum().backward()
    assert x.grad.sum().item() == pytest.approx(10 * 25)


# --------------------------------------------------------------------------- padding
def test_pad_image_uniform():
    x = torch.rand(2, 1, 10, 12, dtype=torch.float32)
    a = pa.pad_image(x, 4, rng=3)
    assert a.shape == (2, 1, 18, 20) and a.dtype == torch.float32
    assert torch.equal(a[..., 4:14, 4:16], x)
    assert a.min() >= 0 and a.max() < 1
    assert torch.equal(a, pa.pad_image(x, 4, fill="uniform", rng=np.random.default_rng(3)))
    b = pa.pad_image(x, 4, rng=4)
    assert not torch.equal(a[..., :4, :], b[..., :4, :])
    assert torch.equal(pa.crop_image(a, 4), x)
    assert a[..., :4, :].std() > 0.2  # a real U[0,1] border (std 0.29), not a constant


@pytest.mark.parametrize("fill, np_mode", [("reflect", "reflect"), ("symmetric", "symmetric"),
                                           ("circular", "wrap"), ("zero", "constant")])
@pytest.mark.parametrize("pad", [1, 3, 12])
def test_pad_image_deterministic_fills(fill, np_mode, pad):
    x = _randn(1, 2, 7, 9, seed=6)
    out = pa.pad_image(x, pad, fill=fill)
    ref = np.pad(x.numpy(), ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode=np_mode)
    np.testing.assert_array_equal(out.numpy(), ref)
    assert torch.equal(pa.crop_image(out, pad), x)


def test_pad_crop_adjoint_and_grad():
    x = _randn(2, 3, 11, 13, seed=7)
    y = _randn(2, 3, 5, 7, seed=8)
    assert _adjoint_error(pa.crop_image(x, 3), y, x, pa.pad_image(y, 3, fill="zero")) <= 1e-12
    z = torch.rand(1, 1, 6, 6, dtype=torch.float64, requires_grad=True)
    pa.pad_image(z, 2, rng=0).sum().backward()
    assert torch.equal(z.grad, torch.ones_like(z))
    assert torch.equal(pa.pad_image(z, 0).detach(), z.detach())


# --------------------------------------------------------------------------- device
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")
def test_cuda_matches_cpu():
    x = _randn(2, 2, 15, 13, seed=9)
    xc = x.cuda()
    P = pa.extract_patches(xc, 4, stride=2)
    assert P.is_cuda and torch.equal(P.cpu(), pa.extract_patches(x, 4, stride=2))
    back = pa.patches_adjoint(P, image_shape=x.shape, patch_size=4, stride=2)
    assert back.is_cuda
    assert torch.allclose(back.cpu(), pa.patches_adjoint(P.cpu(), image_shape=x.shape, patch_size=4, stride=2))
    r = pa.random_patches(xc, 4, 20, rng=1)
    assert r.is_cuda and torch.equal(r.cpu(), pa.random_patches(x, 4, 20, rng=1))
    u = pa.pad_image(xc, 5, rng=2)
    assert u.is_cuda and torch.equal(u.cpu(), pa.pad_image(x, 5, rng=2))
    assert torch.equal(pa.pad_image(xc, 20, fill="reflect").cpu(), pa.pad_image(x, 20, fill="reflect"))


# --------------------------------------------------------------------------- errors
def test_errors():
    x = torch.rand(1, 1, 8, 10)
    with pytest.raises(ValueError, match="patch_size"):
        pa.extract_patches(x, 9)
    with pytest.raises(ValueError, match="patch_size"):
        pa.extract_patches(x, 0)
    with pytest.raises(ValueError, match="stride"):
        pa.extract_patches(x, 3, stride=0)
    with pytest.raises(ValueError, match="x must have 4 dimensions"):
        pa.extract_patches(torch.rand(8, 10), 3)
    with pytest.raises(ValueError, match="patch_size"):
        pa.n_patches(5, 5, 6, 1)
    P = pa.extract_patches(x, 3)
    with pytest.raises(ValueError, match="image_shape"):
        pa.patches_adjoint(P, image_shape=(9, 10), patch_size=3)
    with pytest.raises(ValueError, match="patch_size"):
        pa.patches_adjoint(P, image_shape=(8, 10), patch_size=2)
    with pytest.raises(ValueError, match="image_shape"):
        pa.patches_adjoint(P, image_shape=(1, 2, 8, 10), patch_size=3)
    with pytest.raises(ValueError, match="patch_size"):
        pa.random_patches(x, 11, 1)
    with pytest.raises(ValueError, match="fill"):
        pa.pad_image(x, 2, fill="noise")
    with pytest.raises(ValueError, match="pad"):
        pa.pad_image(x, -1)
    with pytest.raises(ValueError, match="pad"):
        pa.crop_image(x, 4)
