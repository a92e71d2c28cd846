from experiments.stats.validation import (
    AaResult,
    PeekingResult,
    aa_false_positive_rate,
    cuped_check,
    peeking_false_positive_rates,
    power_check,
    srm_planted,
)


def test_two_thousand_a_a_experiments_keep_the_false_positive_rate_between_4_and_6_percent():
    # when
    result = aa_false_positive_rate(experiments=2000, seed=1)

    # then
    assert 0.04 <= result.revenue_false_positive_rate <= 0.06
    assert 0.04 <= result.conversion_false_positive_rate <= 0.06
    assert result.passed


def test_a_planted_lift_is_detected_at_the_power_the_calculator_promised():
    # when
    result = power_check(experiments=2000, seed=1)

    # then
    assert abs(result.conversion_detected - 0.8) <= 0.05
    assert abs(result.revenue_detected - 0.8) <= 0.05
    assert abs(result.revenue_detected - result.revenue_expected) <= 0.03
    assert result.passed


def test_daily_peeking_inflates_the_naive_test_but_not_the_always_valid_one():
    # when
    result = peeking_false_positive_rates(experiments=1500, days=30, seed=1)

    # then
    assert result.naive_false_positive_rate > 0.15
    assert result.always_valid_false_positive_rate <= 0.05
    assert result.passed


def test_a_planted_50_5_split_of_200k_units_is_flagged_and_a_fair_one_rarely_is():
    # when
    result = srm_planted(units=200_000, share=0.505, seed=1)

    # then
    assert result.flagged
    assert result.sampled_flag_rate > 0.8
    assert result.false_flag_rate < 0.005
    assert result.passed


def test_cuped_on_a_correlated_pre_period_cuts_the_variance_and_keeps_the_false_positive_rate():
    # when
    result = cuped_check(experiments=1000, units_per_variant=2000, seed=1)

    # then
    assert result.mean_variance_reduction >= 0.30
    assert abs(result.mean_variance_reduction - result.correlation**2) < 0.03
    assert 0.03 <= result.false_positive_rate <= 0.07
    assert abs(result.mean_absolute_bias) < 0.05


def test_a_false_positive_rate_out_of_bounds_fails_the_check_and_its_row():
    # given
    result = AaResult(
        experiments=2000,
        units_per_variant=5000,
        alpha=0.05,
        revenue_false_positive_rate=0.071,
        conversion_false_positive_rate=0.05,
    )

    # when
    rows = result.rows()

    # then
    assert not result.passed
    assert [row.passed for row in rows] == [False, True]
    assert rows[0].value == "7.10%"


def test_peeking_fails_when_the_always_valid_test_exceeds_alpha():
    # given
    result = PeekingResult(
        experiments=100,
        days=30,
        units_per_day=500,
        alpha=0.05,
        naive_false_positive_rate=0.3,
        always_valid_false_positive_rate=0.06,
        final_day_false_positive_rate=0.05,
    )

    # then
    assert not result.passed
