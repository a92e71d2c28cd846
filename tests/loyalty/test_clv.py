import importlib.util
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import gammaln, roots_genlaguerre, roots_jacobi

from loyalty.clv import (
    BgNbdParams,
    GammaGammaParams,
    _bgnbd_terms_and_gradient,
    _gamma_gamma_terms_and_gradient,
    bgnbd_expected_purchases,
    bgnbd_expected_purchases_new,
    bgnbd_fit,
    bgnbd_log_likelihood_terms,
    bgnbd_probability_alive,
    customer_lifetime_value,
    gamma_gamma_expected_value,
    gamma_gamma_fit,
    per_period_discount_rate,
)

# The data files only: find_spec locates the installed package without running any of its code.
CDNOW = Path(importlib.util.find_spec("lifetimes").submodule_search_locations[0]) / "datasets"
# Fader, Hardie & Lee (2005), "Counting your customers the easy way", CDNOW 2,357-customer cohort.
PUBLISHED_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
# Fader, Hardie & Lee (2005), "RFM and CLV: using iso-value curves", same cohort's 946 repeat buyers.
PUBLISHED_GAMMA_GAMMA = {"p": 6.25, "q": 3.74, "gamma": 15.44}


def _cdnow_summary() -> pd.DataFrame:
    return pd.read_csv(CDNOW / "cdnow_customers_summary.csv")


def _cdnow_with_spend() -> pd.DataFrame:
    return pd.read_csv(CDNOW / "cdnow_customers_summary_with_transactions.csv")


def _mix_over_rate_and_dropout(
    function: Callable[[np.ndarray, np.ndarray], np.ndarray], *, r: float, alpha: float, a: float, b: float
) -> float:
    """E[function(λ, p)] for λ ~ Gamma(r, rate α) and p ~ Beta(a, b), by Gauss quadrature whose weights are
    the two densities themselves (generalised Laguerre for λ, Jacobi for p): an independent check of the
    closed forms, exact to ~1e-12 for smooth integrands, and fast."""
    nodes, weights = roots_genlaguerre(200, r - 1.0)
    rate, rate_weights = nodes / alpha, weights / np.exp(gammaln(r))
    nodes, weights = roots_jacobi(200, b - 1.0, a - 1.0)
    p = (1.0 + nodes) / 2.0
    p_weights = weights / 2.0 ** (a + b - 1.0) / np.exp(gammaln(a) + gammaln(b) - gammaln(a + b))
    rate_grid, p_grid = np.meshgrid(rate, p, indexing="ij")
    return float((np.outer(rate_weights, p_weights) * function(rate_grid, p_grid)).sum())


