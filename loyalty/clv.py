"""Customer lifetime value: BG/NBD for purchase frequency and P(alive), Gamma-Gamma for spend.

Pure (numpy, scipy), no Django: maximum likelihood fits as in Fader, Hardie & Lee (2005) "Counting your
customers the easy way" and Fader, Hardie & Lee (2005) "RFM and CLV: using iso-value curves", checked on
the CDNOW data shipped in the `lifetimes` package (the library's code is not used).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.integrate import quad
from scipy.optimize import minimize
from scipy.special import betaln, digamma, gammaln, hyp2f1
from threadpoolctl import threadpool_limits

DAYS_PER_YEAR = 365.25
# Starting points (in log space) for the multi-start optimiser: the paper's CDNOW neighbourhood, a flat
# one, and a "most customers stay" one; the best local optimum wins.
_BGNBD_STARTS = (
    np.log([0.25, 4.0, 0.8, 2.5]),
    np.log([1.0, 1.0, 1.0, 1.0]),
    np.log([0.5, 10.0, 0.2, 5.0]),
)
_GAMMA_GAMMA_STARTS = (
    np.log([1.0, 2.0, 1.0]),
    np.log([5.0, 4.0, 15.0]),
    np.log([2.0, 8.0, 50.0]),
)
# Parameters live in exp(-20)..exp(20): wide enough for any real shop, narrow enough to keep exp() finite.
_LOG_BOUND = 20.0
# Gamma-Gamma's q must exceed 1 for the population mean spend p·γ/(q−1) to exist.
_MIN_Q = 1.0 + 1e-6
# The objective's value where the likelihood cannot be evaluated or the parameters leave their bounds.
_INFEASIBLE = 1e300


@dataclass(frozen=True)
class BgNbdParams:
    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    customers: int
    # True when a parameter ended on its search bound (e^±20): the data do not identify the model (a shop
    # where nobody bought twice); predictions are still defined but should not be trusted.
    at_bound: bool = False


@dataclass(frozen=True)
class GammaGammaParams:
    p: float
    q: float
    gamma: float
    log_likelihood: float
    customers: int  # customers with at least one repeat purchase (the model's sample)
    at_bound: bool = False  # as BgNbdParams.at_bound


def _as_float_arrays(*arrays: np.ndarray | float) -> tuple[np.ndarray, ...]:
    return tuple(np.asarray(array, dtype=np.float64) for array in arrays)


def _check_rfm_inputs(frequency: np.ndarray, recency: np.ndarray, age: np.ndarray) -> None:
    if not (frequency.shape == recency.shape == age.shape):
        raise ValueError("frequency, recency and age must have the same shape")
    if frequency.size == 0:
        raise ValueError("at least one customer is needed")
    if not (np.isfinite(frequency).all() and np.isfinite(recency).all() and np.isfinite(age).all()):
        raise ValueError("frequency, recency and age must be finite")
    if (frequency < 0).any() or (recency < 0).any() or (recency > age + 1e-9).any():
        raise ValueError("need frequency >= 0 and 0 <= recency <= age")


def _compress(*columns: np.ndarray) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Unique rows and their counts: shops repeat the same (x, t_x, T) a lot, so the likelihood is a
    weighted sum over far fewer rows."""
    stacked = np.column_stack(columns)
    unique_rows, counts = np.unique(stacked, axis=0, return_counts=True)
    return tuple(unique_rows[:, i] for i in range(len(columns))), counts.astype(np.float64)


@dataclass(frozen=True)
class _Optimum:
    log_params: np.ndarray
    negative_log_likelihood: float
    at_bound: bool


Objective = Callable[[np.ndarray], tuple[float, np.ndarray]]
_LBFGSB_OPTIONS = {"ftol": 1e-14, "gtol": 1e-9, "maxiter": 3000}


