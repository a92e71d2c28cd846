import numpy as np
import pytest

from recommendations.engine.metrics import ndcg_at_k
from recommendations.engine.split import temporal_split
from recommendations.engine.validation import sample_users, validation_set
from tests.recommendations.engine.data import clustered_shop, make_data


def test_validation_ndcg_equals_the_reference_metric():
    # given
    data = clustered_shop(users=40, items=20, purchases=6)
    validation = validation_set(data)
    generator = np.random.default_rng(0)
    scores = generator.random((len(validation.users), len(validation.columns))).astype(np.float32)

    # when
    fast = validation.ndcg(scores)

    # then: the same as ranking the columns and scoring each user with ndcg_at_k
    _, holdout = temporal_split(data)
    masked = scores + validation.seen_penalty
    reference = []
    for row, user in enumerate(validation.users):
        order = validation.columns[np.argsort(-masked[row], kind="stable")[:10]]
        reference.append(ndcg_at_k(order.tolist(), holdout[int(user)], 10))
    assert fast == pytest.approx(float(np.mean(reference)), abs=1e-6)


def test_is_relevant_marks_each_user_s_held_out_items():
    # given
    data = clustered_shop(users=40, items=20, purchases=6)
    validation = validation_set(data)
    held = np.flatnonzero(validation.relevant[0])

    # when
    marks = validation.is_relevant(np.tile(validation.columns, (len(validation.users), 1)))

    # then
    assert len(held) == 1
    assert np.flatnonzero(marks[0]).tolist() == held.tolist()


def test_no_validation_set_when_too_few_users_are_held_out():
    # given
    data = make_data([(0, item, "purchase", 10 - item) for item in range(6)], items=6, users=1)

    # when / then
    assert validation_set(data) is None


def test_a_user_sample_keeps_whole_histories_and_reports_the_thinning():
    # given
    data = clustered_shop(users=40)

    # when
    sample, thinning = sample_users(data, max_users=10, seed=0)

    # then
    kept = np.unique(sample.interactions.user)
    assert len(kept) == 10 and thinning == pytest.approx(4.0)
    for user in kept:
        assert (sample.interactions.user == user).sum() == (data.interactions.user == user).sum()
    assert sample_users(data, max_users=100)[1] == 1.0