def _simulate_bgnbd(
    *, r: float, alpha: float, a: float, b: float, customers: int, calibration: float, holdout: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The BG/NBD story drawn directly: first purchase at 0, repeat purchases at Poisson rate λ ~ Gamma(r, α),
    after each repeat purchase the customer leaves with probability p ~ Beta(a, b). Returns x, t_x, T
    over the calibration period and the purchase count in the holdout that follows."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(shape=r, scale=1.0 / alpha, size=customers)
    dropout = rng.beta(a, b, size=customers)
    clock = np.zeros(customers)
    alive = np.ones(customers, dtype=bool)
    frequency = np.zeros(customers)
    recency = np.zeros(customers)
    holdout_purchases = np.zeros(customers)
    end = calibration + holdout
    while alive.any():
        clock[alive] += rng.exponential(1.0 / rate[alive])
        alive &= clock <= end
        in_calibration = alive & (clock <= calibration)
        frequency[in_calibration] += 1
        recency[in_calibration] = clock[in_calibration]
        holdout_purchases[alive & (clock > calibration)] += 1
        alive &= rng.random(customers) >= dropout
    return frequency, recency, np.full(customers, calibration), holdout_purchases


def test_bgnbd_fit_matches_the_published_cdnow_estimates_within_one_percent():
    # given the 2,357-customer CDNOW calibration summary (weeks) the paper fitted
    cdnow = _cdnow_summary()

    # when
    params = bgnbd_fit(cdnow["frequency"].to_numpy(), cdnow["recency"].to_numpy(), cdnow["T"].to_numpy())

    # then every parameter is within 1% of the paper, and so is the log-likelihood (−9582.4)
    for name, published in PUBLISHED_BGNBD.items():
        assert getattr(params, name) == pytest.approx(published, rel=0.01), name
    assert params.log_likelihood == pytest.approx(-9582.4, abs=0.5)
    assert params.customers == 2357


def test_gamma_gamma_fit_matches_the_published_cdnow_estimates_within_one_percent():
    # given the same cohort with each customer's mean repeat-purchase value z̄
    cdnow = _cdnow_with_spend()

    # when
    params = gamma_gamma_fit(cdnow["x"].to_numpy(), cdnow["zbar"].to_numpy())

    # then the fit uses only the 946 repeat buyers and lands on the paper's p, q, γ
    assert params.customers == 946
    for name, published in PUBLISHED_GAMMA_GAMMA.items():
        assert getattr(params, name) == pytest.approx(published, rel=0.01), name


@pytest.mark.parametrize(
    ("r", "alpha", "a", "b"),
    [(0.8, 5.0, 1.5, 3.0), (0.243, 4.414, 0.793, 2.426)],  # a bounded Beta density, and CDNOW's (a < 1)
)
def test_bgnbd_log_likelihood_matches_numerical_integration_of_the_individual_likelihood(r, alpha, a, b):
    # given customers with and without repeat purchases
    customers = [(0.0, 0.0, 30.0), (1.0, 12.0, 30.0), (4.0, 25.5, 40.0), (15.0, 38.0, 39.0)]

    for x, t_x, big_t in customers:
        # when the paper's individual likelihood (eq. 3) is integrated over λ ~ Gamma(r, α), p ~ Beta(a, b)
        def likelihood(rate: np.ndarray, p: np.ndarray, x: float = x, t_x: float = t_x, big_t: float = big_t):
            alive = (1 - p) ** x * rate**x * np.exp(-rate * big_t)
            left = p * (1 - p) ** (x - 1) * rate**x * np.exp(-rate * t_x) if x > 0 else 0.0
            return alive + left

        expected = _mix_over_rate_and_dropout(likelihood, r=r, alpha=alpha, a=a, b=b)
        closed_form = bgnbd_log_likelihood_terms(r, alpha, a, b, np.array([x]), np.array([t_x]), np.array([big_t]))[0]

        # then the closed form (eq. 6) agrees
        assert closed_form == pytest.approx(np.log(expected), abs=1e-8)


def test_bgnbd_fit_recovers_the_parameters_of_simulated_customers():
    # given 8,000 customers drawn from a known BG/NBD over a 52-week calibration period
    truth = {"r": 0.5, "alpha": 6.0, "a": 0.7, "b": 2.5}
    frequency, recency, age, _ = _simulate_bgnbd(**truth, customers=8000, calibration=52.0, holdout=0.0, seed=11)

    # when
    params = bgnbd_fit(frequency, recency, age)

    # then the rate parameters come back within 10% and the dropout mean a / (a + b) within 10%
    assert params.r == pytest.approx(truth["r"], rel=0.1)
    assert params.alpha == pytest.approx(truth["alpha"], rel=0.1)
    assert params.a / (params.a + params.b) == pytest.approx(truth["a"] / (truth["a"] + truth["b"]), rel=0.1)


def test_conditional_expected_purchases_match_a_simulated_holdout():
    # given simulated customers whose holdout purchases we know, and the true parameters
    truth = {"r": 0.5, "alpha": 6.0, "a": 0.7, "b": 2.5}
    frequency, recency, age, holdout = _simulate_bgnbd(
        **truth, customers=40_000, calibration=39.0, holdout=39.0, seed=5
    )
    params = BgNbdParams(**truth, log_likelihood=0.0, customers=len(frequency))

    # when
    predicted = bgnbd_expected_purchases(params, 39.0, frequency, recency, age)

    # then the totals agree, overall and for zero, light and heavy repeat buyers (eq. 10 is exact in
    # expectation; the tolerances are a few standard errors of the simulated means)
    assert predicted.sum() == pytest.approx(holdout.sum(), rel=0.03)
    for group in (frequency == 0, (frequency >= 1) & (frequency <= 2), frequency >= 5):
        assert predicted[group].mean() == pytest.approx(holdout[group].mean(), rel=0.08)


@pytest.mark.parametrize(
    ("r", "alpha", "a", "b"),
    [(0.8, 5.0, 1.5, 3.0), (0.243, 4.414, 0.793, 2.426)],
)
def test_expected_purchases_of_a_new_customer_match_integration_over_rate_and_dropout(r, alpha, a, b):
    # given E[X(t) | λ, p] = (1 − e^{−λpt}) / p (the paper's eq. 5)
    params = BgNbdParams(r=r, alpha=alpha, a=a, b=b, log_likelihood=0.0, customers=0)

    for t in (1.0, 39.0, 200.0):
        # when it is integrated over the mixing distributions
        expected = _mix_over_rate_and_dropout(
            lambda rate, p, t=t: (1 - np.exp(-rate * p * t)) / p, r=r, alpha=alpha, a=a, b=b
        )

        # then equation 7 (Gauss's hypergeometric function) agrees
        assert bgnbd_expected_purchases_new(params, t) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    ("x", "t_x", "big_t", "horizon"),
    [
        (2.0, 30.43, 38.86, 39.0),
        (150.0, 1.0, 1.0, 39.0),  # heavy buyer seen an instant ago: scipy's hyp2f1 alone returns nan here
        (150.0, 10.0, 20.0, 520.0),
        (30.0, 75.0, 150.0, 1.0),
    ],
)
def test_conditional_expected_purchases_match_integration_over_the_posterior(x, t_x, big_t, horizon):
    # given a repeat buyer: alive, their λ ~ Gamma(r + x, α + T) and p ~ Beta(a, b + x)
    params = BgNbdParams(r=2.0, alpha=0.5, a=3.0, b=40.0, log_likelihood=0.0, customers=0)
    alive = bgnbd_probability_alive(params, np.array([x]), np.array([t_x]), np.array([big_t]))[0]
    if_alive = _mix_over_rate_and_dropout(
        lambda rate, p: (1 - np.exp(-rate * p * horizon)) / p,
        r=params.r + x,
        alpha=params.alpha + big_t,
        a=params.a,
        b=params.b + x,
    )

    # when
    expected = bgnbd_expected_purchases(params, horizon, np.array([x]), np.array([t_x]), np.array([big_t]))

    # then equation 10 agrees with P(alive) × E[(1 − e^{−λpt}) / p | alive]
    assert expected[0] == pytest.approx(alive * if_alive, rel=1e-5)


