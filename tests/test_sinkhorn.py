"""Tests of the dense solver: references are POT (where it is stable), strong duality,
the fixed-point equations, finite differences, and float64 solutions for float32 runs."""
import logging
import warnings

import numpy as np
import ot
import pytest
import torch

from pot_semiunbalanced import sinkhorn_semi_unbalanced, sinkhorn_semi_unbalanced2
from pot_semiunbalanced.engine import eps_schedule

from .conftest import to_backend, to_numpy

INF = np.inf


def problem(rng, n=40, m=55, d=3, scale=1.0, masses=(1.0, 1.0)):
    x = rng.normal(size=(n, d))
    y = rng.normal(size=(m, d)) + 0.5
    C = ot.dist(x, y)
    C = scale * C / C.max()
    a = rng.uniform(0.5, 1.5, n)
    b = rng.uniform(0.5, 1.5, m)
    return masses[0] * a / a.sum(), masses[1] * b / b.sum(), C


def explicit_primal(P, a, b, C, eps, reg_m):
    """Primal objective computed from the plan matrix itself (independent of the solver)."""
    rho_a, rho_b = reg_m

    def kl(p, q):
        p, q = np.asarray(p), np.asarray(q)
        pos = p > 0
        return np.sum(p[pos] * np.log(p[pos] / q[pos])) - p.sum() + q.sum()

    val = np.sum(C * P) + eps * kl(P.ravel(), np.outer(a, b).ravel())
    if np.isfinite(rho_a):
        val += rho_a * kl(P.sum(1), a)
    if np.isfinite(rho_b):
        val += rho_b * kl(P.sum(0), b)
    return val


# ------------------------------------------------------------------ references
@pytest.mark.parametrize("eps", [1e-1, 3e-2, 1e-2])
@pytest.mark.parametrize("method", ["alternating", "symmetric"])
def test_plan_matches_pot_semi_relaxed(nx, rng, eps, method):
    a, b, C = problem(rng)
    rho = 0.05
    P_ref = ot.unbalanced.sinkhorn_unbalanced(a, b, C, eps, (INF, rho), numItermax=100000, stopThr=1e-13)
    ab, bb, Cb = to_backend(nx, a, b, C)
    P = sinkhorn_semi_unbalanced(ab, bb, Cb, eps, rho, method=method, stopThr=1e-12, numItermax=20000)
    P = to_numpy(P)
    assert np.abs(P - P_ref).max() <= 1e-7 * P_ref.max()


@pytest.mark.parametrize("reg_m", [(0.05, 0.05), (0.3, 0.02), (0.05, INF), (INF, INF)])
def test_other_problems_match_pot(nx, rng, reg_m):
    a, b, C = problem(rng, masses=(1.0, 1.3))
    eps = 2e-2
    if reg_m == (INF, INF):
        a, b, C = problem(rng)
        P_ref = ot.sinkhorn(a, b, C, eps, method="sinkhorn_log", numItermax=100000, stopThr=1e-14)
    else:
        P_ref = ot.unbalanced.sinkhorn_unbalanced(a, b, C, eps, reg_m, numItermax=100000, stopThr=1e-14)
    ab, bb, Cb = to_backend(nx, a, b, C)
    P = to_numpy(sinkhorn_semi_unbalanced(ab, bb, Cb, eps, reg_m, stopThr=1e-12, numItermax=20000))
    assert np.abs(P - P_ref).max() <= 1e-7 * P_ref.max()


def test_large_rho_recovers_balanced_sinkhorn(rng):
    a, b, C = problem(rng)
    eps = 5e-2
    P_bal = ot.sinkhorn(a, b, C, eps, numItermax=100000, stopThr=1e-13)
    diffs = []
    for rho in [1e1, 1e3, 1e5]:
        P = sinkhorn_semi_unbalanced(a, b, C, eps, rho, stopThr=1e-12, numItermax=20000)
        diffs.append(np.abs(P - P_bal).max())
    assert diffs[0] > diffs[1] > diffs[2]  # monotone approach, O(eps/rho)
    assert diffs[2] <= 1e-5 * P_bal.max()


def test_uniform_weights_from_empty_lists(rng):
    _, _, C = problem(rng)
    n, m = C.shape
    P1 = sinkhorn_semi_unbalanced([], [], C, 0.05, 0.1)
    P2 = sinkhorn_semi_unbalanced(np.full(n, 1 / n), np.full(m, 1 / m), C, 0.05, 0.1)
    np.testing.assert_allclose(P1, P2, rtol=0, atol=1e-15)


