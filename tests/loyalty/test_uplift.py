import pickle

import numpy as np
import pytest

from loyalty.uplift import (
    FOREST_MAX_ROWS,
    UNAVAILABLE_COST,
    average_treatment_effects,
    policy_values,
    qini_coefficient,
    uplift_fit,
)

KINDS = ("none", "percent_10", "free_shipping")
FEATURES = tuple(f"x{i}" for i in range(5))
MARGIN = 30.0
COST = {"none": 0.0, "percent_10": 8.0, "free_shipping": 6.0}


def _effect(kind: np.ndarray, X: np.ndarray) -> np.ndarray:
    # 10% off converts 30 points more when x0 > 0 and puts off 10 points otherwise; free shipping +3 points.
    percent = np.where(X[:, 0] > 0, 0.30, -0.10)
    return np.where(kind == "percent_10", percent, np.where(kind == "free_shipping", 0.03, 0.0))


def _randomized(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(FEATURES)))
    kind = rng.choice(np.array(KINDS, dtype=object), size=n)
    base = 1 / (1 + np.exp(-(-0.6 + 0.6 * X[:, 1])))
    converted = (rng.random(n) < np.clip(base + _effect(kind, X), 0, 1)).astype(float)
    return {
        "X": X,
        "kinds": kind,
        "converted": converted,
        "margin": np.full(n, MARGIN),
        "cost": np.array([COST[k] for k in kind]),
        "cost_by_kind": np.tile([COST[k] for k in KINDS], (n, 1)),
        "propensity": np.full(n, 1 / len(KINDS)),
    }


def _fit(data: dict, method: str, seed: int = 0):
    return uplift_fit(
        data["X"],
        data["kinds"],
        data["converted"],
        all_kinds=KINDS,
        feature_names=FEATURES,
        method=method,
        margin=data["margin"],
        cost=data["cost"],
        cost_by_kind=data["cost_by_kind"],
        propensity=data["propensity"],
        seed=seed,
    )


@pytest.fixture(scope="module")
def data() -> dict:
    return _randomized(4000, seed=7)


@pytest.fixture(scope="module")
def fitted(data: dict) -> dict:
    return {method: _fit(data, method) for method in ("t_learner", "x_learner")}


@pytest.mark.parametrize("method", ["t_learner", "x_learner"])
def test_both_learners_recover_the_sign_of_the_effect_by_group(data, fitted, method):
    # given
    model, _ = fitted[method]
    fresh = _randomized(2000, seed=99)["X"]
    # when
    uplift = model.uplift(fresh)
    # then
    percent = model.kinds.index("percent_10")
    helped = fresh[:, 0] > 0
    assert model.kinds[0] == "none"
    assert uplift[helped, percent].mean() > 0.15
    assert uplift[~helped, percent].mean() < -0.03
    assert np.all(uplift[:, 0] == 0)


def test_x_learner_ranks_better_than_random_and_its_policy_beats_blanket_and_no_offer(fitted):
    # given
    _, metrics = fitted["x_learner"]
    # when
    qini = metrics.qini["percent_10"]
    policy = metrics.policy_value
    # then
    assert qini["coefficient"] > 0.02
    assert 0 < qini["normalized"] <= 1
    assert policy["model"]["value"] > policy["percent_10"]["value"]
    assert policy["model"]["value"] > policy["free_shipping"]["value"]
    assert policy["model"]["value"] > policy["none"]["value"]
    assert policy["model_minus_best_blanket"]["value"] > 0
    assert policy["model_minus_best_blanket"]["low"] < policy["model_minus_best_blanket"]["value"]
    assert set(policy["dr"]) == {*KINDS, "model", "model_minus_none", "model_minus_best_blanket", "outcome_r2"}
    assert policy["dr"]["model"]["value"] > policy["dr"]["none"]["value"]
    assert policy["dr"]["model_minus_best_blanket"]["against"] == "percent_10"
    # 10% off, mostly, to about the half of carts it helps; free shipping pays nowhere but estimation noise
    # picks it now and then.
    assert 0.3 < policy["model"]["offer_share"] < 0.8
    assert policy["model"]["choices"]["percent_10"] > 2 * policy["model"]["choices"]["free_shipping"]


