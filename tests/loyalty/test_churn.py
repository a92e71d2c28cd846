import pickle

import numpy as np
import pytest

from loyalty.churn import (
    COLUMN_INDEX,
    FEATURES,
    ChurnModel,
    FeatureTable,
    best_f1_threshold,
    churn_score,
    churn_train,
    reliability_table,
)


def _table(*, customers: int, seed: int, as_of: str, labelled: bool = True) -> FeatureTable:
    """Customers whose churn depends on how long ago they last ordered and visited, plus noise features."""
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(customers, len(FEATURES)))
    recency = rng.exponential(30.0, size=customers)
    last_session = recency * rng.uniform(0.2, 1.0, size=customers)
    values[:, COLUMN_INDEX["days_since_last_order"]] = recency
    values[:, COLUMN_INDEX["days_since_last_session"]] = last_session
    logit = -2.5 + 0.08 * recency + 0.04 * last_session
    churned = (rng.random(customers) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return FeatureTable(
        customer_id=np.arange(customers, dtype=np.int64) + 1,
        values=values,
        as_of=as_of,
        churned=churned if labelled else None,
    )


@pytest.fixture(scope="module")
def trained() -> ChurnModel:
    return churn_train(
        _table(customers=600, seed=1, as_of="2026-01-01"), _table(customers=600, seed=2, as_of="2026-02-01"), seed=0
    )


def test_churn_train_learns_the_signal_and_reports_the_evaluation_on_the_later_table(trained):
    # given: a model trained on January's customers, evaluated on February's

    # when
    evaluation = trained.evaluation

    # then: recency carries the signal, so the ranking is good and recency matters most
    assert evaluation.auc >= 0.75
    assert evaluation.train_customers == 600 and evaluation.test_customers == 600
    assert 0 < evaluation.threshold < 1
    assert 0 < evaluation.precision <= 1 and 0 < evaluation.recall <= 1
    assert 0 < evaluation.flagged_share <= 1
    assert 0.2 < evaluation.base_rate < 0.8
    assert 0 < evaluation.brier < evaluation.base_rate * (1 - evaluation.base_rate)
    assert set(evaluation.feature_importance) == set(FEATURES)
    top = max(evaluation.feature_importance, key=evaluation.feature_importance.get)
    assert top in {"days_since_last_order", "days_since_last_session"}
    assert evaluation.calibration_method in {"none", "isotonic", "sigmoid"}
    assert set(evaluation.brier_out_of_fold) == {"none", "isotonic", "sigmoid"}
    chosen_brier = evaluation.brier_out_of_fold[evaluation.calibration_method]
    assert chosen_brier == min(evaluation.brier_out_of_fold.values())


def test_calibration_deciles_cover_every_customer_and_track_the_observed_rate(trained):
    # given
    evaluation = trained.evaluation

    # when
    deciles = evaluation.calibration

    # then: ten equal groups in predicted order whose observed churn rises with the prediction
    assert len(deciles) == 10
    assert sum(customers for _, _, customers in deciles) == 600
    predicted = [mean for mean, _, _ in deciles]
    observed = [rate for _, rate, _ in deciles]
    assert predicted == sorted(predicted)
    assert observed[-1] > observed[0] + 0.3
    assert max(abs(p - o) for p, o, _ in deciles) < 0.25


def test_churn_score_gives_a_probability_per_customer_and_survives_pickling(trained):
    # given: this week's customers, unlabelled, and the model as the run stores it
    table = _table(customers=50, seed=3, as_of="2026-03-01", labelled=False)
    stored = pickle.loads(pickle.dumps(trained))

    # when
    probability = churn_score(stored, table)

    # then
    assert probability.shape == (50,)
    assert np.all((probability >= 0) & (probability <= 1))
    np.testing.assert_allclose(probability, churn_score(trained, table))
    recent, lapsed = np.argsort(table.values[:, COLUMN_INDEX["days_since_last_order"]])[[0, -1]]
    assert probability[lapsed] > probability[recent]


def test_churn_score_of_an_empty_table_is_empty(trained):
    # given
    table = FeatureTable(customer_id=np.zeros(0, dtype=np.int64), values=np.zeros((0, len(FEATURES))), as_of="x")

    # when
    probability = churn_score(trained, table)

    # then
    assert probability.shape == (0,)


@pytest.mark.parametrize(
    ("train", "message"),
    [
        (_table(customers=600, seed=1, as_of="2026-01-01", labelled=False), "not labelled"),
        (_table(customers=10, seed=1, as_of="2026-01-01"), "at least"),
        (
            FeatureTable(
                customer_id=np.arange(100), values=np.zeros((100, len(FEATURES))), as_of="x", churned=np.ones(100)
            ),
            "churned",
        ),
    ],
    ids=["unlabelled", "too-few", "one-class"],
)
def test_churn_train_refuses_tables_it_cannot_learn_from(train, message):
    # given
    test = _table(customers=200, seed=2, as_of="2026-02-01")

    # when / then
    with pytest.raises(ValueError, match=message):
        churn_train(train, test)


def test_best_f1_threshold_picks_the_cut_that_separates_a_clean_split():
    # given: every churner scores above every retained customer
    labels = np.array([0, 0, 0, 1, 1, 1])
    probability = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.8])

    # when
    threshold = best_f1_threshold(labels, probability)

    # then: flagging p ≥ threshold catches all churners and no one else
    assert threshold == pytest.approx(0.6)


def test_reliability_table_groups_in_predicted_order():
    # given
    probability = np.array([0.9, 0.1, 0.8, 0.2])
    labels = np.array([1, 0, 0, 0])

    # when
    table = reliability_table(labels, probability, bins=2)

    # then
    assert table == [(pytest.approx(0.15), 0.0, 2), (pytest.approx(0.85), 0.5, 2)]
