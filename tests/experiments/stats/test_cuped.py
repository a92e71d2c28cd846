import numpy as np
import pytest
import statsmodels.api as sm

from experiments.stats.cuped import cuped_estimates
from experiments.stats.frequentist import mean_estimate
from experiments.stats.summaries import SampleSums
from tests.experiments.stats.data import sums_of


def _regression(x_control, y_control, x_treatment, y_treatment, cov_type):
    """y ~ treatment + (x − x̄), the reference CUPED is equivalent to."""
    x = np.concatenate([x_control, x_treatment])
    y = np.concatenate([y_control, y_treatment])
    arm = np.concatenate([np.zeros(len(y_control)), np.ones(len(y_treatment))])
    design = sm.add_constant(np.column_stack([arm, x - x.mean()]))
    return sm.OLS(y, design).fit(cov_type=cov_type)


def _pre_and_post(rng, n, *, effect=0.0, noise=10.0):
    pre = rng.gamma(2.0, 10.0, n)
    return pre, 5.0 + effect + 0.8 * pre + rng.normal(0.0, noise, n)


def test_cuped_equals_the_regression_on_the_centred_pre_period_value():
    # given: equal residual variance in both arms, a true effect of +1
    rng = np.random.default_rng(3)
    x_control, y_control = _pre_and_post(rng, 4000)
    x_treatment, y_treatment = _pre_and_post(rng, 4600, effect=1.0)

    # when
    result = cuped_estimates(sums_of(y_control, x_control), sums_of(y_treatment, x_treatment))

    # then: same effect, same θ, same standard error (to the regression's O(1/n) terms)
    regression = _regression(x_control, y_control, x_treatment, y_treatment, "nonrobust")
    effect = result.treatment.value - result.control.value
    standard_error = np.sqrt(result.control.variance_of_value + result.treatment.variance_of_value)
    assert effect == pytest.approx(regression.params[1], rel=1e-9)
    assert result.theta == pytest.approx(regression.params[2], rel=1e-9)
    assert standard_error == pytest.approx(regression.bse[1], rel=1e-3)


def test_cuped_standard_error_is_the_heteroskedasticity_robust_one_when_the_arms_differ():
    # given: the treatment arm is noisier
    rng = np.random.default_rng(4)
    x_control, y_control = _pre_and_post(rng, 4000, noise=8.0)
    x_treatment, y_treatment = _pre_and_post(rng, 4300, effect=1.0, noise=14.0)

    # when
    result = cuped_estimates(sums_of(y_control, x_control), sums_of(y_treatment, x_treatment))

    # then
    regression = _regression(x_control, y_control, x_treatment, y_treatment, "HC2")
    standard_error = np.sqrt(result.control.variance_of_value + result.treatment.variance_of_value)
    assert standard_error == pytest.approx(regression.bse[1], rel=1e-3)


def test_cuped_reduces_the_variance_by_about_the_squared_correlation():
    # given
    rng = np.random.default_rng(5)
    x_control, y_control = _pre_and_post(rng, 20_000)
    x_treatment, y_treatment = _pre_and_post(rng, 20_000)
    correlation = np.corrcoef(np.concatenate([x_control, x_treatment]), np.concatenate([y_control, y_treatment]))[0, 1]

    # when
    result = cuped_estimates(sums_of(y_control, x_control), sums_of(y_treatment, x_treatment))

    # then
    plain = mean_estimate(sums_of(y_control)).variance_of_value + mean_estimate(sums_of(y_treatment)).variance_of_value
    adjusted = result.control.variance_of_value + result.treatment.variance_of_value
    assert result.variance_reduction == pytest.approx(1 - adjusted / plain, rel=1e-12)
    assert result.variance_reduction == pytest.approx(correlation**2, abs=0.01)
    assert result.variance_reduction > 0.5


def test_cuped_keeps_the_pooled_mean_of_both_arms():
    # given
    rng = np.random.default_rng(6)
    x_control, y_control = _pre_and_post(rng, 3000)
    x_treatment, y_treatment = _pre_and_post(rng, 3000, effect=2.0)

    # when
    result = cuped_estimates(sums_of(y_control, x_control), sums_of(y_treatment, x_treatment))

    # then: the adjustment moves each arm by −θ(x̄_arm − x̄), which cancels over equal arms
    assert result.control.value + result.treatment.value == pytest.approx(y_control.mean() + y_treatment.mean())


def test_without_a_usable_pre_period_cuped_returns_the_plain_means():
    # given: no unit has pre-period data
    rng = np.random.default_rng(7)
    y_control, y_treatment = rng.normal(5, 2, 500), rng.normal(5, 2, 500)

    # when
    result = cuped_estimates(sums_of(y_control, np.zeros(500)), sums_of(y_treatment, np.zeros(500)))

    # then
    assert result.theta == 0.0
    assert result.variance_reduction == 0.0
    assert result.control == mean_estimate(sums_of(y_control))


def test_cuped_with_a_single_unit_in_an_arm_does_not_adjust():
    # when
    result = cuped_estimates(
        SampleSums(n=1, y_sum=3.0, y_sum_squares=9.0, x_sum=2.0, x_sum_squares=4.0, xy_sum=6.0),
        SampleSums(n=5, y_sum=15.0, y_sum_squares=50.0, x_sum=10.0, x_sum_squares=30.0, xy_sum=35.0),
    )

    # then
    assert result.theta == 0.0
    assert result.control.value == 3.0
