import numpy as np
import pytest

from pricing.choice import (
    YOGURT_PUBLISHED,
    YOGURT_PUBLISHED_LOG_LIKELIHOOD,
    YOGURT_PUBLISHED_NULL_LOG_LIKELIHOOD,
    ChoiceData,
    conditional_logit_fit,
    own_and_cross_elasticities,
    yogurt_choice_data,
)


@pytest.fixture(scope="module")
def yogurt() -> ChoiceData:
    return yogurt_choice_data()


@pytest.fixture(scope="module")
def yogurt_fit(yogurt):
    return conditional_logit_fit(yogurt, reference="dannon")


def _simulated_choices(*, occasions: int, constants: np.ndarray, price: float, feature: float, seed: int) -> ChoiceData:
    rng = np.random.default_rng(seed)
    n_alternatives = len(constants)
    prices = rng.uniform(4.0, 12.0, size=(occasions, n_alternatives))
    features = (rng.random((occasions, n_alternatives)) < 0.1).astype(float)
    utility = constants[None, :] + price * prices + feature * features + rng.gumbel(size=(occasions, n_alternatives))
    return ChoiceData(
        alternatives=tuple(f"brand{index}" for index in range(n_alternatives)),
        price=prices,
        feature=features,
        chosen=utility.argmax(axis=1),
    )


def test_yogurt_data_is_the_ecdat_panel(yogurt):
    # then
    assert yogurt.occasions == 2412
    assert yogurt.alternatives == ("dannon", "hiland", "weight", "yoplait")
    shares = np.bincount(yogurt.chosen, minlength=4) / yogurt.occasions
    np.testing.assert_allclose(shares, [0.402, 0.029, 0.229, 0.339], atol=1e-3)


def test_yogurt_fit_reproduces_the_published_logitr_estimates(yogurt_fit):
    # then: price, feature and the log-likelihood to 4 significant figures
    assert yogurt_fit.converged
    assert round(yogurt_fit.coefficient("price"), 4) == -0.3666
    assert round(yogurt_fit.coefficient("feat"), 4) == 0.4914
    assert yogurt_fit.log_likelihood == pytest.approx(YOGURT_PUBLISHED_LOG_LIKELIHOOD, abs=0.005)
    assert yogurt_fit.null_log_likelihood == pytest.approx(YOGURT_PUBLISHED_NULL_LOG_LIKELIHOOD, abs=0.005)


@pytest.mark.parametrize("name", sorted(YOGURT_PUBLISHED))
def test_yogurt_fit_matches_each_published_estimate_and_standard_error(yogurt_fit, name):
    # given
    published_estimate, published_se = YOGURT_PUBLISHED[name]

    # then
    assert yogurt_fit.coefficient(name) == pytest.approx(published_estimate, abs=2e-4)
    assert yogurt_fit.standard_error(name) == pytest.approx(published_se, rel=1e-3)


def test_fit_recovers_known_coefficients_from_simulated_choices():
    # given: 20,000 occasions drawn from a logit with known coefficients
    data = _simulated_choices(occasions=20_000, constants=np.array([0.0, -1.0, 0.5]), price=-0.4, feature=0.8, seed=3)

    # when
    fit = conditional_logit_fit(data, reference="brand0")

    # then: every truth lies within three standard errors
    for name, truth in (("price", -0.4), ("feat", 0.8), ("brand:brand1", -1.0), ("brand:brand2", 0.5)):
        assert abs(fit.coefficient(name) - truth) < 3 * fit.standard_error(name), name


def test_fitted_probabilities_sum_to_one_and_the_reference_constant_is_zero(yogurt, yogurt_fit):
    # when
    probabilities = yogurt_fit.probabilities(yogurt)

    # then
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    assert yogurt_fit.constants[0] == 0.0
    # at the maximum likelihood, predicted shares equal observed shares (the constants' score equations)
    observed = np.bincount(yogurt.chosen, minlength=4) / yogurt.occasions
    np.testing.assert_allclose(probabilities.mean(axis=0), observed, atol=1e-6)


def test_elasticities_match_a_finite_difference_of_the_aggregate_choices(yogurt, yogurt_fit):
    # given
    matrix = own_and_cross_elasticities(yogurt_fit, yogurt)
    base = yogurt_fit.probabilities(yogurt).sum(axis=0)

    for column, brand in enumerate(yogurt.alternatives):
        # when: this brand's price rises by 0.01% on every occasion
        raised = yogurt.price.copy()
        raised[:, column] *= 1.0001
        moved = ChoiceData(yogurt.alternatives, raised, yogurt.feature, yogurt.chosen)
        after = yogurt_fit.probabilities(moved).sum(axis=0)

        # then
        numeric = (after / base - 1.0) / 0.0001
        np.testing.assert_allclose(matrix.values[:, column], numeric, rtol=1e-3, err_msg=brand)


def test_elasticities_have_negative_own_and_positive_cross_effects(yogurt, yogurt_fit):
    # when
    matrix = own_and_cross_elasticities(yogurt_fit, yogurt)

    # then
    assert (matrix.values.diagonal() < 0).all()
    assert (matrix.values[~np.eye(4, dtype=bool)] > 0).all()
    # the aggregate own elasticity is beta times the share-weighted mean of price · (1 - P)
    assert matrix.own("yoplait") == pytest.approx(-2.319, abs=0.001)
    assert matrix.own("dannon") == pytest.approx(-1.660, abs=0.001)


def test_fit_rejects_an_unknown_reference(yogurt):
    with pytest.raises(ValueError, match="reference"):
        conditional_logit_fit(yogurt, reference="chobani")


def test_choice_data_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shape"):
        ChoiceData(("a", "b"), np.ones((3, 2)), np.ones((3, 3)), np.zeros(3, dtype=np.int64))
