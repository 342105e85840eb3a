"""Denoising with a corrupted patch model (paper Fig. 1): figure, tables, sweeps, causes.

Runs :func:`pot_semiunbalanced.experiments.denoising.fig1_experiment` for

* the main setting (σ = 0.05, w = 0.2, M = 6000, 20 SGD steps) over several seeds,
* a sweep over the noise level σ and one over the edge weight w (seed 0),
* "why" runs: the paper's M = 24 000, a 4× smaller λ, a lower edge contrast, OT_ε with a
  larger Sinkhorn budget, and Adam instead of SGD,

two experiments at a time (one torch thread each), then writes
``benchmarks/results/denoising.md`` and ``benchmarks/results/denoising_fig1.png``.

Run: ``python benchmarks/bench_denoising.py`` (about an hour on two idle cores);
``--quick`` runs a 48×48 version of everything in a few minutes (for checking the script).
``--cache FILE`` keeps finished experiments in a pickle and reuses them on the next run.
"""
from __future__ import annotations

import argparse
import pickle
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, environment, markdown_table, write_result  # noqa: E402

from pot_semiunbalanced.experiments.denoising import (  # noqa: E402
    METHOD_LABELS,
    METHODS,
    fig1_experiment,
    paper_lambda,
)

SEEDS = (0, 1, 2)
NOISE_LEVELS = (0.02, 0.05, 0.1)
WEIGHTS = (0.0, 0.1, 0.2, 0.4)
MAIN = {"noise_std": 0.05, "w": 0.2, "size": 100, "n_model_patches": 6000, "steps": 20}
QUICK = {"size": 48, "n_model_patches": 1500, "steps": 10}


def jobs(quick: bool) -> List[Dict[str, Any]]:
    """All experiments: ``name``, ``kwargs`` of fig1_experiment, ``keep`` (full result)."""
    base = dict(MAIN, **(QUICK if quick else {}))
    lam = paper_lambda(base["size"])
    out: List[Dict[str, Any]] = []

    def add(name: str, keep: bool = False, **changes: Any) -> None:
        out.append({"name": name, "kwargs": dict(base, **changes), "keep": keep})

    for s in SEEDS:
        add(f"seed{s}", keep=(s == 0), seed=s)
    for sigma in NOISE_LEVELS:
        if sigma != base["noise_std"]:
            add(f"noise{sigma:g}", seed=0, noise_std=sigma)
    for w in WEIGHTS:
        if w != base["w"]:
            add(f"w{w:g}", seed=0, w=w)
    add("M24000", seed=0, n_model_patches=4 * base["n_model_patches"], steps=base["steps"] // 2)
    add("lam_quarter", seed=0, lam=lam / 4)
    add("contrast0.3", seed=0, contrast=0.3)
    add("balanced_iters1500", seed=0, methods=("balanced",), inner_iters=1500, inner_tol=1e-3,
        steps=base["steps"] // 2)
    add("adam", seed=0, methods=("semi",), optimizer="adam")
    return out


def _cost(job: Dict[str, Any]) -> float:
    kw = job["kwargs"]
    per_method = {"balanced": 2.0, "unbalanced": 1.0, "semi": 1.0}
    methods = kw.get("methods", METHODS)
    iters = kw.get("inner_iters", 300) / 300
    return kw["n_model_patches"] * kw["steps"] * sum(per_method[m] for m in methods) * iters


def _summarize(result: Dict[str, Any], keep: bool) -> Dict[str, Any]:
    """Drop the images (unless ``keep``) and the per-pixel maps; keep numbers."""
    diag = {
        m: {k: v for k, v in d.items() if not isinstance(v, np.ndarray)}
        for m, d in result["diagnostics"].items()
    }
    hist = {
        m: {k: v for k, v in h.items() if not isinstance(v, np.ndarray)}
        for m, h in result["history"].items()
    }
    out = {"params": result["params"], "psnr": result["psnr"], "diagnostics": diag,
           "history": hist, "time": result["time"]}
    if keep:
        out["full"] = result
    return out


def _run(job: Dict[str, Any]) -> Dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    result = fig1_experiment(progress=False, **job["kwargs"])
    summary = _summarize(result, job["keep"])
    summary["wall"] = time.perf_counter() - t0
    return summary


def run_all(todo: List[Dict[str, Any]], workers: int, cache: Optional[Path]) -> Dict[str, Any]:
    done: Dict[str, Any] = {}
    if cache is not None and cache.exists():
        with open(cache, "rb") as fh:
            done = pickle.load(fh)
    pending = [j for j in todo if j["name"] not in done]
    pending.sort(key=_cost, reverse=True)
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(_run, j): j["name"] for j in pending}
        for fut in as_completed(futures):
            name = futures[fut]
            try:
                done[name] = fut.result()
            except Exception as exc:  # keep the other experiments; a rerun retries this one
                print(f"{name} failed: {type(exc).__name__}: {exc}", flush=True)
                continue
            print(f"[{time.perf_counter() - t0:6.0f} s] {name}: "
                  + ", ".join(f"{k} {v:.2f}" for k, v in done[name]["psnr"].items()), flush=True)
            if cache is not None:
                with open(cache, "wb") as fh:
                    pickle.dump(done, fh)
    return done


# ------------------------------------------------------------------ report
def _ms(values: Sequence[float], digits: int = 2) -> str:
    v = np.asarray(values, dtype=np.float64)
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}" if v.size > 1 else f"{v[0]:.{digits}f}"


