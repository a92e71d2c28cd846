from unittest import mock

import pytest
from django.core.cache import cache as django_cache

from recommendations import cache
from recommendations.engine.precomputed import BoughtTogether, Candidate, Precomputed
from tests.factories.recommendations import RecommenderVersionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def version(merchant):
    return RecommenderVersionFactory(merchant=merchant, number=3, status="active")


def _precomputed():
    return Precomputed(
        for_customer={7: [Candidate(11, 0.9, "viewed", 12), Candidate(13, 0.5, "for_you")], 8: []},
        viewed_together={11: [(12, 0.5)]},
        similar_content={11: [(13, 0.4)], 14: [(11, 0.3)]},
        bought_together={11: [BoughtTogether(15, support=0.1, confidence=0.5, lift=2.0)]},
        popular=[(11, 10.0), (12, 5.0)],
        trending=[(13, 2.0)],
        popular_by_category={4: [(11, 1.0)]},
        new_arrivals=[15],
        item_vectors={11: [0.6, 0.8], 12: [1.0, 0.0]},
    )


def test_publish_writes_every_list_and_points_at_the_version(merchant, version):
    # when
    cache.publish_precomputed(version=version, precomputed=_precomputed())

    # then
    state = cache.serving_state_get(merchant_id=merchant.pk, visitor=None)
    assert state.pointer == (3, version.pk)
    lists = cache.version_lists_get(
        merchant_id=merchant.pk, number=3, customer_id=7, product_ids=[11, 14, 99], category_ids=[4]
    )
    assert lists.for_customer == [(11, 0.9, "viewed", 12), (13, 0.5, "for_you", None)]
    assert lists.items[11] == {"vt": [(12, 0.5)], "sc": [(13, 0.4)], "bt": [(15, 1.0)]}
    assert lists.items[14] == {"sc": [(11, 0.3)]}
    assert 99 not in lists.items
    assert lists.popular == [(11, 10.0), (12, 5.0)]
    assert lists.trending == [(13, 2.0)]
    assert lists.new_arrivals == [15]
    assert lists.categories == {4: ([(11, 1.0)], [])}


def test_customers_without_candidates_get_no_key(merchant, version):
    # when
    cache.publish_precomputed(version=version, precomputed=_precomputed())

    # then
    assert django_cache.get(cache.version_key(merchant.pk, 3, "c:8")) is None


def test_item_vectors_round_trip_as_float32(merchant, version):
    # given
    cache.publish_precomputed(version=version, precomputed=_precomputed())

    # when
    vectors = cache.item_vectors_get(merchant_id=merchant.pk, number=3, product_ids=[11, 12, 99])

    # then
    assert vectors[11] == pytest.approx([0.6, 0.8], abs=1e-6)
    assert vectors[12] == [1.0, 0.0]
    assert 99 not in vectors


def test_lists_are_truncated_to_bound_memory(merchant, version):
    # given a huge popular list and personal list
    precomputed = Precomputed(
        popular=[(i, float(-i)) for i in range(5000)],
        for_customer={1: [Candidate(i, 1.0, "for_you") for i in range(1000)]},
    )

    # when
    cache.publish_precomputed(version=version, precomputed=precomputed)

    # then
    lists = cache.version_lists_get(merchant_id=merchant.pk, number=3, customer_id=1, product_ids=[])
    assert len(lists.popular) == cache.GLOBAL_LIST_LIMIT
    assert len(lists.for_customer) == cache.CUSTOMER_LIST_LIMIT