def test_metrics_count_the_held_out_rows_and_report_the_randomized_effect(data, fitted):
    # given
    _, metrics = fitted["x_learner"]
    # then
    assert metrics.train_rows + metrics.test_rows == 4000
    assert metrics.test_rows == pytest.approx(1200, abs=3)
    ate = metrics.ate["percent_10"]
    true_effect = _effect(np.full(4000, "percent_10", dtype=object), data["X"]).mean()
    assert ate["low"] < true_effect < ate["high"]
    assert ate["n"] == int((data["kinds"] == "percent_10").sum())
    assert abs(ate["predicted"] - true_effect) < 0.05


def test_average_treatment_effect_interval_covers_the_truth_about_95_percent_of_the_time():
    # given: 300 randomized experiments with a known 8-point effect
    covered = 0
    for seed in range(300):
        rng = np.random.default_rng(seed)
        drawn = rng.choice(np.array(["none", "percent_10"], dtype=object), size=400)
        converted = (rng.random(400) < np.where(drawn == "percent_10", 0.38, 0.30)).astype(float)
        # when
        effect = average_treatment_effects(drawn, converted, kinds=("none", "percent_10"))["percent_10"]
        covered += effect["low"] <= 0.08 <= effect["high"]
    # then
    assert 0.91 <= covered / 300 <= 0.99


def test_average_treatment_effect_is_the_difference_in_conversion():
    # given
    drawn = np.array(["none"] * 4 + ["points"] * 4, dtype=object)
    converted = np.array([1, 0, 0, 0, 1, 1, 0, 0], dtype=float)
    # when
    effect = average_treatment_effects(drawn, converted, kinds=("none", "points"))["points"]
    # then
    assert effect["estimate"] == pytest.approx(0.25)
    assert effect["conversion"] == pytest.approx(0.5)
    assert effect["control_conversion"] == pytest.approx(0.25)
    assert effect["low"] < 0.25 < effect["high"]


def test_qini_is_one_for_the_perfect_ranking_and_about_zero_for_a_random_one():
    # given: treated buyers respond only when x > 0
    rng = np.random.default_rng(3)
    x = rng.normal(size=4000)
    treated = rng.random(4000) < 0.5
    converted = (rng.random(4000) < np.where(treated & (x > 0), 0.6, 0.2)).astype(float)
    perfect_score = converted * np.where(treated, 1, -1)
    # when
    perfect = qini_coefficient(perfect_score, treated, converted, ~treated)
    informed = qini_coefficient(x, treated, converted, ~treated)
    random = qini_coefficient(rng.random(4000), treated, converted, ~treated)
    backwards = qini_coefficient(-x, treated, converted, ~treated)
    # then
    assert perfect["normalized"] == pytest.approx(1.0)
    assert informed["coefficient"] > 0.03
    assert abs(random["coefficient"]) < 0.02
    assert backwards["coefficient"] < -0.03
    assert informed["n_treated"] + informed["n_control"] == 4000


def test_policy_value_weights_matching_rows_by_inverse_propensity():
    # given: four carts of margin 10; the model would give percent_10 to the first two and nothing to the rest
    probabilities = np.array([[0.2, 0.9], [0.2, 0.9], [0.5, 0.1], [0.5, 0.1]])
    drawn = np.array(["percent_10", "none", "none", "percent_10"], dtype=object)
    converted = np.array([1.0, 0.0, 1.0, 1.0])
    # when
    values = policy_values(
        probabilities=probabilities,
        kinds=("none", "percent_10"),
        drawn=drawn,
        converted=converted,
        margin=np.full(4, 10.0),
        cost=np.where(drawn == "none", 0.0, 1.0),
        cost_by_kind=np.tile([0.0, 1.0], (4, 1)),
        propensity=np.array([0.5, 0.5, 0.5, 0.25]),
    )
    # then: the model matches rows 1 (earns 9) and 3 (earns 10) with equal weight
    assert values["model"]["value"] == pytest.approx(9.5)
    # no offer matches rows 2 (0) and 3 (10); 10% to everyone rows 1 (9, weight 2) and 4 (9, weight 4)
    assert values["none"]["value"] == pytest.approx(5.0)
    assert values["percent_10"]["value"] == pytest.approx(9.0)
    assert values["model"]["choices"] == {"none": 2, "percent_10": 2}
    assert values["model_minus_none"]["value"] == pytest.approx(4.5)
    assert values["model_minus_best_blanket"]["against"] == "percent_10"