def _methods(res: Dict[str, Any]) -> List[str]:
    return [m for m in METHODS if m in res["psnr"]]


def _best(res: Dict[str, Any]) -> str:
    return METHOD_LABELS[max(_methods(res), key=lambda m: res["psnr"][m])]


def _row(label: str, res: Dict[str, Any]) -> List[Any]:
    ms = _methods(res)
    d = res["diagnostics"]
    return (
        [label, f"{res['psnr']['noisy']:.2f}"]
        + [f"{res['psnr'][m]:.2f}" if m in ms else "—" for m in METHODS]
        + [_best(res)]
        + [f"{d['balanced']['edge_anisotropy']:.2f}" if "balanced" in d else "—",
           f"{100 * d['balanced']['outlier_mass']:.1f} %" if "balanced" in d else "—",
           f"{100 * d['semi']['outlier_mass']:.2f} %" if "semi" in d else "—",
           f"{100 * d['unbalanced']['unrestored_fraction']:.0f} %" if "unbalanced" in d else "—",
           f"{100 * d['semi']['unrestored_fraction']:.0f} %" if "semi" in d else "—"]
    )


SWEEP_HEAD = ["", "noisy", "OT_ε", "OT_ε,ρ,ρ", "OT_ε,ρ", "best", "A(OT_ε)",
              "outlier mass OT_ε", "outlier mass OT_ε,ρ", "unrestored OT_ε,ρ,ρ",
              "unrestored OT_ε,ρ"]


