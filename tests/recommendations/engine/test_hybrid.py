import numpy as np
import scipy.sparse as sp

from recommendations.engine.hybrid import fit_hybrid, item_features, price_bands, user_features
from tests.recommendations.engine.data import clustered_shop, make_data, make_items


def test_price_bands_are_quantiles_and_a_missing_price_has_none():
    # given
    prices = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 0.0])

    # when
    bands = price_bands(prices, bands=5)

    # then
    assert bands.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, -1]


def test_item_features_hold_identity_category_brand_and_price_band_and_sum_to_one():
    # given
    items = make_items(3, categories=[1, 1, -1], brands=["Acme", "", ""], prices=[10.0, 20.0, 0.0])

    # when
    features = item_features(items).toarray()

    # then: 3 identities + category:1 + brand:acme (price bands need five priced items)
    assert features.shape == (3, 5)
    assert np.allclose(features.sum(axis=1), 1.0)
    assert np.flatnonzero(features[0, 3:]).size == 2
    assert np.flatnonzero(features[1, 3:]).size == 1
    shared = np.flatnonzero((features[0, 3:] > 0) & (features[1, 3:] > 0))
    assert shared.size == 1
    assert features[2].tolist() == [0.0, 0.0, 1.0, 0.0, 0.0]


def test_user_features_hold_identity_device_and_segment():
    # given
    data = make_data([], items=1, users=2, devices=["mobile", "desktop"], segments=["loyal", "loyal"])

    # when
    features = user_features(data.users).toarray()

    # then: 2 identities + device:mobile, device:desktop, segment:loyal; only the segment is shared
    assert features.shape == (2, 5)
    assert np.allclose(features.sum(axis=1), 1.0)
    assert np.flatnonzero((features[0, 2:] > 0) & (features[1, 2:] > 0)).size == 1


def test_the_hybrid_ranks_a_user_s_own_taste_above_the_other_one():
    # given: even users buy items 0-9, odd users items 10-19
    data = clustered_shop()
    matrix = sp.csr_matrix(
        (np.ones(len(data.interactions)), (data.interactions.user, data.interactions.item)),
        shape=(len(data.users), len(data.items)),
    )

    # when
    model = fit_hybrid(matrix, items=data.items, users=data.users, seed=0, threads=1)

    # then
    scores = model.scores(np.arange(len(data.users)))
    first_taste, second_taste = scores[:, :10].mean(axis=1), scores[:, 10:].mean(axis=1)
    even = np.arange(len(data.users)) % 2 == 0
    own = np.where(even, first_taste, second_taste)
    other = np.where(even, second_taste, first_taste)
    assert (own > other).mean() > 0.9