def test_keys_expire_and_the_global_key_first(merchant, version):
    # given
    with mock.patch.object(django_cache, "set_many", wraps=django_cache.set_many) as set_many:
        # when
        cache.publish_precomputed(version=version, precomputed=_precomputed())

    # then
    timeouts = {}
    for call in set_many.call_args_list:
        for key in call.args[0]:
            timeouts[key] = call.kwargs["timeout"]
    global_ttl = timeouts[cache.version_key(merchant.pk, 3, "global")]
    item_ttl = timeouts[cache.version_key(merchant.pk, 3, "i:11")]
    assert all(timeout is not None and timeout > 0 for timeout in timeouts.values())
    assert global_ttl < item_ttl
    # and the pointer is written last
    assert list(set_many.call_args_list[-1].args[0]) == [cache.active_key(merchant.pk)]


def test_publish_writes_in_chunks(merchant, version):
    # given 1,200 customers
    precomputed = Precomputed(for_customer={i: [Candidate(1, 1.0, "for_you")] for i in range(1200)})

    # when
    with mock.patch.object(django_cache, "set_many", wraps=django_cache.set_many) as set_many:
        cache.publish_precomputed(version=version, precomputed=precomputed)

    # then
    assert max(len(call.args[0]) for call in set_many.call_args_list) <= cache.SET_MANY_CHUNK
    assert sum(len(call.args[0]) for call in set_many.call_args_list) == 1200 + 2


def test_a_missing_global_key_reads_as_not_warm(merchant):
    # when / then
    assert cache.version_lists_get(merchant_id=merchant.pk, number=1, customer_id=None, product_ids=[1]) is None


def test_a_backend_failure_raises_cache_unavailable_and_is_remembered(merchant):
    # given
    with mock.patch.object(django_cache, "get_many", side_effect=ConnectionError("refused")) as get_many:
        # when / then
        with pytest.raises(cache.CacheUnavailable):
            cache.serving_state_get(merchant_id=merchant.pk, visitor=None)
        # the next call does not wait for Redis again
        with pytest.raises(cache.CacheUnavailable):
            cache.serving_state_get(merchant_id=merchant.pk, visitor=None)
        assert get_many.call_count == 1

    # and once the circuit is reset the cache is used again
    cache.cache_reset_circuit()
    assert cache.serving_state_get(merchant_id=merchant.pk, visitor=None).pointer is None


def test_the_warm_lock_is_held_once(merchant):
    # when
    first = cache.warm_lock_acquire(merchant_id=merchant.pk, number=1)
    second = cache.warm_lock_acquire(merchant_id=merchant.pk, number=1)
    cache.warm_lock_release(merchant_id=merchant.pk, number=1)
    third = cache.warm_lock_acquire(merchant_id=merchant.pk, number=1)

    # then
    assert (first, second, third) == (True, False, True)


def test_impressions_are_bounded_and_expire():
    # given an old impression and a product shown many times
    stored = {1: [0.0], 2: [float(i) for i in range(1000, 1030)]}

    # when
    updated = cache.impressions_after_serving(impressions=stored, shown=[2, 3], now=2000.0, window_seconds=1500.0)

    # then
    assert 1 not in updated
    assert len(updated[2]) == cache.IMPRESSIONS_PER_PRODUCT
    assert updated[2][-1] == 2000.0
    assert updated[3] == [2000.0]


def test_impressions_keep_the_most_recent_products():
    # given more products than the limit
    stored = {product_id: [float(product_id)] for product_id in range(cache.IMPRESSION_PRODUCTS_LIMIT + 50)}

    # when
    updated = cache.impressions_after_serving(impressions=stored, shown=[], now=1000.0, window_seconds=1e6)

    # then
    assert len(updated) == cache.IMPRESSION_PRODUCTS_LIMIT
    assert 0 not in updated
    assert cache.IMPRESSION_PRODUCTS_LIMIT + 49 in updated


def test_merchants_do_not_share_keys(merchant, other_merchant, version):
    # given
    cache.publish_precomputed(version=version, precomputed=_precomputed())

    # when / then
    assert cache.serving_state_get(merchant_id=other_merchant.pk, visitor=None).pointer is None
    assert cache.version_lists_get(merchant_id=other_merchant.pk, number=3, customer_id=7, product_ids=[]) is None