def test_serving_a_few_rows_gives_the_same_probabilities_as_a_large_batch(data, fitted):
    # given
    model, _ = fitted["x_learner"]
    rows = data["X"][: FOREST_MAX_ROWS + 10].copy()
    rows[3, 1] = np.nan
    # when
    one_by_one = np.vstack([model.order_probabilities(rows[i : i + 1]) for i in range(len(rows))])
    batch = model.order_probabilities(rows)
    # then
    np.testing.assert_allclose(one_by_one, batch, rtol=0, atol=1e-12)
    assert batch.shape == (len(rows), len(KINDS))
    assert np.all((batch >= 0) & (batch <= 1))


def test_the_model_pickles_and_predicts_the_same(data, fitted):
    # given
    model, _ = fitted["t_learner"]
    # when
    restored = pickle.loads(pickle.dumps(model))
    # then
    rows = data["X"][:20]
    np.testing.assert_array_equal(restored.order_probabilities(rows), model.order_probabilities(rows))
    assert restored.feature_names == FEATURES


def test_a_kind_under_which_nobody_ordered_still_fits():
    # given
    data = _randomized(900, seed=1)
    data["converted"][data["kinds"] == "free_shipping"] = 0.0
    # when
    model, metrics = _fit(data, "x_learner")
    # then
    probabilities = model.order_probabilities(data["X"][:50])
    assert np.isfinite(probabilities).all()
    assert metrics.ate["free_shipping"]["conversion"] == 0.0


def test_too_few_rows_of_a_kind_is_refused():
    # given
    data = _randomized(300, seed=2)
    keep = (data["kinds"] != "free_shipping") | (np.arange(300) < 20)
    small = {name: values[keep] for name, values in data.items()}
    # when / then
    with pytest.raises(ValueError, match="free_shipping"):
        _fit(small, "x_learner")


def test_an_unknown_method_or_a_feature_mismatch_is_refused(data):
    # when / then
    with pytest.raises(ValueError, match="method"):
        _fit(data, "s_learner")
    with pytest.raises(ValueError, match="columns"):
        uplift_fit(data["X"][:, :3], data["kinds"], data["converted"], all_kinds=KINDS, feature_names=FEATURES)


# A world whose policy values are known exactly: P(order | x, kind) is given, so the value of any policy on a
# sample of carts is the mean of p_π(x)·(margin − cost_π).
KNOWN_KINDS = ("none", "percent_10", "free_shipping")
KNOWN_SHARES = np.array([0.4, 0.3, 0.3])


