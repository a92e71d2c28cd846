import pytest

from revopt.tenancy import selectors
from revopt.tenancy.models import ApiKey
from revopt.tenancy.selectors import api_key_for_raw_key_cached, api_key_memo_forget
from revopt.tenancy.services import api_key_create, api_key_revoke, hash_api_key

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _empty_memo():
    api_key_memo_forget()
    yield
    api_key_memo_forget()


def test_a_remembered_key_authenticates_without_a_query(merchant, django_assert_num_queries):
    # given
    issued = api_key_create(merchant=merchant, name="storefront")
    api_key_for_raw_key_cached(raw_key=issued.raw_key)

    # when / then
    with django_assert_num_queries(0):
        found = api_key_for_raw_key_cached(raw_key=issued.raw_key)
    assert found == issued.api_key
    assert found.merchant == merchant


def test_revoking_a_key_stops_it_at_once_in_this_process(merchant):
    # given a key this process remembers
    issued = api_key_create(merchant=merchant, name="storefront")
    assert api_key_for_raw_key_cached(raw_key=issued.raw_key) == issued.api_key

    # when
    api_key_revoke(api_key=issued.api_key)

    # then
    assert api_key_for_raw_key_cached(raw_key=issued.raw_key) is None


def test_a_revocation_by_another_process_is_seen_when_the_memo_expires(merchant):
    # given a key this process remembers, revoked elsewhere (no call into this process's memo)
    issued = api_key_create(merchant=merchant, name="storefront")
    api_key_for_raw_key_cached(raw_key=issued.raw_key)
    ApiKey.objects.filter(pk=issued.api_key.pk).update(revoked_at=issued.api_key.created_at)

    # when / then: still trusted within the memo's seconds (documented), refused once it is gone
    assert api_key_for_raw_key_cached(raw_key=issued.raw_key) == issued.api_key
    api_key_memo_forget()
    assert api_key_for_raw_key_cached(raw_key=issued.raw_key) is None


def test_the_memo_can_be_turned_off(merchant, settings, django_assert_num_queries):
    # given
    settings.REVOPT = {**settings.REVOPT, "API_KEY_CACHE_SECONDS": 0}
    issued = api_key_create(merchant=merchant, name="storefront")
    api_key_for_raw_key_cached(raw_key=issued.raw_key)

    # when / then
    with django_assert_num_queries(1):
        assert api_key_for_raw_key_cached(raw_key=issued.raw_key) == issued.api_key


def test_invalid_keys_are_never_remembered(merchant):
    # given
    issued = api_key_create(merchant=merchant, name="storefront")
    wrong = issued.raw_key[:-2] + "xx"

    # when
    first = api_key_for_raw_key_cached(raw_key=wrong)

    # then: a key issued later under that digest would not meet a stale "invalid" answer
    assert first is None
    assert hash_api_key(wrong) not in selectors._api_key_memo
