from dataclasses import FrozenInstanceError
from decimal import Decimal

import pytest

from catalog.selectors import (
    CatalogCounts,
    ProductRef,
    catalog_counts,
    category_descendant_ids,
    category_list,
    product_get_by_sku,
    product_list,
    products_by_reference,
)
from tests.factories.catalog import CategoryFactory, ProductFactory

pytestmark = pytest.mark.django_db


def _tree(merchant):
    outdoor = CategoryFactory(merchant=merchant, name="Outdoor", path="Outdoor")
    camping = CategoryFactory(merchant=merchant, name="Camping", path="Outdoor > Camping", parent=outdoor)
    tents = CategoryFactory(merchant=merchant, name="Tents", path="Outdoor > Camping > Tents", parent=camping)
    kitchen = CategoryFactory(merchant=merchant, name="Kitchen", path="Kitchen")
    return outdoor, camping, tents, kitchen


def test_product_list_filters_by_category_including_descendants(merchant):
    # given
    outdoor, camping, tents, kitchen = _tree(merchant)
    in_outdoor = ProductFactory(merchant=merchant, category=outdoor)
    in_tents = ProductFactory(merchant=merchant, category=tents)
    ProductFactory(merchant=merchant, category=kitchen)

    # when
    products = list(product_list(merchant=merchant, category_id=outdoor.pk))
    camping_products = list(product_list(merchant=merchant, category_id=camping.pk))

    # then
    assert products == [in_outdoor, in_tents]
    assert camping_products == [in_tents]


def test_category_descendants_of_another_merchants_category_are_empty(merchant, other_merchant):
    # given
    their_category = CategoryFactory(merchant=other_merchant)
    ProductFactory(merchant=other_merchant, category=their_category)

    # when
    ids = category_descendant_ids(merchant=merchant, category_id=their_category.pk)
    products = list(product_list(merchant=merchant, category_id=their_category.pk))

    # then
    assert ids == set()
    assert products == []


def test_product_list_filters_stock_activity_and_search(merchant):
    # given
    in_stock = ProductFactory(merchant=merchant, sku="TENT-1", title="Cirrus Tent", inventory=3)
    sold_out = ProductFactory(merchant=merchant, sku="MUG-1", title="Camp Mug", inventory=0)
    inactive = ProductFactory(merchant=merchant, sku="TENT-OLD", title="Old Tent", is_active=False)

    # when / then
    assert list(product_list(merchant=merchant)) == [sold_out, in_stock]
    assert list(product_list(merchant=merchant, in_stock=True)) == [in_stock]
    assert list(product_list(merchant=merchant, in_stock=False)) == [sold_out]
    assert list(product_list(merchant=merchant, active_only=False, search="tent")) == [in_stock, inactive]
    assert list(product_list(merchant=merchant, search="mug-")) == [sold_out]


def test_product_list_never_returns_another_merchants_products(merchant, other_merchant):
    # given
    mine = ProductFactory(merchant=merchant)
    ProductFactory(merchant=other_merchant)

    # when
    products = list(product_list(merchant=merchant, active_only=False))

    # then
    assert products == [mine]


def test_product_get_by_sku_is_scoped_to_the_merchant(merchant, other_merchant):
    # given
    ProductFactory(merchant=other_merchant, sku="SHARED")
    inactive = ProductFactory(merchant=merchant, sku="OLD", is_active=False)

    # when / then
    assert product_get_by_sku(merchant=merchant, sku="SHARED") is None
    assert product_get_by_sku(merchant=merchant, sku="OLD") == inactive
    assert product_get_by_sku(merchant=merchant, sku="OLD", active_only=True) is None


def test_category_list_is_ordered_by_path_and_scoped(merchant, other_merchant):
    # given
    outdoor, camping, tents, kitchen = _tree(merchant)
    CategoryFactory(merchant=other_merchant, name="Alpha", path="Alpha")

    # when
    categories = list(category_list(merchant=merchant))

    # then
    assert categories == [kitchen, outdoor, camping, tents]


def test_products_by_reference_prefers_external_id_then_sku_in_one_query(merchant, django_assert_num_queries):
    # given
    by_external = ProductFactory(merchant=merchant, sku="A-1", external_id="1001", price=Decimal("10.00"))
    # A SKU that equals another product's external id: the external id wins.
    ProductFactory(merchant=merchant, sku="1001")
    by_sku = ProductFactory(merchant=merchant, sku="B-2", cost=None, is_active=False)

    # when
    with django_assert_num_queries(1):
        refs = products_by_reference(merchant=merchant, references=["1001", "B-2", "missing", ""])

    # then
    assert refs == {
        "1001": ProductRef(id=by_external.pk, sku="A-1", price=Decimal("10.00"), cost=Decimal("12.00"), is_active=True),
        "B-2": ProductRef(id=by_sku.pk, sku="B-2", price=Decimal("25.00"), cost=None, is_active=False),
    }


def test_products_by_reference_returns_frozen_refs_and_ignores_other_merchants(merchant, other_merchant):
    # given
    ProductFactory(merchant=other_merchant, sku="THEIRS", external_id="42")
    mine = ProductFactory(merchant=merchant, sku="MINE")

    # when
    refs = products_by_reference(merchant=merchant, references=iter(["THEIRS", "42", "MINE"]))

    # then
    assert list(refs) == ["MINE"]
    assert refs["MINE"].id == mine.pk
    with pytest.raises(FrozenInstanceError):
        refs["MINE"].price = Decimal("1")


def test_products_by_reference_without_references_makes_no_query(merchant, django_assert_num_queries):
    # when / then
    with django_assert_num_queries(0):
        assert products_by_reference(merchant=merchant, references=[]) == {}


def test_catalog_counts(merchant, other_merchant):
    # given
    _tree(merchant)
    ProductFactory(merchant=merchant, inventory=4)
    ProductFactory(merchant=merchant, inventory=0)
    ProductFactory(merchant=merchant, inventory=0, is_active=False)
    ProductFactory(merchant=other_merchant)

    # when
    counts = catalog_counts(merchant=merchant)

    # then: the product factory's own categories count too (3 products → 3 categories, + 4 in the tree)
    assert counts == CatalogCounts(products=3, active=2, out_of_stock=1, categories=7)