def test_expected_purchases_are_continuous_through_a_equal_one():
    # given a = 1, where equations 7 and 10 divide by a − 1
    at_one = BgNbdParams(r=0.5, alpha=5.0, a=1.0, b=2.0, log_likelihood=0.0, customers=0)
    near_one = BgNbdParams(r=0.5, alpha=5.0, a=1.0001, b=2.0, log_likelihood=0.0, customers=0)
    x, t_x, big_t = np.array([0.0, 3.0]), np.array([0.0, 20.0]), np.array([30.0, 30.0])

    # when
    conditional = bgnbd_expected_purchases(at_one, 39.0, x, t_x, big_t)
    new = bgnbd_expected_purchases_new(at_one, 39.0)

    # then
    np.testing.assert_allclose(conditional, bgnbd_expected_purchases(near_one, 39.0, x, t_x, big_t), rtol=1e-3)
    assert new == pytest.approx(bgnbd_expected_purchases_new(near_one, 39.0), rel=1e-3)


def test_expected_purchases_new_is_vectorised_and_zero_at_zero():
    # given the published CDNOW parameters
    params = BgNbdParams(**PUBLISHED_BGNBD, log_likelihood=0.0, customers=0)

    # when
    cumulative = bgnbd_expected_purchases_new(params, np.array([0.0, 10.0, 39.0, 78.0]))

    # then it starts at zero and grows with the horizon
    assert cumulative[0] == 0.0
    assert np.all(np.diff(cumulative) > 0)