def comparison(done: Dict[str, Any], seeds: List[Dict[str, Any]]) -> str:
    """The paper's three claims next to our measurements."""
    every = [r for r in done.values() if len(_methods(r)) == 3]
    semi_best = sum(_best(r) == METHOD_LABELS["semi"] for r in every)
    mean = lambda key, m: float(np.mean([r["diagnostics"][m][key] for r in seeds]))  # noqa: E731
    truth = float(np.mean([r["diagnostics"]["semi"]["edge_anisotropy_true"] for r in seeds]))
    psnr = {m: _ms([r["psnr"][m] for r in seeds]) for m in METHODS}
    rows = [
        ["OT_ε,ρ gives the best PSNR",
         f"OT_ε,ρ {psnr['semi']} dB, OT_ε {psnr['balanced']}, OT_ε,ρ,ρ {psnr['unbalanced']} "
         f"(3 seeds); best in {semi_best} of the {len(every)} runs with all three methods "
         "(all seeds, σ, w and variations)",
         "agrees" if semi_best == len(every) else f"agrees in {semi_best}/{len(every)}"],
        ["OT_ε reproduces edge artifacts",
         f"A = {mean('edge_anisotropy', 'balanced'):.2f} against {truth:.2f} (truth) and "
         f"{mean('edge_anisotropy', 'semi'):.2f} (OT_ε,ρ); A(err) = "
         f"{mean('error_anisotropy', 'balanced'):.2f}; {100 * mean('outlier_mass', 'balanced'):.0f} % of "
         "the transported mass lands on edge samples (w = 20 %); horizontal streaks in the error map",
         "agrees"],
        ["OT_ε,ρ,ρ leaves areas unrestored",
         f"unrestored pixels: OT_ε,ρ,ρ {100 * mean('unrestored_fraction', 'unbalanced'):.0f} %, "
         f"OT_ε {100 * mean('unrestored_fraction', 'balanced'):.0f} %, OT_ε,ρ "
         f"{100 * mean('unrestored_fraction', 'semi'):.1f} %; mean local RMSE ratio "
         f"{mean('ratio_mean', 'unbalanced'):.2f} (OT_ε,ρ,ρ) against {mean('ratio_mean', 'semi'):.2f} (OT_ε,ρ)",
         "agrees, depends on σ (see below)"],
    ]
    return ("## The paper's claims and ours\n\n"
            + markdown_table(["paper (Fig. 1)", "this reproduction (σ = 0.05, w = 0.2)", "verdict"], rows)
            + "\n")


def _mass_analysis(full: Dict[str, Any]) -> Dict[str, float]:
    """Mass kept per patch by OT_ε,ρ,ρ against the content and the noise of the patch."""
    import torch

    from pot_semiunbalanced.imaging.patches import extract_patches

    q = full["params"]
    mass = np.asarray(full["diagnostics"]["unbalanced"]["patch_mass"]).ravel()

    def patches(img: np.ndarray) -> np.ndarray:
        t = torch.as_tensor(img)[None, None]
        return extract_patches(t, q["patch_size"], stride=q["stride"])[0].numpy()

    clean, noisy = patches(full["x_true"]), patches(full["y"])

    def rank_corr(a: np.ndarray, b: np.ndarray) -> float:
        ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
        return float(np.corrcoef(ra, rb)[0, 1])

    return {
        "mean": float(mass.mean()), "min": float(mass.min()), "max": float(mass.max()),
        "expected": float(np.exp(-q["patch_size"] ** 2 * q["noise_std"] ** 2 / q["rho"])),
        "corr_contrast": rank_corr(mass, ((clean - 0.5) ** 2).sum(1)),
        "corr_noise": rank_corr(mass, ((noisy - clean) ** 2).sum(1)),
    }


def _ranking_sentence(done: Dict[str, Any], keys: List[str], what: str) -> str:
    """'OT_ε,ρ is first at every ...; order of the others' from the runs ``keys``."""
    runs = [done[k] for k in keys if k in done]
    first = [_best(r) for r in runs]
    orders = [" > ".join(METHOD_LABELS[m] for m in sorted(_methods(r), key=lambda m: -r["psnr"][m]))
              for r in runs]
    head = (f"{first[0]} is first at every {what.split(' ')[0]}"
            if len(set(first)) == 1 else f"first: {', '.join(first)}")
    return f"{head}; orders at {what}: " + "; ".join(orders) + "."


