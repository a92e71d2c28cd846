import math
from decimal import Decimal

import numpy as np
import pytest
from scipy import integrate, stats

from experiments.bandits.thompson import (
    BetaArm,
    GaussianArm,
    NormalInverseGammaPrior,
    allocation,
    apply_floor,
    arm_from_dict,
    arms_from_sums,
    beta_posterior,
    normal_inverse_gamma_posterior,
    pooled_prior,
    probability_best,
)
from experiments.stats.summaries import SampleSums


def _sums(values: list[float]) -> SampleSums:
    array = np.asarray(values, dtype=float)
    return SampleSums(n=len(array), y_sum=float(array.sum()), y_sum_squares=float((array**2).sum()))


def test_beta_posterior_adds_successes_and_failures_to_the_uniform_prior():
    # given 12 conversions out of 200 units
    # when
    arm = beta_posterior(successes=12, trials=200)

    # then
    assert (arm.alpha, arm.beta) == (13, 189)
    assert arm.mean == pytest.approx(13 / 202)


@pytest.mark.parametrize(("successes", "trials"), [(-1, 10), (11, 10), (1, -1)])
def test_beta_posterior_refuses_impossible_counts(successes, trials):
    # given / when / then
    with pytest.raises(ValueError, match="successes"):
        beta_posterior(successes=successes, trials=trials)


def test_beta_arm_samples_have_the_beta_distributions_mean_and_variance():
    # given
    arm = BetaArm(alpha=13, beta=189)
    reference = stats.beta(13, 189)

    # when
    samples = arm.sample(np.random.default_rng(3), 200_000)

    # then
    assert samples.mean() == pytest.approx(reference.mean(), rel=0.005)
    assert samples.var() == pytest.approx(reference.var(), rel=0.02)


def test_normal_inverse_gamma_posterior_matches_numerical_integration_of_prior_times_likelihood():
    # given a small sample, where the prior still matters, and a proper prior
    values = [12.0, 0.0, 30.5, 7.25, 0.0, 18.0]
    prior = NormalInverseGammaPrior(mean=10.0, kappa=2.0, alpha=3.0, beta=150.0)

    # when
    arm = normal_inverse_gamma_posterior(sums=_sums(values), prior=prior)

    # then the mean's marginal posterior agrees with a brute-force grid over (mean, variance)
    mu = np.linspace(-40, 60, 1601)[:, None]
    variance = np.geomspace(1, 5000, 1601)[None, :]
    log_prior = stats.norm.logpdf(mu, prior.mean, np.sqrt(variance / prior.kappa)) + stats.invgamma.logpdf(
        variance, prior.alpha, scale=prior.beta
    )
    log_likelihood = sum(stats.norm.logpdf(y, mu, np.sqrt(variance)) for y in values)
    # integrate over the variance on its log-spaced grid (dσ² = σ² dlogσ²)
    density = np.exp(log_prior + log_likelihood - (log_prior + log_likelihood).max()) * variance
    marginal = density.sum(axis=1)
    marginal /= marginal.sum()
    grid_mean = float((mu[:, 0] * marginal).sum())
    grid_variance = float(((mu[:, 0] - grid_mean) ** 2 * marginal).sum())
    assert arm.mean == pytest.approx(grid_mean, abs=0.01)
    assert arm.mean_variance == pytest.approx(grid_variance, rel=0.01)


def test_normal_inverse_gamma_posterior_follows_murphys_update_equations():
    # given
    values = [3.0, 5.0, 4.0, 8.0]
    prior = NormalInverseGammaPrior(mean=1.0, kappa=1.0, alpha=1.0, beta=2.0)

    # when
    arm = normal_inverse_gamma_posterior(sums=_sums(values), prior=prior)

    # then: n = 4, ȳ = 5, Σ(y-ȳ)² = 14
    assert arm.kappa == 5.0
    assert arm.mean == pytest.approx((1.0 * 1.0 + 4 * 5.0) / 5)
    assert arm.alpha == 3.0
    assert arm.beta == pytest.approx(2.0 + 14 / 2 + 1.0 * 4 * (5.0 - 1.0) ** 2 / (2 * 5))
    assert arm.n == 4


def test_gaussian_arm_samples_follow_the_student_t_marginal():
    # given
    arm = GaussianArm(mean=42.0, kappa=50.0, alpha=26.0, beta=26.0 * 900.0, n=49)
    reference = stats.t(df=2 * arm.alpha, loc=arm.mean, scale=math.sqrt(arm.beta / (arm.alpha * arm.kappa)))

    # when
    samples = arm.sample(np.random.default_rng(5), 400_000)

    # then
    assert samples.mean() == pytest.approx(reference.mean(), abs=0.02)
    assert samples.var() == pytest.approx(reference.var(), rel=0.02)
    assert arm.mean_variance == pytest.approx(reference.var(), rel=1e-9)


def test_pooled_prior_is_centred_on_all_arms_data_with_its_variance_as_scale():
    # given two arms of revenue per unit
    sums = {"control": _sums([0, 0, 50, 100]), "variant-1": _sums([0, 80, 0, 0, 120, 0])}
    everything = np.array([0, 0, 50, 100, 0, 80, 0, 0, 120, 0], dtype=float)

    # when
    prior = pooled_prior(sums)

    # then
    assert prior.mean == pytest.approx(everything.mean())
    assert prior.beta == pytest.approx(everything.var())
    assert (prior.kappa, prior.alpha) == (1.0, 1.0)