def test_cdnow_paper_example_customer_expects_about_1_23_purchases_in_39_weeks():
    # given the paper's worked example: x = 2, t_x = 30.43, T = 38.86 weeks, published parameters
    params = BgNbdParams(**PUBLISHED_BGNBD, log_likelihood=0.0, customers=0)

    # when
    expected = bgnbd_expected_purchases(params, 39.0, np.array([2.0]), np.array([30.43]), np.array([38.86]))

    # then it is the paper's 1.226
    assert expected[0] == pytest.approx(1.226, abs=0.002)


def test_probability_alive_is_one_without_repeat_purchases_and_falls_with_silence():
    # given the published parameters
    params = BgNbdParams(**PUBLISHED_BGNBD, log_likelihood=0.0, customers=0)

    # when
    never_repeated = bgnbd_probability_alive(params, np.zeros(3), np.zeros(3), np.array([1.0, 30.0, 300.0]))
    silent_longer = bgnbd_probability_alive(params, np.full(3, 4.0), np.full(3, 10.0), np.array([10.0, 20.0, 40.0]))
    hand = bgnbd_probability_alive(params, np.array([2.0]), np.array([30.43]), np.array([38.86]))

    # then BG/NBD customers can only leave right after a purchase, so x = 0 means alive for sure; a
    # repeat buyer's P(alive) is 1 when just seen and falls the longer they are silent
    assert np.all(never_repeated == 1.0)
    assert silent_longer[0] == 1.0 / (1.0 + params.a / (params.b + 3.0))
    assert np.all(np.diff(silent_longer) < 0)
    # 1 / (1 + a/(b+x−1) · ((α+T)/(α+t_x))^(r+x)) = 1 / (1 + 0.793/3.426 · (43.274/34.844)^2.243)
    assert hand[0] == pytest.approx(1.0 / (1.0 + 0.793 / 3.426 * (43.274 / 34.844) ** 2.243), rel=1e-9)


def test_probability_alive_of_a_heavy_buyer_long_silent_is_near_zero_without_overflow():
    # given a customer with 200 repeat purchases in the first week, then a year of silence
    params = BgNbdParams(**PUBLISHED_BGNBD, log_likelihood=0.0, customers=0)

    # when
    with np.errstate(all="raise"):
        alive = bgnbd_probability_alive(params, np.array([200.0]), np.array([1.0]), np.array([52.0]))

    # then
    assert 0.0 <= alive[0] < 1e-12


def test_gamma_gamma_expected_value_shrinks_the_customer_mean_towards_the_population_mean():
    # given p = 6, q = 4, γ = 15: population mean pγ/(q−1) = 30
    params = GammaGammaParams(p=6.0, q=4.0, gamma=15.0, log_likelihood=0.0, customers=0)

    # when
    values = gamma_gamma_expected_value(params, np.array([0.0, 1.0, 1000.0]), np.array([0.0, 50.0, 50.0]))

    # then x = 0 gets the population mean, x = 1 with z̄ = 50: 6·(15+50)/(6+3) = 43.33, and many purchases
    # approach the customer's own mean
    assert values[0] == pytest.approx(30.0)
    assert values[1] == pytest.approx(6 * 65 / 9)
    assert values[2] == pytest.approx(50.0, rel=0.001)


