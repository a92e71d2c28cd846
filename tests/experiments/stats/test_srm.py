import pytest
from scipy import stats

from experiments.stats.srm import expected_shares, sample_ratio_check


@pytest.mark.parametrize(
    ("observed", "shares"),
    [
        ([5010, 4990], [0.5, 0.5]),
        ([101_000, 99_000], [1, 1]),
        ([300, 330, 410], [0.25, 0.25, 0.5]),
        ([7, 13], [0.3, 0.7]),
    ],
)
def test_sample_ratio_check_equals_scipy_chisquare(observed, shares):
    # when
    result = sample_ratio_check(observed, shares)

    # then
    total = sum(observed)
    reference = stats.chisquare(observed, [total * share / sum(shares) for share in shares])
    assert result.chi_square == pytest.approx(reference.statistic, rel=1e-12)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-9)
    assert result.flagged == (reference.pvalue < 0.001)


def test_a_50_5_to_49_5_split_of_200k_units_is_flagged():
    # when
    result = sample_ratio_check([101_000, 99_000], [0.5, 0.5])

    # then: χ² = 2·1000²/100,000 = 20
    assert result.chi_square == pytest.approx(20.0)
    assert result.flagged


def test_a_fair_split_is_not_flagged():
    # when
    result = sample_ratio_check([100_150, 99_850], [0.5, 0.5])

    # then
    assert not result.flagged
    assert result.p_value > 0.001


def test_units_in_a_variant_that_should_get_none_are_a_mismatch():
    # when
    result = sample_ratio_check([500, 480, 3], [0.5, 0.5, 0.0])

    # then
    assert result.flagged
    assert result.p_value == 0.0


def test_an_empty_variant_with_no_share_is_left_out():
    # when
    result = sample_ratio_check([500, 480, 0], [0.5, 0.5, 0.0])

    # then
    assert result.p_value == pytest.approx(stats.chisquare([500, 480]).pvalue)


def test_no_units_yet_is_not_flagged():
    # when
    result = sample_ratio_check([0, 0], [0.5, 0.5])

    # then
    assert not result.flagged
    assert result.p_value == 1.0


def test_the_threshold_is_configurable():
    # given: p ≈ 0.0047
    observed, shares = [10_200, 9_800], [0.5, 0.5]

    # when
    default = sample_ratio_check(observed, shares)
    looser = sample_ratio_check(observed, shares, threshold=0.01)

    # then
    assert not default.flagged
    assert looser.flagged


def test_expected_shares_weigh_each_period_s_weights_by_its_arrivals():
    # given: 1,000 units at 50/50, then the weights move to 20/80 and 3,000 more arrive (sticky bucketing)
    periods = [(1000, [0.5, 0.5]), (3000, [0.2, 0.8])]

    # when
    shares = expected_shares(periods)

    # then: (500 + 600) / 4000 and (500 + 2400) / 4000
    assert shares == pytest.approx([0.275, 0.725])


def test_expected_shares_normalise_weights_that_do_not_sum_to_one():
    # when
    shares = expected_shares([(100, [1, 1, 2]), (100, [0, 1, 1])])

    # then: (25 + 0, 25 + 50, 50 + 50) / 200
    assert shares == pytest.approx([0.125, 0.375, 0.5])


def test_expected_shares_without_arrivals_are_the_latest_weights():
    # when
    shares = expected_shares([(0, [0.5, 0.5]), (0, [0.1, 0.9])])

    # then
    assert shares == pytest.approx([0.1, 0.9])


def test_a_bandit_history_checked_against_the_right_expectation_is_not_flagged_but_against_the_latest_is():
    # given: arrivals split exactly as each period's weights said
    periods = [(10_000, [0.5, 0.5]), (10_000, [0.3, 0.7]), (10_000, [0.1, 0.9])]
    observed = [5000 + 3000 + 1000, 5000 + 7000 + 9000]

    # when
    right = sample_ratio_check(observed, expected_shares(periods))
    naive = sample_ratio_check(observed, [0.1, 0.9])

    # then
    assert not right.flagged
    assert right.chi_square == pytest.approx(0.0, abs=1e-9)
    assert naive.flagged
