"""Draft (exploration)."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import torch

from pot_semiunbalanced._utils import RngLike, as_generator
from pot_semiunbalanced.imaging.patches import extract_patches
from pot_semiunbalanced.pointcloud import sinkhorn_semi_unbalanced2_samples

INF = math.inf
METHODS = ("balanced", "unbalanced", "semi")


def method_reg_m(method, rho):
    if method == "semi":
        return rho
    if method == "balanced":
        return (INF, INF)
    if method == "unbalanced":
        return (rho, rho)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def c_transform(f, X, Y, eps, tau=1.0, block=2048):
    """g_j = -tau eps log sum_i a_i exp((f_i - C_ij)/eps), a uniform; float64 out (numpy)."""
    N = X.shape[0]
    center = X.mean(0)
    Xc, Yc = X - center, Y - center
    xx = (Xc * Xc).sum(1)
    F = torch.as_tensor(np.asarray(f), dtype=X.dtype) / eps - math.log(N)
    out = []
    for j0 in range(0, Y.shape[0], block):
        Yb = Yc[j0:j0 + block]
        C = (Yb * Yb).sum(1)[:, None] + xx[None, :] - 2.0 * (Yb @ Xc.T)
        E = F[None, :] - C.clamp_(min=0.0) / eps
        m = E.amax(1, keepdim=True)
        lse = (E - m).clamp_(min=-80.0).exp_().sum(1).log_() + m[:, 0]
        out.append(lse)
    return (-tau * eps * torch.cat(out).double()).numpy()


@dataclass
class StepInfo:
    step: int
    x: np.ndarray
    model_patches: torch.Tensor
    objective: float
    ot: float
    data: float
    psnr: Optional[float]
    n_iter: int
    inner_error: float


def denoise(y, model, *, method="semi", lam=0.0192, eps=2e-4, rho=0.1, patch_size=8, stride=2,
            n_model_patches=24000, steps=100, lr=0.01, optimizer="adam", lr_decay_from=None,
            average_from=None,
            inner_iters=300, inner_tol=1e-4, eps_scaling=0.8, warm_start=False,
            acceleration="anderson",
            dtype=torch.float32, rng=None, x_true=None, callback=None, progress=False,
            backend="auto", x0=None):
    gen = as_generator(rng)
    reg_m = method_reg_m(method, rho)
    tau_b = 1.0 if method == "balanced" else rho / (rho + eps)
    yt = torch.as_tensor(np.asarray(y), dtype=dtype)
    x = (yt.clone() if x0 is None else torch.as_tensor(np.asarray(x0), dtype=dtype).clone()).requires_grad_(True)
    if optimizer == "adam":
        opt = torch.optim.Adam([x], lr=lr)
    else:
        opt = torch.optim.SGD([x], lr=lr)
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    hist = {k: [] for k in ("objective", "ot", "data", "psnr", "n_iter", "inner_error", "time", "lr")}
    f_prev = None
    xs = None
    n_avg = 0
    t0 = time.perf_counter()
    for k in range(steps):
        if lr_decay_from is not None and k >= lr_decay_from:
            frac = (k - lr_decay_from + 1) / max(1, steps - lr_decay_from)
            for grp in opt.param_groups:
                grp["lr"] = lr * max(1.0 - frac, 0.0) + 1e-12
        Y = torch.from_numpy(model.sample(n_model_patches, rng=gen, dtype=np_dtype))
        X = extract_patches(x[None, None], patch_size, stride=stride)[0]
        ws = None
        if warm_start and f_prev is not None:
            g0 = c_transform(f_prev, X.detach(), Y, eps, tau_b)
            ws = (f_prev, g0)
        ot, log = sinkhorn_semi_unbalanced2_samples(
            X, Y, eps, reg_m, warmstart=ws, log=True, numItermax=inner_iters, stopThr=inner_tol,
            eps_scaling=None if ws is not None else eps_scaling, warn=False, backend=backend,
            acceleration=acceleration)
        f_prev = log["potentials_work"][0]
        data = 0.5 * lam * ((x - yt) ** 2).sum()
        J = data + ot
        opt.zero_grad()
        J.backward()
        opt.step()
        xd = x.detach()
        if average_from is not None and k >= average_from:
            n_avg += 1
            xs = xd.clone() if xs is None else xs + (xd - xs) / n_avg
        xcur = xs if xs is not None else xd
        p = None
        if x_true is not None:
            mse = float(((xcur.double() - torch.as_tensor(x_true)) ** 2).mean())
            p = 10 * math.log10(1.0 / mse)
        hist["objective"].append(float(J)); hist["ot"].append(float(ot)); hist["data"].append(float(data))
        hist["psnr"].append(p); hist["n_iter"].append(log["n_iter"]); hist["inner_error"].append(log["err"][-1])
        hist["time"].append(time.perf_counter() - t0); hist["lr"].append(opt.param_groups[0]["lr"])
        if progress:
            print(k, "J %.5f ot %.5f psnr %s it %d err %.1e t %.1f" % (float(J), float(ot), p, log["n_iter"], log["err"][-1], hist["time"][-1]), flush=True)
        if callback is not None:
            callback(StepInfo(k, xd.numpy().copy(), Y, float(J), float(ot), float(data), p, log["n_iter"], log["err"][-1]))
    out = xs if xs is not None else x.detach()
    return out.double().numpy(), hist