def test_clv_without_discount_is_expected_purchases_times_expected_value_times_margin():
    # given fitted-like parameters and three customers
    bgnbd = BgNbdParams(**PUBLISHED_BGNBD, log_likelihood=0.0, customers=0)
    gamma_gamma = GammaGammaParams(p=6.25, q=3.74, gamma=15.44, log_likelihood=0.0, customers=0)
    x, t_x, big_t, zbar = (
        np.array([0.0, 2.0, 7.0]),
        np.array([0.0, 30.0, 35.0]),
        np.full(3, 39.0),
        np.array([0.0, 22.0, 40.0]),
    )

    # when
    clv = customer_lifetime_value(
        bgnbd, gamma_gamma, x, t_x, big_t, zbar, horizon=52.0, margin=0.3, annual_discount_rate=0.0
    )

    # then
    expected = (
        bgnbd_expected_purchases(bgnbd, 52.0, x, t_x, big_t) * gamma_gamma_expected_value(gamma_gamma, x, zbar) * 0.3
    )
    np.testing.assert_allclose(clv, expected, rtol=1e-9)


def test_clv_discounting_lowers_value_and_weighs_later_periods_less():
    # given one customer and a 10% annual rate over weekly periods
    bgnbd = BgNbdParams(**PUBLISHED_BGNBD, log_likelihood=0.0, customers=0)
    gamma_gamma = GammaGammaParams(p=6.25, q=3.74, gamma=15.44, log_likelihood=0.0, customers=0)
    args = (np.array([3.0]), np.array([30.0]), np.array([39.0]), np.array([25.0]))

    # when
    undiscounted = customer_lifetime_value(bgnbd, gamma_gamma, *args, horizon=104.0, annual_discount_rate=0.0)
    discounted = customer_lifetime_value(bgnbd, gamma_gamma, *args, horizon=104.0, annual_discount_rate=0.10)
    nothing = customer_lifetime_value(bgnbd, gamma_gamma, *args, horizon=0.0)

    # then over two years the discounted value sits between 1/1.21 and 1 of the undiscounted one
    assert undiscounted[0] / 1.21 < discounted[0] < undiscounted[0]
    assert nothing[0] == 0.0


def test_weekly_discount_rate_compounds_to_the_annual_rate():
    # given / when
    weekly = per_period_discount_rate(annual_discount_rate=0.10, time_unit_days=7.0)

    # then
    assert (1 + weekly) ** (365.25 / 7.0) == pytest.approx(1.10)


@pytest.mark.parametrize(
    ("frequency", "recency", "age"),
    [
        ([1.0, 2.0], [1.0], [3.0, 4.0]),  # shapes differ
        ([1.0], [5.0], [3.0]),  # last purchase after the end of the period
        ([-1.0], [0.0], [3.0]),  # negative frequency
        ([], [], []),  # nobody
        ([np.nan], [1.0], [3.0]),
    ],
)
def test_bgnbd_fit_rejects_bad_input(frequency, recency, age):
    # given / when / then
    with pytest.raises(ValueError):
        bgnbd_fit(np.array(frequency), np.array(recency), np.array(age))


def test_bgnbd_fit_flags_a_shop_where_nobody_bought_twice_and_still_predicts_nothing():
    # given 50 customers without a repeat purchase
    frequency, recency, age = np.zeros(50), np.zeros(50), np.full(50, 10.0)

    # when
    params = bgnbd_fit(frequency, recency, age)

    # then the fit says it is not identified, and forecasts no purchases rather than nonsense
    assert params.at_bound
    assert bgnbd_expected_purchases(params, 52.0, frequency, recency, age).max() < 1e-6
    assert not bgnbd_fit(*_cdnow_summary()[["frequency", "recency", "T"]].to_numpy().T).at_bound