def findings(done: Dict[str, Any], base: Dict[str, Any]) -> str:
    """What the runs say about the paper's claims and the causes of the differences."""
    main = done["seed0"]
    P = lambda key, m: done[key]["psnr"][m]  # noqa: E731
    D = lambda key, m, k: done[key]["diagnostics"][m][k]  # noqa: E731
    L = ["## What the runs show, and why\n"]
    have = lambda *keys: all(k in done for k in keys)  # noqa: E731
    if have("noise0.02", "noise0.1") and "full" in main:
        ma = _mass_analysis(main["full"])
        L.append(
            "**Noise level (not given in the paper).** OT_ε,ρ,ρ keeps for image patch i the mass "
            "e^{−f_i/ρ} (relative to 1/N), and f_i is about the cost of transporting the patch, i.e. "
            "its noise energy p²σ² plus its misfit to the model: e^{−64σ²/ρ} = "
            + ", ".join(f"{np.exp(-64 * s ** 2 / 0.1):.2g}" for s in NOISE_LEVELS)
            + f" for σ = {', '.join(f'{s:g}' for s in NOISE_LEVELS)}. Measured at σ = "
            f"{base['noise_std']} (seed 0): mean kept mass {ma['mean']:.2f} (expected "
            f"{ma['expected']:.2f}), from {ma['min']:.3f} to {ma['max']:.2f}; its rank correlation with "
            f"the contrast of the clean patch ‖x* − 0.5‖² is {ma['corr_contrast']:.2f}, with the noise "
            f"energy of the patch {ma['corr_noise']:.2f}. Patches in the darkest and brightest blobs — "
            "the rarer ones under N1 — keep the least mass, receive the weakest prior gradient and stay "
            "noisy: these are the *areas not restored* (mass map in the figure). Hence OT_ε,ρ,ρ is almost "
            f"as good as OT_ε,ρ at σ = 0.02 ({P('noise0.02', 'unbalanced'):.2f} against "
            f"{P('noise0.02', 'semi'):.2f} dB) and restores nothing at σ = 0.1 "
            f"({P('noise0.1', 'unbalanced') - P('noise0.1', 'noisy'):+.2f} dB). OT_ε's edges hurt most at "
            f"low noise: at σ = 0.02 it ends {P('noise0.02', 'noisy') - P('noise0.02', 'balanced'):.1f} dB "
            "*below* the noisy input. "
            + _ranking_sentence(done, ["noise0.02", "seed0", "noise0.1"], "σ = " + "/".join(
                f"{s:g}" for s in NOISE_LEVELS))
            + " We use σ = 0.05 because there the three behaviours of the paper show at once. "
            "At σ = 0.02 the *unrestored* measure also flags "
            f"{100 * D('noise0.02', 'semi', 'unrestored_fraction'):.0f} % of OT_ε,ρ's pixels: at that "
            "noise level the error of the prior itself is as large as the noise (the measure says "
            "\"not better than the input\", not \"untouched\").\n")
    if have("lam_quarter", "adam"):
        a = done["adam"]["history"]["semi"]
        k_best = int(np.argmax(a["psnr"]))
        L.append(
            "**λ and the loss scale.** With the data term summed over pixels and the OT term a mean "
            "over patches, the paper's λ keeps λ/(λ + 2·16/N) = 57 % of the noisy value at a stationary "
            "point (module docstring of `experiments.denoising`), which dilutes both failure modes. With "
            f"λ/4: OT_ε falls to {P('lam_quarter', 'balanced'):.2f} dB, below the noisy input, with "
            f"A = {D('lam_quarter', 'balanced', 'edge_anisotropy'):.2f} (strong streaks); OT_ε,ρ,ρ "
            f"reaches {P('lam_quarter', 'unbalanced'):.2f} dB with "
            f"{100 * D('lam_quarter', 'unbalanced', 'unrestored_fraction'):.0f} % unrestored (its small "
            f"masses are compensated by the stronger prior); OT_ε,ρ reaches {P('lam_quarter', 'semi'):.2f} "
            "dB. The size of both failure modes therefore depends on how λ is normalised, which the paper "
            "does not state; the ranking's first place does not. The paper's λ is not the PSNR-best one "
            "under our convention: Adam's path passes "
            f"{a['psnr'][k_best]:.2f} dB at step {k_best + 1} before settling lower.\n")
    if have("M24000"):
        h = base["steps"] // 2
        diffs = [abs(done["M24000"]["history"][m]["psnr"][h - 1] - main["history"][m]["psnr"][h - 1])
                 for m in METHODS]
        L.append(
            f"**Number of model patches M.** The paper's M = {4 * base['n_model_patches']} against our "
            f"{base['n_model_patches']}, both after {h} steps: PSNR differences ≤ {max(diffs):.2f} dB, "
            "same outlier mass, anisotropy and unrestored share. Each image patch is matched to about "
            f"M/N = {base['n_model_patches'] / ((base['size'] - 8) // 2 + 1) ** 2:.1f} model patches "
            f"instead of {4 * base['n_model_patches'] / ((base['size'] - 8) // 2 + 1) ** 2:.1f}; that "
            "changes neither the fraction of mass sent to edges (w, fixed by the constraint) nor the "
            "result. The demo and the sweeps use M = 6000 (4× cheaper per Sinkhorn iteration).\n")
    if have("balanced_iters1500"):
        b = done["balanced_iters1500"]["history"]["balanced"]
        L.append(
            "**Inner solver convergence.** OT_ε never reaches the residual 1e-2 within 300 iterations "
            f"(final residual {main['history']['balanced']['inner_error'][-1]:.1e}); with up to 1500 "
            f"iterations ({np.mean(b['n_iter']):.0f} per step, residual {b['inner_error'][-1]:.1e}) its "
            f"PSNR changes by {abs(b['psnr'][-1] - main['history']['balanced']['psnr'][len(b['psnr']) - 1]):.2f} dB "
            f"and its outlier mass goes from {100 * D('seed0', 'balanced', 'outlier_mass'):.1f} % to "
            f"{100 * D('balanced_iters1500', 'balanced', 'outlier_mass'):.1f} %. The edge artifacts are not "
            "a solver effect: the capped solve already sends a share w of the mass to the edge samples.\n")
    if have("contrast0.3", "w0"):
        L.append(
            "**Edge contrast.** With a step of 0.3 instead of 0.6, OT_ε loses only "
            f"{P('w0', 'balanced') - P('contrast0.3', 'balanced'):.2f} dB against the exact model (w = 0), "
            f"A = {D('contrast0.3', 'balanced', 'edge_anisotropy'):.2f}: low-contrast edges are nearly "
            f"harmless. OT_ε,ρ now transports {100 * D('contrast0.3', 'semi', 'outlier_mass'):.1f} % of its "
            "mass to edge samples (they are closer to the texture) and keeps its PSNR. The paper does "
            "not give the contrast of N2; the harm done by OT_ε grows with it.\n")
    if have("w0", "w0.1", "w0.4"):
        drops = [P("w0", "balanced") - P(k, "balanced") for k in ("w0.1", "seed0", "w0.4")]
        L.append(
            "**Share of outliers w.** OT_ε loses "
            + "/".join(f"{d:.1f}" for d in drops)
            + " dB at w = 0.1/0.2/0.4 against w = 0 and sends exactly a share w of its mass to edge "
            f"samples; OT_ε,ρ is flat ({P('w0', 'semi'):.2f} → {P('w0.4', 'semi'):.2f} dB) and sends none. "
            f"At w = 0 OT_ε is marginally ahead ({P('w0', 'balanced'):.2f} against {P('w0', 'semi'):.2f} "
            "dB): with an exact model the hard constraint costs nothing. OT_ε,ρ,ρ decreases slowly with "
            "w (fewer texture samples, no edge mass).\n")
    sh = main["history"]["semi"]["psnr"]
    bh = main["history"]["balanced"]["psnr"]
    L.append(
        "**Optimiser and steps.** Plain SGD with step 0.5/L settles within about 10 steps (OT_ε,ρ: "
        + ", ".join(f"{sh[k - 1]:.2f}" for k in (10, 15, 20) if k <= len(sh))
        + f" dB after 10/15/20 steps). OT_ε's PSNR peaks at step {int(np.argmax(bh)) + 1} "
        f"({max(bh):.2f} dB) and then decreases to {bh[-1]:.2f} dB as the edges build up. Adam with lr = 0.01 (the paper's super-resolution setting) moves every pixel by about "
        "lr per step whatever its gradient, overshoots and is not settled after 20 steps.\n")
    L.append(
        "**Warm start.** The model sample changes at every step, so only the image-side potential f "
        "can be carried over; its c-transform on the new sample initialises g. Measured during "
        "development (50×50, M = 4000; Sinkhorn iterations per step): cold start with ε-scaling from the "
        "diameter 145 (OT_ε,ρ) / 111 (OT_ε,ρ,ρ), warm f with ε-scaling from 0.1 116 / 84 and a 3× smaller "
        "OT_ε residual at the cap; a warm start without ε-scaling was worse than cold (295 against 144). "
        "The PSNRs did not change. Default: warm f, ε-scaling from 0.1.\n")
    return "\n".join(L)