def test_arms_from_sums_builds_beta_arms_for_proportions_and_gaussian_arms_for_means():
    # given
    sums = {
        "control": SampleSums(n=100, y_sum=5, y_sum_squares=5),
        "variant-1": SampleSums(n=0, y_sum=0, y_sum_squares=0),
    }

    # when
    proportions = arms_from_sums(sums, reward="proportion")
    means = arms_from_sums(sums, reward="mean")

    # then
    assert proportions == {"control": BetaArm(6, 96), "variant-1": BetaArm(1, 1)}
    assert isinstance(means["control"], GaussianArm) and means["control"].n == 100
    assert means["variant-1"].n == 0
    with pytest.raises(ValueError, match="proportion or a mean"):
        arms_from_sums(sums, reward="ratio")


@pytest.mark.parametrize("arm", [BetaArm(3.0, 97.0), GaussianArm(mean=4.5, kappa=11.0, alpha=6.0, beta=80.0, n=10)])
def test_arms_round_trip_through_their_stored_form(arm):
    # given / when / then
    assert arm_from_dict(arm.as_dict()) == arm


def test_probability_best_of_two_beta_arms_matches_the_integral():
    # given
    a, b = BetaArm(31, 970), BetaArm(45, 956)
    exact, _ = integrate.quad(lambda x: stats.beta(b.alpha, b.beta).pdf(x) * stats.beta(a.alpha, a.beta).cdf(x), 0, 1)

    # when
    probabilities = probability_best({"a": a, "b": b}, draws=400_000, rng=np.random.default_rng(11))

    # then
    assert probabilities["b"] == pytest.approx(exact, abs=0.003)
    assert probabilities["a"] + probabilities["b"] == pytest.approx(1.0)


def test_apply_floor_raises_weak_arms_and_shares_the_rest_in_proportion():
    # given / when
    weights = apply_floor({"a": 0.90, "b": 0.08, "c": 0.02}, floor=0.05)

    # then c is lifted to the floor, a and b give up 0.03 in the ratio 90:8
    assert weights == {
        "a": pytest.approx(0.9 / 0.98 * 0.95, abs=1e-6),
        "b": pytest.approx(0.08 / 0.98 * 0.95, abs=1e-6),
        "c": 0.05,
    }


def test_apply_floor_repeats_until_no_arm_falls_below_it():
    # given: lifting c takes b below the floor
    # when
    weights = apply_floor({"a": 0.949, "b": 0.051, "c": 0.0}, floor=0.05)

    # then
    assert weights == {"a": 0.9, "b": 0.05, "c": 0.05}


def test_apply_floor_keeps_every_arm_at_the_floor_and_the_decimal_weights_sum_to_exactly_one():
    # given many random probability vectors
    rng = np.random.default_rng(2)
    for _ in range(2_000):
        arms = int(rng.integers(2, 9))
        floor = float(rng.choice([0.0, 0.01, 0.05, 0.1]))
        probabilities = {f"arm-{i}": float(p) for i, p in enumerate(rng.dirichlet(np.full(arms, 0.3)))}

        # when
        weights = apply_floor(probabilities, floor=floor)

        # then
        assert min(weights.values()) >= floor
        assert sum(Decimal(repr(w)) for w in weights.values()) == 1
        assert all(round(w, 6) == w for w in weights.values())


@pytest.mark.parametrize(("floor", "arms"), [(0.4, 3), (-0.1, 2)])
def test_apply_floor_refuses_a_floor_that_cannot_hold(floor, arms):
    # given / when / then
    with pytest.raises(ValueError, match="floor"):
        apply_floor({f"arm-{i}": 1 / arms for i in range(arms)}, floor=floor)


def test_allocation_is_deterministic_for_a_seed_and_independent_of_key_order():
    # given
    arms = {"control": BetaArm(31, 970), "variant-1": BetaArm(40, 961), "variant-2": BetaArm(35, 966)}
    reversed_arms = dict(reversed(list(arms.items())))

    # when
    first = allocation(arms, floor=0.05, draws=5_000, seed=123)
    again = allocation(reversed_arms, floor=0.05, draws=5_000, seed=123)
    other_seed = allocation(arms, floor=0.05, draws=5_000, seed=124)

    # then
    assert first == again
    assert other_seed != first
    assert max(first, key=first.get) == "variant-1"


def test_allocation_gives_a_clearly_better_arm_everything_above_the_floors():
    # given 2% vs 6% on 5,000 units each
    arms = {
        "control": beta_posterior(successes=100, trials=5_000),
        "variant-1": beta_posterior(successes=300, trials=5_000),
    }

    # when
    weights = allocation(arms, floor=0.1, draws=10_000, seed=1)

    # then
    assert weights == {"control": 0.1, "variant-1": 0.9}


def test_allocation_of_revenue_arms_favours_the_higher_mean():
    # given per-unit revenue: mostly zeros, the variant's buyers spend more
    rng = np.random.default_rng(9)
    control = np.where(rng.random(3_000) < 0.05, rng.gamma(2.0, 40.0, 3_000), 0.0)
    variant = np.where(rng.random(3_000) < 0.05, rng.gamma(2.0, 60.0, 3_000), 0.0)
    arms = arms_from_sums({"control": _sums(list(control)), "variant-1": _sums(list(variant))}, reward="mean")

    # when
    weights = allocation(arms, floor=0.05, draws=10_000, seed=4)

    # then
    assert weights["variant-1"] > 0.9
    assert weights["control"] >= 0.05
