from datetime import UTC, datetime
from decimal import Decimal

import pytest

from catalog.models import Product
from revopt.db import copy_text_value
from tests.factories.catalog import ProductFactory

pytestmark = pytest.mark.django_db


def test_any_of_matches_a_list_of_values(merchant):
    # given
    for sku in ("A", "B", "C"):
        ProductFactory(merchant=merchant, sku=sku)

    # when
    found = Product.objects.for_merchant(merchant).filter(sku__any_of=["A", "C", "missing"])

    # then
    assert sorted(found.values_list("sku", flat=True)) == ["A", "C"]


def test_any_of_an_empty_list_matches_nothing_without_a_query(merchant, django_assert_num_queries):
    ProductFactory(merchant=merchant, sku="A")

    with django_assert_num_queries(0):
        assert list(Product.objects.filter(sku__any_of=[])) == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "\\N"),
        (True, "t"),
        (False, "f"),
        (12, "12"),
        (Decimal("9.90"), "9.90"),
        ("tab\there\nnew\\line", "tab\\there\\nnew\\\\line"),
        ({"q": "a\tb"}, '{"q":"a\\\\tb"}'),
        (datetime(2026, 11, 24, 10, 0, tzinfo=UTC), "2026-11-24T10:00:00+00:00"),
    ],
)
def test_copy_text_value_escapes_for_postgres_copy(value, expected):
    assert copy_text_value(value) == expected


@pytest.mark.django_db
def test_tables_analyze_gives_the_planner_the_rows_this_transaction_loaded(merchant):
    # given rows loaded in the test's own transaction, which autovacuum cannot see
    from django.db import connection

    from revopt.db import tables_analyze

    if connection.vendor != "postgresql":
        pytest.skip("planner statistics are PostgreSQL's")
    ProductFactory.create_batch(30, merchant=merchant)

    # when
    tables_analyze([Product])

    # then
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE relname = %s", [Product._meta.db_table])
        assert cursor.fetchone()[0] >= 30