def test_gamma_gamma_fit_recovers_the_parameters_of_simulated_spend():
    # given 20,000 repeat buyers: ν ~ Gamma(q = 3, rate γ = 20), each purchase ~ Gamma(p = 5, rate ν), so the
    # mean of x purchases ~ Gamma(p·x, rate ν·x) and the population mean spend is pγ/(q−1) = 50
    rng = np.random.default_rng(21)
    frequency = rng.integers(1, 10, 20_000).astype(np.float64)
    nu = rng.gamma(3.0, 1.0 / 20.0, 20_000)
    monetary = rng.gamma(5.0 * frequency, 1.0 / (nu * frequency))

    # when
    params = gamma_gamma_fit(frequency, monetary)

    # then q and the mean are well identified; p and γ trade off along a ridge (seeds 0..6 gave p 4.4–5.3)
    assert params.q == pytest.approx(3.0, rel=0.05)
    assert params.p * params.gamma / (params.q - 1) == pytest.approx(50.0, rel=0.03)
    assert params.p == pytest.approx(5.0, rel=0.15)
    assert params.gamma == pytest.approx(20.0, rel=0.2)
    assert not params.at_bound


@pytest.mark.parametrize(
    ("gradient_of", "params"),
    [("bgnbd", np.array([0.243, 4.414, 0.793, 2.426])), ("gamma_gamma", np.array([6.25, 3.74, 15.44]))],
)
def test_analytic_gradients_match_finite_differences(gradient_of, params):
    # given the CDNOW data and a point near the optimum
    if gradient_of == "bgnbd":
        cdnow = _cdnow_summary()
        columns = [cdnow[name].to_numpy(dtype=np.float64) for name in ("frequency", "recency", "T")]
        terms_and_gradient = _bgnbd_terms_and_gradient
    else:
        cdnow = _cdnow_with_spend()
        cdnow = cdnow[cdnow["x"] > 0]
        columns = [cdnow[name].to_numpy(dtype=np.float64) for name in ("x", "zbar")]
        terms_and_gradient = _gamma_gamma_terms_and_gradient

    def total(theta: np.ndarray) -> float:
        return float(terms_and_gradient(*theta, *columns)[0].sum())

    # when
    analytic = terms_and_gradient(*params, *columns)[1].sum(axis=1)
    numeric = np.array(
        [(total(params + step) - total(params - step)) / (2 * 1e-6) for step in np.eye(len(params)) * 1e-6]
    )

    # then
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-3)


def test_gamma_gamma_fit_ignores_customers_without_repeat_purchases_or_spend():
    # given the CDNOW repeat buyers plus 100 customers with x = 0 and 5 with x > 0 but no spend recorded
    cdnow = _cdnow_with_spend()
    repeaters = cdnow[cdnow["x"] > 0]
    frequency = np.r_[repeaters["x"].to_numpy(), np.zeros(100), np.ones(5)]
    monetary = np.r_[repeaters["zbar"].to_numpy(), np.zeros(100), np.zeros(5)]

    # when
    params = gamma_gamma_fit(frequency, monetary)

    # then it is the 946-customer fit
    assert params.customers == 946
    assert params.p == pytest.approx(PUBLISHED_GAMMA_GAMMA["p"], rel=0.01)


def test_gamma_gamma_fit_needs_two_repeat_buyers():
    # given one repeat buyer only
    frequency, monetary = np.array([0.0, 0.0, 3.0]), np.array([0.0, 0.0, 20.0])

    # when / then
    with pytest.raises(ValueError):
        gamma_gamma_fit(frequency, monetary)


def test_clv_module_imports_no_django():
    # given / when a fresh interpreter imports the module
    result = subprocess.run(
        [sys.executable, "-c", "import sys, loyalty.clv; print('django' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )

    # then
    assert result.stdout.strip() == "False"