def report(done: Dict[str, Any], quick: bool, wall: float, workers: int) -> str:
    base = dict(MAIN, **(QUICK if quick else {}))
    seeds = [done[f"seed{s}"] for s in SEEDS]
    main = seeds[0]
    lam = main["params"]["lam"]
    L = []
    L.append("# Denoising a Gaussian texture with a corrupted patch model (paper Fig. 1)\n")
    L.append(f"Produced by `benchmarks/bench_denoising.py`{' --quick' if quick else ''}; "
             f"environment: {environment()}. {len(done)} experiments, {workers} at a time "
             f"(one torch thread each), {wall / 60:.0f} min of wall time for this run.\n")
    L.append("## Setting\n")
    L.append(
        f"- Ground truth: {base['size']}×{base['size']} periodic ADSN texture, Gaussian spot of std "
        "2 px, pixel std 0.12, mean 0.5 (`textures.adsn`). Observation y = x* + σ N(0, 1), not clipped.\n"
        "- Model: (1 − w) N1 + w N2 (`textures.corrupted_patch_model`): N1 the exact law of the "
        "8×8 patches, N2 the same Gaussian plus a horizontal step of height 0.6 (contrast).\n"
        f"- Paper's parameters: λ = {lam:.4g}, ε = 2e-4, ρ = 0.1, patch 8, stride 2, w = 0.2. "
        f"Data term summed over pixels, OT with uniform weights (a mean over the "
        f"{((base['size'] - 8) // 2 + 1) ** 2} patches).\n"
        f"- Our choices: σ = {base['noise_std']} (the paper gives none), M = "
        f"{base['n_model_patches']} model patches per step (paper: 24 000), "
        f"{base['steps']} plain SGD steps with step 0.5/L, L = λ + 2·16/N, from x = y; each step "
        "solves Sinkhorn to a relative marginal residual 1e-2 (at most 300 iterations), "
        "f warm-started from the previous step, ε-scaling 0.8 from 0.1.\n"
        "- PSNR on the whole image. Diagnostics: **A** = edge anisotropy (mean squared vertical "
        "over horizontal differences; horizontal edges raise it, the ground truth has "
        f"A ≈ {np.mean([r['diagnostics']['semi']['edge_anisotropy_true'] for r in seeds]):.2f}); "
        "**A(err)** the same on x̂ − x*; **unrestored** = share of pixels whose 9×9 local RMSE "
        "is above 90 % of the noisy input's; **outlier mass** = share of the transported model "
        "mass that lands on N2 samples (mean over the last half of the steps).\n"
    )
    L.append("## Figure (seed 0)\n")
    L.append("![Fig. 1 reproduction](denoising_fig1.png)\n")
    L.append("Top: original, noisy, 64 model samples (edges are the N2 samples), restorations. "
             "Bottom: noise, local RMSE ratio and mass kept per patch for OT_ε,ρ,ρ, error maps "
             "x̂ − x* (same color scale, ±2σ).\n")

    # seeds
    L.append(f"## PSNR over {len(seeds)} seeds (σ = {base['noise_std']}, w = {base['w']})\n")
    head = ["PSNR (dB)"] + [f"seed {s}" for s in SEEDS] + ["mean ± std"]
    rows = []
    for key, label in [("noisy", "noisy")] + [(m, METHOD_LABELS[m]) for m in METHODS]:
        vals = [r["psnr"][key] for r in seeds]
        rows.append([label] + [f"{v:.2f}" for v in vals] + [_ms(vals)])
    L.append(markdown_table(head, rows) + "\n")
    head = ["mean over seeds", "A", "A(err)", "unrestored", "ratio mean", "ratio CV",
            "outlier mass", "Sinkhorn it./step", "final residual", "time (s)"]
    rows = [["ground truth", _ms([r["diagnostics"]["semi"]["edge_anisotropy_true"] for r in seeds]),
             "", "", "", "", "", "", "", ""]]
    for m in METHODS:
        ds = [r["diagnostics"][m] for r in seeds]
        hs = [r["history"][m] for r in seeds]
        rows.append([
            METHOD_LABELS[m], _ms([d["edge_anisotropy"] for d in ds]),
            _ms([d["error_anisotropy"] for d in ds]),
            f"{100 * np.mean([d['unrestored_fraction'] for d in ds]):.1f} %",
            _ms([d["ratio_mean"] for d in ds]), _ms([d["ratio_cv"] for d in ds], 3),
            f"{100 * np.mean([d['outlier_mass'] for d in ds]):.1f} %",
            f"{np.mean([np.mean(h['n_iter']) for h in hs]):.0f}",
            f"{np.mean([h['inner_error'][-1] for h in hs]):.1e}",
            f"{np.mean([r['time'][m] for r in seeds]):.0f}",
        ])
    L.append(markdown_table(head, rows) + "\n")

    L.append(comparison(done, seeds))

    # convergence
    L.append("## Convergence (seed 0)\n")
    marks = [k for k in (0, 1, 2, 3, 5, 10, 15, 20, 30) if k <= base["steps"]]
    head = ["PSNR after step"] + [str(k) for k in marks]
    rows = []
    for m in METHODS:
        h = main["history"][m]
        ps = [h["psnr_init"]] + h["psnr"]
        rows.append([METHOD_LABELS[m]] + [f"{ps[k]:.2f}" for k in marks])
    if "adam" in done:
        h = done["adam"]["history"]["semi"]
        ps = [h["psnr_init"]] + h["psnr"]
        rows.append(["OT_ε,ρ with Adam (lr 0.01)"] + [f"{ps[k]:.2f}" for k in marks])
    L.append(markdown_table(head, rows) + "\n")
    head = ["objective J at step"] + [str(k) for k in marks if k < base["steps"]]
    rows = [[METHOD_LABELS[m]] + [f"{main['history'][m]['objective'][k]:.4f}" for k in marks
                                  if k < base["steps"]] for m in METHODS]
    L.append(markdown_table(head, rows) + "\n")
    L.append("J is evaluated on the sample of each step (a stochastic estimate); its "
             "step-to-step fluctuation is the sampling noise of E[OT].\n")

    # sweeps
    def sweep(title: str, key: str, values: Sequence[float], fmt: str) -> None:
        L.append(f"## {title}\n")
        rows = []
        for v in values:
            name = f"{key}{v:g}"
            res = done[name] if name in done else main if v == base[
                "noise_std" if key == "noise" else "w"] else None
            if res is not None:
                rows.append(_row(fmt.format(v), res))
        L.append(markdown_table(SWEEP_HEAD, rows) + "\n")

    sweep("Noise level (seed 0, w = 0.2)", "noise", NOISE_LEVELS, "σ = {:g}")
    sweep("Edge weight w (seed 0, σ = 0.05)", "w", WEIGHTS, "w = {:g}")
    L.append("Outlier mass of OT_ε against w (share of transported mass on N2 samples): "
             + ", ".join(
                 f"w = {w:g}: {100 * (done.get(f'w{w:g}', main)['diagnostics']['balanced']['outlier_mass']):.1f} %"
                 for w in WEIGHTS if f"w{w:g}" in done or w == base["w"]) + ".\n")

    # why
    L.append("## Variations (seed 0, σ = 0.05, w = 0.2)\n")
    rows = [_row("main setting", main)]
    labels = {
        "M24000": f"M = {4 * base['n_model_patches']}, {base['steps'] // 2} steps",
        "lam_quarter": f"λ / 4 = {lam / 4:.4g}",
        "contrast0.3": "edge contrast 0.3",
        "balanced_iters1500": f"OT_ε: ≤ 1500 it., residual 1e-3, {base['steps'] // 2} steps",
    }
    for key, label in labels.items():
        if key in done:
            rows.append(_row(label, done[key]))
    L.append(markdown_table(SWEEP_HEAD, rows) + "\n")
    half = base["steps"] // 2
    L.append(f"Runs with {half} steps against the main setting after the same number of steps "
             "(PSNR from the histories):\n")
    rows = []
    for key, label in [("M24000", f"M = {4 * base['n_model_patches']}"),
                       ("balanced_iters1500", "OT_ε ≤ 1500 it.")]:
        if key not in done:
            continue
        for m in _methods(done[key]):
            rows.append([label, METHOD_LABELS[m], f"{main['history'][m]['psnr'][half - 1]:.2f}",
                         f"{done[key]['history'][m]['psnr'][half - 1]:.2f}"])
    L.append(markdown_table(["run", "method", f"main, step {half}", f"this run, step {half}"], rows) + "\n")
    if "balanced_iters1500" in done:
        a, b = main["history"]["balanced"], done["balanced_iters1500"]["history"]["balanced"]
        L.append(
            f"OT_ε inner solver: main setting {np.mean(a['n_iter']):.0f} it./step, final residual "
            f"{a['inner_error'][-1]:.1e}, outlier mass {100 * main['diagnostics']['balanced']['outlier_mass']:.1f} %; "
            f"with the larger budget {np.mean(b['n_iter']):.0f} it./step, residual "
            f"{b['inner_error'][-1]:.1e}, outlier mass "
            f"{100 * done['balanced_iters1500']['diagnostics']['balanced']['outlier_mass']:.1f} %.\n")
    L.append(findings(done, base))
    L.append("## Wall time\n")
    rows = [[name, f"{r['wall']:.0f}"] + [f"{r['time'][m]:.0f}" if m in r["time"] else "—"
                                          for m in METHODS] for name, r in done.items()]
    L.append(markdown_table(["experiment", "total (s)"] + [f"{METHOD_LABELS[m]} (s)" for m in METHODS],
                            rows) + "\n")
    return "\n".join(L)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="48×48 images, fewer steps")
    parser.add_argument("--workers", type=int, default=2, help="parallel experiments (default 2)")
    parser.add_argument("--cache", type=Path, default=None, help="pickle of finished experiments")
    parser.add_argument("--out-dir", type=Path, default=RESULTS, help="where to write the results")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    done = run_all(jobs(args.quick), args.workers, args.cache)
    wall = time.perf_counter() - t0
    text = report(done, args.quick, wall, args.workers)
    from pot_semiunbalanced.experiments.denoising_figures import fig1_figure

    args.out_dir.mkdir(parents=True, exist_ok=True)
    fig = fig1_figure(done["seed0"]["full"], diagnostics=True)
    fig.savefig(args.out_dir / "denoising_fig1.png", dpi=110)
    if args.out_dir == RESULTS:
        path = write_result("denoising.md", text)
    else:
        path = args.out_dir / "denoising.md"
        path.write_text(text)
    print(f"wrote {path} and {args.out_dir / 'denoising_fig1.png'} ({wall / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