# ------------------------------------------------------------------ optimality
@pytest.mark.parametrize("reg_m", [0.05, (INF, 0.05), (0.05, 0.1), (INF, INF), (0.1, INF)])
@pytest.mark.parametrize("eps", [1e-1, 1e-3])
def test_strong_duality_and_fixed_point(nx, rng, reg_m, eps):
    a, b, C = problem(rng, masses=(1.0, 0.7))
    if reg_m == (INF, INF):
        a, b, C = problem(rng)
    ab, bb, Cb = to_backend(nx, a, b, C)
    P, log = sinkhorn_semi_unbalanced(ab, bb, Cb, eps, reg_m, log=True, stopThr=1e-13, numItermax=50000)
    loss = sinkhorn_semi_unbalanced2(ab, bb, Cb, eps, reg_m, stopThr=1e-13, numItermax=50000)
    P = to_numpy(P)
    f, g = to_numpy(log["f"]), to_numpy(log["g"])
    rho_a, rho_b = (INF, reg_m) if np.isscalar(reg_m) else reg_m
    primal = explicit_primal(P, a, b, C, eps, (rho_a, rho_b))
    assert abs(primal - float(loss)) <= 1e-8 * max(1.0, abs(primal))
    assert abs(float(log["primal"]) - float(log["dual"])) <= 1e-10
    # the plan has the Gibbs form of the potentials
    np.testing.assert_allclose(P, np.outer(a, b) * np.exp((f[:, None] + g[None, :] - C) / eps), rtol=1e-9, atol=1e-15 * P.max())
    # marginal optimality conditions
    t1 = a if np.isinf(rho_a) else a * np.exp(-f / rho_a)
    t2 = b if np.isinf(rho_b) else b * np.exp(-g / rho_b)
    np.testing.assert_allclose(P.sum(1), t1, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(P.sum(0), t2, rtol=1e-9, atol=1e-14)
    if np.isinf(rho_a):  # hard side exact after the final f-update
        assert np.abs(P.sum(1) - a).sum() / a.sum() <= 1e-12
        assert log["marginal_error"] <= 1e-12


def test_loss_equals_paper_eq6_for_probability_weights(rng):
    a, b, C = problem(rng)
    eps, rho = 1e-2, 0.05
    val, log = sinkhorn_semi_unbalanced2(a, b, C, eps, rho, log=True, stopThr=1e-12)
    f, g = log["f"], log["g"]
    eq6 = a @ f - b @ (rho * (np.exp(-g / rho) - 1))
    assert abs(val - eq6) <= 1e-12


# ------------------------------------------------------------------ regimes where POT fails
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_small_eps_large_costs_float32_matches_float64(nx, rng, dtype):
    a, b, C = problem(rng, n=60, m=70, scale=10.0)
    eps, rho = 1e-4, 0.05
    ref, log64 = sinkhorn_semi_unbalanced2(a, b, C, eps, rho, log=True, stopThr=1e-10, numItermax=20000)
    assert log64["converged"]
    ab, bb, Cb = to_backend(nx, a, b, C, dtype=dtype)
    P, log = sinkhorn_semi_unbalanced(ab, bb, Cb, eps, rho, log=True, stopThr=1e-6, numItermax=20000)
    val = sinkhorn_semi_unbalanced2(ab, bb, Cb, eps, rho, stopThr=1e-6, numItermax=20000)
    P = to_numpy(P).astype(np.float64)
    assert P.dtype == np.float64 and to_numpy(val).dtype == dtype
    assert np.all(np.isfinite(P)) and P.sum() > 0.5
    assert np.abs(P.sum(1) - a).sum() / a.sum() <= 1e-4
    assert abs(float(val) - ref) <= 1e-4 * abs(ref)
    # POT's exp-domain solver breaks here: zero / NaN plan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        P_pot = ot.unbalanced.sinkhorn_unbalanced(a, b, C, eps, (INF, rho))
    assert not (np.all(np.isfinite(P_pot)) and abs(P_pot.sum() - 1) < 0.5)


def test_log_domain_and_scaling_domain_agree(rng):
    a, b, C = problem(rng, scale=5.0)
    eps, rho = 1e-3, 0.02
    P1 = sinkhorn_semi_unbalanced(a, b, C, eps, rho, domain="scaling", stopThr=1e-12, numItermax=20000)
    P2 = sinkhorn_semi_unbalanced(a, b, C, eps, rho, domain="log", stopThr=1e-12, numItermax=20000)
    np.testing.assert_allclose(P1, P2, rtol=1e-7, atol=1e-12 * P1.max())


@pytest.mark.parametrize("options", [dict(method="symmetric"), dict(acceleration=None),
                                     dict(eps_scaling=0.5), dict(method="symmetric", eps_scaling=0.7)])
def test_methods_reach_the_same_solution(rng, options):
    a, b, C = problem(rng)
    eps, rho = 5e-3, 0.05
    P_ref = sinkhorn_semi_unbalanced(a, b, C, eps, rho, stopThr=1e-12, numItermax=20000)
    P = sinkhorn_semi_unbalanced(a, b, C, eps, rho, stopThr=1e-12, numItermax=20000, **options)
    np.testing.assert_allclose(P, P_ref, rtol=1e-7, atol=1e-9 * P_ref.max())


def test_anderson_beats_the_tau_contraction(rng):
    """Plain iterations need about log(tol)/log(tau) steps; the accelerated ones far fewer."""
    a, b, C = problem(rng, n=150, m=150)
    eps, rho, tol = 1e-3, 0.01, 1e-8
    tau = rho / (rho + eps)
    _, log_plain = sinkhorn_semi_unbalanced2(a, b, C, eps, rho, acceleration=None, stopThr=tol,
                                             numItermax=10000, log=True)
    _, log_acc = sinkhorn_semi_unbalanced2(a, b, C, eps, rho, stopThr=tol, numItermax=10000, log=True)
    assert log_plain["converged"] and log_acc["converged"]
    assert log_plain["n_iter"] >= 0.5 * np.log(tol) / np.log(tau)
    assert log_acc["n_iter"] <= 0.5 * np.log(tol) / np.log(tau)
    assert log_acc["n_iter"] <= 0.5 * log_plain["n_iter"]


def test_eps_schedule():
    s = eps_schedule(1e-3, 1.0, 0.5)
    assert s[0] == 1.0 and s[-1] == 1e-3 and all(x > y for x, y in zip(s, s[1:]))
    assert eps_schedule(1e-3, None, 0.5) == [1e-3]
    with pytest.raises(ValueError, match="eps_scaling"):
        eps_schedule(1e-3, 1.0, 1.5)


# ------------------------------------------------------------------ gradients
@pytest.mark.parametrize("reg_m", [0.05, (0.05, 0.1), (INF, INF)])
def test_envelope_gradients_equal_finite_differences(rng, reg_m):
    a, b, C = problem(rng, n=12, m=15, masses=(1.0, 1.0 if reg_m == (INF, INF) else 1.4))
    eps = 5e-2
    kw = dict(stopThr=1e-14, numItermax=100000)
    at, bt, Ct = (torch.tensor(x, requires_grad=True) for x in (a, b, C))
    loss = sinkhorn_semi_unbalanced2(at, bt, Ct, eps, reg_m, **kw)
    loss.backward()

    def value(a_, b_, C_):
        return float(sinkhorn_semi_unbalanced2(a_, b_, C_, eps, reg_m, **kw))

    h = 1e-6
    for name, x, grad in (("a", a, at.grad), ("b", b, bt.grad), ("C", C, Ct.grad)):
        direction = rng.normal(size=x.shape)
        if reg_m == (INF, INF) and name != "C":
            direction -= direction.mean()  # balanced OT needs equal masses
        args_p = {"a": a, "b": b, "C": C}
        args_m = dict(args_p)
        args_p[name] = x + h * direction
        args_m[name] = x - h * direction
        fd = (value(args_p["a"], args_p["b"], args_p["C"]) - value(args_m["a"], args_m["b"], args_m["C"])) / (2 * h)
        an = float((grad.numpy() * direction).sum())
        assert abs(fd - an) <= 1e-6 * max(1.0, abs(fd)), name


def test_gradient_wrt_cost_is_the_plan(rng):
    a, b, C = problem(rng)
    Ct = torch.tensor(C, requires_grad=True)
    loss = sinkhorn_semi_unbalanced2(torch.tensor(a), torch.tensor(b), Ct, 1e-2, 0.05, stopThr=1e-12)
    loss.backward()
    P = sinkhorn_semi_unbalanced(a, b, C, 1e-2, 0.05, stopThr=1e-12)
    np.testing.assert_allclose(Ct.grad.numpy(), P, rtol=1e-10, atol=1e-16)


# ------------------------------------------------------------------ warm start / convergence
def test_warm_start_from_converged_potentials(nx, rng):
    a, b, C = problem(rng)
    ab, bb, Cb = to_backend(nx, a, b, C)
    eps, rho = 1e-3, 0.05
    P0, log0 = sinkhorn_semi_unbalanced(ab, bb, Cb, eps, rho, log=True, stopThr=1e-9, numItermax=5000)
    P1, log1 = sinkhorn_semi_unbalanced(ab, bb, Cb, eps, rho, log=True, stopThr=1e-9,
                                        warmstart=(log0["f"], log0["g"]))
    assert log0["n_iter"] > 10
    assert log1["n_iter"] <= 2
    np.testing.assert_allclose(to_numpy(P1), to_numpy(P0), rtol=1e-7, atol=1e-12)


def test_non_convergence_warns_and_is_logged(rng, caplog):
    a, b, C = problem(rng)
    with caplog.at_level(logging.WARNING, logger="pot_semiunbalanced"):
        with pytest.warns(UserWarning, match="did not converge") as record:
            _, log = sinkhorn_semi_unbalanced(a, b, C, 1e-3, 0.05, numItermax=3, log=True)
    assert record[0].filename == __file__  # the warning points at the caller's line
    assert not log["converged"] and log["n_iter"] == 3 and len(log["err"]) == 3
    assert any("did not converge" in r.message for r in caplog.records)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sinkhorn_semi_unbalanced(a, b, C, 1e-3, 0.05, numItermax=3, warn=False)


def test_callback_sees_progress_and_can_stop(rng):
    a, b, C = problem(rng)
    seen = []

    def cb(info):
        seen.append(info)
        return info.iteration >= 4

    _, log = sinkhorn_semi_unbalanced(a, b, C, 1e-3, 0.05, log=True, callback=cb, warn=False)
    assert [i.iteration for i in seen] == [1, 2, 3, 4] and log["n_iter"] == 4
    assert seen[-1].error == log["err"][-1] and seen[0].eps == 1e-3


# ------------------------------------------------------------------ dtype / device / inputs
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_and_device_follow_inputs(nx, rng, dtype):
    a, b, C = problem(rng)
    ab, bb, Cb = to_backend(nx, a, b, C, dtype=dtype)
    P, log = sinkhorn_semi_unbalanced(ab, bb, Cb, 1e-2, 0.1, log=True)
    val = sinkhorn_semi_unbalanced2(ab, bb, Cb, 1e-2, 0.1)
    for x in (P, val, log["f"], log["g"], log["dual"]):
        assert x.dtype == Cb.dtype
        if isinstance(Cb, torch.Tensor):
            assert isinstance(x, torch.Tensor) and x.device == Cb.device
        else:
            assert isinstance(x, (np.ndarray, np.generic))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(a=np.array([-0.1, 0.6, 0.5])), "a has negative"),
        (dict(b=np.array([np.nan, 0.5, 0.5, 0.1])), "b contains NaN"),
        (dict(a=np.ones(4) / 4), "a has 4 entries"),
        (dict(b=np.zeros(4)), "b sums to zero"),
        (dict(reg=0.0), "reg"),
        (dict(reg=-1.0), "reg"),
        (dict(reg_m=0.0), "reg_m"),
        (dict(reg_m=(1.0, -2.0)), "reg_m\\[1\\]"),
        (dict(reg_m=(1.0, 2.0, 3.0)), "reg_m"),
        (dict(reg_m=float("nan")), "reg_m"),
        (dict(M=np.full((3, 4), np.nan)), "M contains NaN"),
        (dict(M=np.ones(3)), "M must be a 2-D"),
        (dict(method="foo"), "method"),
        (dict(warmstart=(np.zeros(2), np.zeros(4))), "warmstart"),
        (dict(M=np.zeros((0, 4)), a=np.array([]), b=np.array([])), "M must be non-empty"),
        (dict(stopThr=-1.0), "stopThr must be >= 0"),
        (dict(stopThr=float("nan")), "stopThr must be >= 0"),
        (dict(anderson_depth=-1), "anderson_depth must be an integer >= 0"),
        (dict(anderson_depth=2.5), "anderson_depth must be an integer >= 0"),
        (dict(anderson_depth="8"), "anderson_depth must be an integer >= 0"),
        (dict(stopThr=None), "stopThr must be >= 0"),
    ],
)
def test_bad_inputs_raise_clear_errors(kwargs, match):
    args = dict(a=np.ones(3) / 3, b=np.ones(4) / 4, M=np.random.default_rng(0).random((3, 4)),
                reg=0.1, reg_m=0.1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        sinkhorn_semi_unbalanced(args.pop("a"), args.pop("b"), args.pop("M"), **args)


def test_integer_cost_rejected():
    with pytest.raises(TypeError, match="float32 or float64"):
        sinkhorn_semi_unbalanced([], [], np.ones((3, 3), dtype=np.int64), 0.1, 0.1)


def test_zero_weights_are_allowed(rng):
    a, b, C = problem(rng)
    a[:5] = 0
    b[:7] = 0
    a /= a.sum()
    P, log = sinkhorn_semi_unbalanced(a, b, C, 1e-2, 0.05, log=True, stopThr=1e-10)
    assert np.all(np.isfinite(P)) and np.all(P[:5] == 0) and np.all(P[:, :7] == 0)
    # same as the problem restricted to the support (POT itself divides 0/0 there)
    P_ref = ot.unbalanced.sinkhorn_unbalanced(a[5:], b[7:], C[5:, 7:], 1e-2, (INF, 0.05), stopThr=1e-13,
                                              numItermax=100000)
    np.testing.assert_allclose(P[5:, 7:], P_ref, rtol=1e-6, atol=1e-7 * P_ref.max())