def _known_world(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    base = 1 / (1 + np.exp(-(-0.5 + 0.8 * x)))
    true_p = np.column_stack([base, np.clip(base + np.where(x > 0, 0.25, -0.10), 0, 1), np.clip(base + 0.05, 0, 1)])
    margin = rng.uniform(20, 60, size=n)
    cost_by_kind = np.column_stack([np.zeros(n), 0.25 * margin, np.full(n, 5.0)])
    drawn = rng.choice(len(KNOWN_KINDS), size=n, p=KNOWN_SHARES)
    rows = np.arange(n)
    return {
        "true_p": true_p,
        "drawn": np.asarray(KNOWN_KINDS, dtype=object)[drawn],
        "converted": (rng.random(n) < true_p[rows, drawn]).astype(float),
        "margin": margin,
        "cost": cost_by_kind[rows, drawn],
        "cost_by_kind": cost_by_kind,
        "propensity": KNOWN_SHARES[drawn],
    }


def _known_policy_values(world: dict, probabilities: np.ndarray) -> dict:
    return policy_values(
        probabilities=probabilities,
        kinds=KNOWN_KINDS,
        drawn=world["drawn"],
        converted=world["converted"],
        margin=world["margin"],
        cost=world["cost"],
        cost_by_kind=world["cost_by_kind"],
        propensity=world["propensity"],
    )


def _true_model_minus_none(world: dict, probabilities: np.ndarray) -> float:
    """The true value of the choices a model with these probabilities makes, minus no offer's."""
    margin, cost_by_kind, true_p = world["margin"], world["cost_by_kind"], world["true_p"]
    expected = probabilities * (margin[:, None] - cost_by_kind)
    choice = np.argmax(expected, axis=1)
    true_margin = true_p * (margin[:, None] - cost_by_kind)
    return float(true_margin[np.arange(len(choice)), choice].mean() - true_margin[:, 0].mean())


def _errors_over_seeds(probabilities_of) -> dict:
    errors = {"ipw": [], "dr": [], "ipw_width": [], "dr_width": [], "dr_covers": [], "outcome_r2": []}
    for seed in range(300):
        world = _known_world(500, seed)
        probabilities = probabilities_of(world)
        values = _known_policy_values(world, probabilities)
        truth = _true_model_minus_none(world, probabilities)
        ipw, dr = values["model_minus_none"], values["dr"]["model_minus_none"]
        errors["ipw"].append(ipw["value"] - truth)
        errors["dr"].append(dr["value"] - truth)
        errors["ipw_width"].append(ipw["high"] - ipw["low"])
        errors["dr_width"].append(dr["high"] - dr["low"])
        errors["dr_covers"].append(dr["low"] <= truth <= dr["high"])
        errors["outcome_r2"].append(values["dr"]["outcome_r2"])
    return {name: np.asarray(values, dtype=float) for name, values in errors.items()}


def test_doubly_robust_model_minus_none_is_unbiased_and_tighter_than_ipw_with_a_good_outcome_model():
    # given: 300 randomized samples of 500 carts and an outcome model that knows P(order | x, kind)
    # when
    errors = _errors_over_seeds(lambda world: world["true_p"])
    # then: no bias beyond the noise of 300 draws, ~95% coverage, less spread and narrower intervals than IPW
    assert abs(errors["dr"].mean()) < 3 * errors["dr"].std() / np.sqrt(300)
    assert 0.91 <= errors["dr_covers"].mean() <= 0.98
    assert errors["dr"].std() < 0.95 * errors["ipw"].std()
    assert errors["dr_width"].mean() < 0.95 * errors["ipw_width"].mean()
    assert errors["outcome_r2"].min() > 0


def test_doubly_robust_stays_unbiased_when_the_outcome_model_is_wrong_but_the_propensities_are_right():
    # given: an outcome model with the kinds' probabilities shuffled and bent by the cart's margin
    def wrong(world: dict) -> np.ndarray:
        bent = 1.2 - world["true_p"][:, [1, 2, 0]] - 0.3 * (world["margin"][:, None] > 40)
        return np.clip(bent, 0.02, 0.98)

    world = _known_world(500, seed=0)
    choices = _known_policy_values(world, wrong(world))["model"]["choices"]
    # when
    errors = _errors_over_seeds(wrong)
    # then: its choices are not the truth's (it offers something to about half the carts) yet DR stays on target
    assert 0.2 < choices["none"] / 500 < 0.8
    assert abs(errors["dr"].mean()) < 3 * errors["dr"].std() / np.sqrt(300)
    assert 0.91 <= errors["dr_covers"].mean() <= 0.98


def test_doubly_robust_values_follow_the_aipw_formula_row_by_row():
    # given: the four carts of the IPW example (margin 10, 10% off costs 1)
    probabilities = np.array([[0.2, 0.9], [0.2, 0.9], [0.5, 0.1], [0.5, 0.1]])
    drawn = np.array(["percent_10", "none", "none", "percent_10"], dtype=object)
    # when
    values = policy_values(
        probabilities=probabilities,
        kinds=("none", "percent_10"),
        drawn=drawn,
        converted=np.array([1.0, 0.0, 1.0, 1.0]),
        margin=np.full(4, 10.0),
        cost=np.where(drawn == "none", 0.0, 1.0),
        cost_by_kind=np.tile([0.0, 1.0], (4, 1)),
        propensity=np.array([0.5, 0.5, 0.5, 0.25]),
    )["dr"]
    # then: μ(x, none) = 2, 2, 5, 5 and μ(x, 10%) = 8.1, 8.1, 0.9, 0.9; realized 9, 0, 10, 9
    # model (10%, 10%, none, none): 8.1 + 2·(9 − 8.1), 8.1, 5 + 2·(10 − 5), 5
    assert values["model"]["value"] == pytest.approx((9.9 + 8.1 + 15.0 + 5.0) / 4)
    # none: 2, 2 + 2·(0 − 2), 15, 5; 10% to everyone: 9.9, 8.1, 0.9, 0.9 + 4·(9 − 0.9)
    assert values["none"]["value"] == pytest.approx(20.0 / 4)
    assert values["percent_10"]["value"] == pytest.approx((9.9 + 8.1 + 0.9 + 33.3) / 4)
    assert values["model_minus_none"]["value"] == pytest.approx(values["model"]["value"] - values["none"]["value"])
    assert values["model_minus_best_blanket"]["against"] == "percent_10"
    assert values["model_minus_best_blanket"]["value"] == pytest.approx(9.5 - 13.05)
    # the outcome model against the realized margins 9, 0, 10, 9 of the drawn kinds: 8.1, 2, 5, 0.9
    assert values["outcome_r2"] == pytest.approx(1 - (0.9**2 + 2**2 + 5**2 + 8.1**2) / 4 / 16.5)


def test_a_model_that_offers_nothing_differs_from_no_offer_by_exactly_zero_in_both_estimators():
    # given: probabilities under which no offer pays
    world = _known_world(400, seed=5)
    probabilities = np.column_stack([np.full(400, 0.6), np.full(400, 0.1), np.full(400, 0.1)])
    # when
    values = _known_policy_values(world, probabilities)
    # then: the paired difference is row by row, so the same policy gives 0 with no width
    assert values["model"]["choices"] == {"none": 400, "percent_10": 0, "free_shipping": 0}
    for estimator in (values, values["dr"]):
        difference = estimator["model_minus_none"]
        assert difference["value"] == pytest.approx(0.0, abs=1e-12)
        assert difference["high"] - difference["low"] == pytest.approx(0.0, abs=1e-12)
        assert estimator["model"]["low"] < estimator["model"]["value"] < estimator["model"]["high"]


def test_a_kind_a_cart_cannot_get_is_neither_chosen_nor_given_by_its_blanket_policy_there():
    # given: free shipping is unavailable on the last two carts (they ship free anyway), which never drew it
    probabilities = np.array([[0.3, 0.5], [0.3, 0.5], [0.3, 0.9], [0.3, 0.9]])
    drawn = np.array(["free_shipping", "none", "none", "none"], dtype=object)
    cost_by_kind = np.array([[0.0, 2.0], [0.0, 2.0], [0.0, UNAVAILABLE_COST], [0.0, UNAVAILABLE_COST]])
    # when
    values = policy_values(
        probabilities=probabilities,
        kinds=("none", "free_shipping"),
        drawn=drawn,
        converted=np.array([1.0, 0.0, 1.0, 0.0]),
        margin=np.full(4, 10.0),
        cost=np.where(drawn == "none", 0.0, 2.0),
        cost_by_kind=cost_by_kind,
        propensity=np.array([0.5, 0.5, 1.0, 1.0]),
    )
    # then: the model offers free shipping to the first two only; "free shipping for everyone" gives the last
    # two nothing, so both estimators stay finite and count those carts' no-offer outcomes
    assert values["model"]["choices"] == {"none": 2, "free_shipping": 2}
    dr = values["dr"]
    # μ(x, free shipping) = 0.5·8 = 4 on the first two; no offer on the last two: 3 + (10 − 3), 3 + (0 − 3)
    assert dr["free_shipping"]["value"] == pytest.approx((4 + 2 * (8 - 4) + 4 + 10 + 0) / 4)
    assert dr["model"]["value"] == pytest.approx(dr["free_shipping"]["value"])
    assert values["free_shipping"]["value"] == pytest.approx((2 * 8 + 10 + 0) / 4)