def _best_minimum(
    negative_log_likelihood: Objective, starts: tuple[np.ndarray, ...], *, lower: np.ndarray, upper: np.ndarray
) -> _Optimum:
    """L-BFGS-B with analytic gradients from each start; the best end point is polished by one more run
    (a fresh start drops the curvature history the first run built far from the optimum)."""
    # One BLAS/OpenMP thread: fits run in worker processes side by side, and threads spinning for cores
    # other processes hold made a 20,000-customer fit 10 times slower on a busy machine.
    with threadpool_limits(limits=1):
        return _best_minimum_single_threaded(negative_log_likelihood, starts, lower=lower, upper=upper)


def _best_minimum_single_threaded(
    negative_log_likelihood: Objective, starts: tuple[np.ndarray, ...], *, lower: np.ndarray, upper: np.ndarray
) -> _Optimum:
    bounds = list(zip(lower, upper, strict=True))
    best_x: np.ndarray | None = None
    best_value = np.inf
    for start in starts:
        result = minimize(
            negative_log_likelihood,
            np.clip(start, lower, upper),
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options=_LBFGSB_OPTIONS,
        )
        if result.fun < best_value and result.fun < _INFEASIBLE:
            best_value, best_x = float(result.fun), np.asarray(result.x)
    if best_x is None:
        raise ValueError("the likelihood could not be evaluated at any starting point")
    polished = minimize(
        negative_log_likelihood, best_x, jac=True, method="L-BFGS-B", bounds=bounds, options=_LBFGSB_OPTIONS
    )
    if polished.fun <= best_value:
        best_x, best_value = np.asarray(polished.x), float(polished.fun)
    # A parameter run off towards 0 or infinity (within e^2 of the e^±20 box) or pinned to a lower bound
    # means the data cannot identify it, e.g. when nobody bought twice.
    runaway = np.abs(best_x) > _LOG_BOUND - 2.0
    at_bound = bool(np.any(runaway | np.isclose(best_x, lower, atol=1e-3)))
    return _Optimum(log_params=best_x, negative_log_likelihood=best_value, at_bound=at_bound)


