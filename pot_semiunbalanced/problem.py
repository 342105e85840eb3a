r"""The three entropic transport problems as one object: a cost, two weights, two sides.

Each side (marginal) is either *hard* (:math:`\iota(\pi_k = w_k)`) or *relaxed*
(:math:`\rho\,\mathrm{KL}(\pi_k | w_k)`). With ``reg_m`` written as in POT:

========================  ==================  =====================
problem                   ``reg_m`` here      POT spelling
========================  ==================  =====================
OT_ε (balanced)           ``(inf, inf)``      ``(inf, inf)``
OT_{ε,ρ} (the paper's)    ``ρ`` or (inf, ρ)   ``(inf, ρ)``
OT_{ε,ρ,ρ} (unbalanced)   ``(ρ, ρ)``          ``ρ`` or ``(ρ, ρ)``
========================  ==================  =====================

A scalar ``reg_m`` means the paper's semi-unbalanced problem (first marginal hard),
which differs from POT where a scalar relaxes both sides.

The dual objective (paper eq. 5, general masses) is

.. math::
    F(f, g) = -\langle a, \Phi_a^*(-f)\rangle - \langle b, \Phi_b^*(-g)\rangle
              - \varepsilon \langle a\otimes b, e^{(f\oplus g - C)/\varepsilon} - 1\rangle

with :math:`\Phi^*(q) = q` on a hard side and :math:`\rho(e^{q/\rho} - 1)` on a relaxed one.
Block maximisation gives the damped soft-min updates
:math:`f = -\tau_a\varepsilon\,\mathrm{LSE}_j(\log b_j + (g_j - C_{ij})/\varepsilon)` with
:math:`\tau = \rho/(\rho+\varepsilon)` (1 on a hard side) — the corrected factor of the
paper's Theorem 1 (see SPEC §1).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Tuple

from ._array import expm1

INF = float("inf")


@dataclass(frozen=True)
class Side:
    """One marginal constraint: hard (``rho = inf``) or KL-relaxed with strength ``rho``."""

    rho: float

    @property
    def hard(self) -> bool:
        return math.isinf(self.rho)

    def tau(self, eps: float) -> float:
        """Damping factor of the soft-min update: ρ/(ρ+ε), or 1 on a hard side."""
        return 1.0 if self.hard else self.rho / (self.rho + eps)

    def neg_conj(self, nx, f):
        r""":math:`-\Phi^*(-f)`: equals ``f`` on a hard side, :math:`\rho(1 - e^{-f/\rho})` else."""
        if self.hard:
            return f
        return -self.rho * expm1(-f / self.rho)

    def log_target(self, f):
        r"""Log of the optimal marginal density w.r.t. the weights: 0 (hard) or :math:`-f/\rho`."""
        if self.hard:
            return 0.0 * f
        return -f / self.rho

    def penalty(self, nx, p, w):
        r""":math:`\rho\,\mathrm{KL}(p|w)` for a relaxed side; 0 for a hard one (constraint assumed)."""
        if self.hard:
            return 0.0
        return self.rho * kl_div(nx, p, w)


def kl_div(nx, p, q):
    r"""Generalised KL divergence :math:`\sum p\log(p/q) - p + q` with :math:`0\log 0 = 0`."""
    pos = p > 0
    safe_p = nx.where(pos, p, nx.ones(p.shape, type_as=p))
    safe_q = nx.where(pos, q, nx.ones(q.shape, type_as=q))
    plogp = nx.where(pos, p * nx.log(safe_p / safe_q), nx.zeros(p.shape, type_as=p))
    return nx.sum(plogp - p + q)


def parse_reg_m(reg_m: Any) -> Tuple[Side, Side]:
    """Turn ``reg_m`` into the two sides ``(side_a, side_b)``.

    Parameters
    ----------
    reg_m : float or pair of floats
        A scalar ρ > 0 means the semi-unbalanced problem OT_{ε,ρ} (first marginal hard,
        second relaxed with strength ρ). A pair ``(ρ_a, ρ_b)`` sets each side; ``inf``
        makes a side hard. ``(inf, inf)`` is balanced OT_ε, ``(ρ, ρ)`` is OT_{ε,ρ,ρ}.

    Raises
    ------
    ValueError
        If a value is NaN, not positive, or the pair does not have two entries.
    """
    if isinstance(reg_m, (list, tuple)):
        if len(reg_m) != 2:
            raise ValueError(
                f"reg_m must be a scalar or a pair (rho_a, rho_b), got {len(reg_m)} values"
            )
        values = (reg_m[0], reg_m[1])
    else:
        try:
            values = (INF, float(reg_m))
        except (TypeError, ValueError):
            raise ValueError(
                f"reg_m must be a positive float, inf, or a pair of them; got {reg_m!r}"
            ) from None
    sides = []
    for name, v in zip(("reg_m[0]", "reg_m[1]"), values):
        try:
            v = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a positive float or inf, got {v!r}") from None
        if math.isnan(v) or v <= 0:
            raise ValueError(
                f"{name} must be > 0 (use inf for a hard marginal constraint), got {v}"
            )
        sides.append(Side(v))
    return sides[0], sides[1]


def check_reg(reg: Any, name: str = "reg") -> float:
    """Validate the entropic regularisation ε (> 0, finite) and return it as a float."""
    try:
        value = float(reg)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive float, got {reg!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} (the entropic regularisation ε) must be finite and > 0, got {reg}")
    return value