def _weighted_objective(
    log_likelihood_and_gradient: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], weights: np.ndarray
) -> Objective:
    """−Σ w·ℓ and its gradient in log-parameter space (∂/∂log θ = θ · ∂/∂θ), from per-customer ℓ and
    ∂ℓ/∂θ (one row per parameter)."""

    def objective(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        params = np.exp(log_params)
        with np.errstate(all="ignore"):
            terms, gradients = log_likelihood_and_gradient(params)
            value = -float(np.dot(weights, terms))
            gradient = -(gradients * weights).sum(axis=1) * params
        if not (np.isfinite(value) and np.isfinite(gradient).all()):
            return _INFEASIBLE, np.zeros_like(log_params)
        return value, gradient

    return objective


def bgnbd_log_likelihood_terms(
    r: float, alpha: float, a: float, b: float, frequency: np.ndarray, recency: np.ndarray, age: np.ndarray
) -> np.ndarray:
    """Each customer's log-likelihood, the paper's equation 6 with log-sum-exp for the two terms."""
    return _bgnbd_terms_and_gradient(r, alpha, a, b, frequency, recency, age)[0]


def _bgnbd_terms_and_gradient(
    r: float, alpha: float, a: float, b: float, x: np.ndarray, t_x: np.ndarray, big_t: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """ℓ = A1 + A2 + log(e^A3 + [x > 0] e^A4) per customer, and ∂ℓ/∂(r, α, a, b) as a 4 × n array."""
    repeat = x > 0
    b_x_minus_1 = np.where(repeat, b + x - 1.0, 1.0)  # only used where x > 0
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + big_t)
    # For x = 0 the second term is absent: −inf makes logaddexp return a3 exactly.
    a4 = np.where(repeat, np.log(a) - np.log(b_x_minus_1) - (r + x) * np.log(alpha + t_x), -np.inf)
    terms = a1 + a2 + np.logaddexp(a3, a4)
    weight_4 = np.exp(a4 - np.logaddexp(a3, a4))  # share of the "left after the last purchase" term
    weight_3 = 1.0 - weight_4
    d_r = digamma(r + x) - digamma(r) + np.log(alpha) - weight_3 * np.log(alpha + big_t)
    d_r -= weight_4 * np.log(alpha + t_x)
    d_alpha = r / alpha - weight_3 * (r + x) / (alpha + big_t) - weight_4 * (r + x) / (alpha + t_x)
    d_a = digamma(a + b) - digamma(a + b + x) + weight_4 / a
    d_b = digamma(a + b) + digamma(b + x) - digamma(b) - digamma(a + b + x) - weight_4 / b_x_minus_1
    return terms, np.vstack([d_r, d_alpha, d_a, d_b])


def bgnbd_fit(frequency: np.ndarray, recency: np.ndarray, age: np.ndarray) -> BgNbdParams:
    """Maximum likelihood (scipy, log-parameterised, several starts); frequency = repeat purchases x,
    recency t_x and age T in the same time unit."""
    frequency, recency, age = _as_float_arrays(frequency, recency, age)
    _check_rfm_inputs(frequency, recency, age)
    (x, t_x, big_t), weights = _compress(frequency, recency, age)
    objective = _weighted_objective(lambda params: _bgnbd_terms_and_gradient(*params, x, t_x, big_t), weights)
    optimum = _best_minimum(objective, _BGNBD_STARTS, lower=np.full(4, -_LOG_BOUND), upper=np.full(4, _LOG_BOUND))
    r, alpha, a, b = (float(value) for value in np.exp(optimum.log_params))
    return BgNbdParams(
        r=r,
        alpha=alpha,
        a=a,
        b=b,
        log_likelihood=-optimum.negative_log_likelihood,
        customers=int(frequency.size),
        at_bound=optimum.at_bound,
    )


def _nudged_a(a: float) -> float:
    # Equations 7 and 10 divide by a − 1; at a = 1 exactly the limit is taken by stepping off it.
    return a + 1e-7 if abs(a - 1.0) < 1e-7 else a


def _expected_purchases_if_alive(
    *, a: float, b: float, r: float, x: np.ndarray, elapsed: np.ndarray, horizon: np.ndarray | float
) -> np.ndarray:
    """E[purchases in the next `horizon` | alive now, x repeat purchases, α + T = `elapsed`]: the part of
    equations 7 (x = 0, elapsed = α) and 10 before P(alive),
    (a+b+x−1)/(a−1) · [1 − ((α+T)/(α+T+t))^(r+x) · 2F1(r+x, b+x; a+b+x−1; z)], z = t/(α+T+t).

    The bracket is evaluated after Euler's transformation 2F1(A, B; C; z) = (1−z)^(C−A−B) 2F1(C−A, C−B; C; z),
    1 − (1−z)^(a−1) · 2F1(a+b−1−r, a−1; a+b+x−1; z), whose parameters do not grow with x. Where scipy's
    hyp2f1 still gives up (large b with z near 1 returns nan), the same expectation is integrated directly:
    given alive, λ ~ Gamma(r+x, α+T) and p ~ Beta(a, b+x), and E[(1 − e^{−λpt})/p] over λ is
    E_p[(1 − ((α+T)/(α+T+pt))^(r+x)) / p].
    """
    x, elapsed, horizon = np.broadcast_arrays(*_as_float_arrays(x, elapsed, horizon))
    remaining = elapsed / (elapsed + horizon)  # 1 − z
    with np.errstate(all="ignore"):
        bracket = 1.0 - remaining ** (a - 1.0) * hyp2f1(a + b - 1.0 - r, a - 1.0, a + b + x - 1.0, 1.0 - remaining)
        expected = (a + b + x - 1.0) / (a - 1.0) * bracket
    expected = np.array(expected, dtype=np.float64, copy=True)
    for index in zip(*np.nonzero(~np.isfinite(expected) | (expected < 0)), strict=True):
        expected[index] = _expected_purchases_if_alive_by_quadrature(
            a=a, b=b, r=r, x=float(x[index]), elapsed=float(elapsed[index]), horizon=float(horizon[index])
        )
    return expected


def _expected_purchases_if_alive_by_quadrature(
    *, a: float, b: float, r: float, x: float, elapsed: float, horizon: float
) -> float:
    shape = r + x

    def purchases_given_dropout(p: float) -> float:
        if p == 0.0:
            return shape * horizon / elapsed
        return -np.expm1(-shape * np.log1p(p * horizon / elapsed)) / p

    # weight="alg" integrates f(p) · p^(a−1) (1−p)^(b+x−1), handling the Beta density's endpoints exactly.
    integral, _ = quad(purchases_given_dropout, 0.0, 1.0, weight="alg", wvar=(a - 1.0, b + x - 1.0), limit=200)
    return float(integral / np.exp(betaln(a, b + x)))


def bgnbd_expected_purchases(
    params: BgNbdParams, horizon: float, frequency: np.ndarray, recency: np.ndarray, age: np.ndarray
) -> np.ndarray:
    """E[purchases in (T, T + horizon] | x, t_x, T] per customer (the paper's equation 10)."""
    x, t_x, big_t = _as_float_arrays(frequency, recency, age)
    r, alpha, b = params.r, params.alpha, params.b
    a = _nudged_a(params.a)
    t = float(horizon)
    if t <= 0:
        return np.zeros_like(x)
    if_alive = _expected_purchases_if_alive(a=a, b=b, r=r, x=x, elapsed=alpha + big_t, horizon=t)
    return if_alive * bgnbd_probability_alive(params, x, t_x, big_t)


def bgnbd_probability_alive(
    params: BgNbdParams, frequency: np.ndarray, recency: np.ndarray, age: np.ndarray
) -> np.ndarray:
    """P(alive | x, t_x, T): 1 for a customer who never bought again (BG/NBD lets a customer drop out
    only right after a purchase)."""
    x, t_x, big_t = _as_float_arrays(frequency, recency, age)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    repeat = x > 0
    log_odds_dead = np.full_like(x, -np.inf)
    log_odds_dead[repeat] = (
        np.log(a)
        - np.log(b + x[repeat] - 1.0)
        + (r + x[repeat]) * np.log((alpha + big_t[repeat]) / (alpha + t_x[repeat]))
    )
    # 1 / (1 + e^d), written so a huge d gives 0 rather than an overflow warning.
    return np.exp(-np.logaddexp(0.0, log_odds_dead))


def bgnbd_expected_purchases_new(params: BgNbdParams, horizon: np.ndarray | float) -> np.ndarray | float:
    """E[X(t)] for a customer just acquired (the paper's equation 7): the holdout forecast's building block."""
    t = np.atleast_1d(np.asarray(horizon, dtype=np.float64))
    a = _nudged_a(params.a)
    if_alive = _expected_purchases_if_alive(
        a=a, b=params.b, r=params.r, x=np.zeros_like(t), elapsed=params.alpha, horizon=np.maximum(t, 0.0)
    )
    value = np.where(t > 0, if_alive, 0.0)
    return float(value[0]) if np.ndim(horizon) == 0 else value.reshape(np.shape(horizon))


def gamma_gamma_log_likelihood_terms(
    p: float, q: float, gamma: float, frequency: np.ndarray, monetary: np.ndarray
) -> np.ndarray:
    """Each customer's log-likelihood of their mean spend z̄ over x purchases: z ~ Gamma(p, ν),
    ν ~ Gamma(q, γ), so x·z̄ | ν ~ Gamma(px, ν) and ν integrates out in closed form."""
    return _gamma_gamma_terms_and_gradient(p, q, gamma, frequency, monetary)[0]


def _gamma_gamma_terms_and_gradient(
    p: float, q: float, gamma: float, x: np.ndarray, zbar: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    px = p * x
    log_total_plus_gamma = np.log(x * zbar + gamma)
    terms = (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(gamma)
        + (px - 1.0) * np.log(zbar)
        + px * np.log(x)
        - (px + q) * log_total_plus_gamma
    )
    d_p = x * (digamma(px + q) - digamma(px) + np.log(zbar) + np.log(x) - log_total_plus_gamma)
    d_q = digamma(px + q) - digamma(q) + np.log(gamma) - log_total_plus_gamma
    d_gamma = q / gamma - (px + q) / (x * zbar + gamma)
    return terms, np.vstack([d_p, d_q, d_gamma])


def gamma_gamma_fit(frequency: np.ndarray, monetary: np.ndarray) -> GammaGammaParams:
    """Fitted on customers with frequency > 0; monetary = mean value of their repeat purchases."""
    frequency, monetary = _as_float_arrays(frequency, monetary)
    if frequency.shape != monetary.shape:
        raise ValueError("frequency and monetary must have the same shape")
    repeat = (frequency > 0) & (monetary > 0)
    if not np.isfinite(frequency).all() or not np.isfinite(monetary[repeat]).all():
        raise ValueError("frequency and monetary must be finite")
    if repeat.sum() < 2:
        raise ValueError("at least two customers with a repeat purchase and positive spend are needed")
    (x, zbar), weights = _compress(frequency[repeat], monetary[repeat])

    objective = _weighted_objective(lambda params: _gamma_gamma_terms_and_gradient(*params, x, zbar), weights)
    lower = np.array([-_LOG_BOUND, np.log(_MIN_Q), -_LOG_BOUND])
    optimum = _best_minimum(objective, _GAMMA_GAMMA_STARTS, lower=lower, upper=np.full(3, _LOG_BOUND))
    p, q, gamma = (float(value) for value in np.exp(optimum.log_params))
    return GammaGammaParams(
        p=p,
        q=q,
        gamma=gamma,
        log_likelihood=-optimum.negative_log_likelihood,
        customers=int(repeat.sum()),
        at_bound=optimum.at_bound,
    )


def gamma_gamma_expected_value(params: GammaGammaParams, frequency: np.ndarray, monetary: np.ndarray) -> np.ndarray:
    """E[M | x, m_x]: the expected value of a customer's future purchase (population mean when x = 0)."""
    x, zbar = _as_float_arrays(frequency, monetary)
    p, q, gamma = params.p, params.q, params.gamma
    # A credibility-weighted mean of the population mean p·γ/(q−1) and the customer's own mean z̄.
    observed = np.where(x > 0, zbar, 0.0)
    return p * (gamma + x * observed) / (p * x + q - 1.0)


def per_period_discount_rate(*, annual_discount_rate: float, time_unit_days: float) -> float:
    """The rate per time unit that compounds to the annual rate over a year."""
    return (1.0 + annual_discount_rate) ** (time_unit_days / DAYS_PER_YEAR) - 1.0


def customer_lifetime_value(
    bgnbd: BgNbdParams,
    gamma_gamma: GammaGammaParams,
    frequency: np.ndarray,
    recency: np.ndarray,
    age: np.ndarray,
    monetary: np.ndarray,
    *,
    horizon: float,
    margin: float = 1.0,
    annual_discount_rate: float = 0.10,
    time_unit_days: float = 7.0,
) -> np.ndarray:
    """Discounted expected margin over `horizon` time units: expected purchases per period × expected value ×
    margin, discounted per period."""
    x, t_x, big_t, zbar = _as_float_arrays(frequency, recency, age, monetary)
    if horizon < 0:
        raise ValueError("horizon must be >= 0")
    rate = per_period_discount_rate(annual_discount_rate=annual_discount_rate, time_unit_days=time_unit_days)
    value_per_purchase = gamma_gamma_expected_value(gamma_gamma, x, zbar) * margin
    total = np.zeros_like(x)
    previous = np.zeros_like(x)
    period = 1
    while period - 1 < horizon:
        # The last period may be partial (horizon 10.5 weeks); its purchases are discounted as a full one.
        end = min(float(period), float(horizon))
        cumulative = bgnbd_expected_purchases(bgnbd, end, x, t_x, big_t)
        total += (cumulative - previous) / (1.0 + rate) ** period
        previous = cumulative
        period += 1
    return total * value_per_purchase
