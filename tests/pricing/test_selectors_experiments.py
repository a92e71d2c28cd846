import logging
from datetime import UTC, datetime, timedelta

import pytest

from experiments.hashing import bucket_ranges, choose_variation, hash, in_namespace
from experiments.models import ExperimentStatus, Exposure, Surface
from experiments.selectors.assignment import live_experiments
from experiments.services.lifecycle import (
    ExperimentValidationError,
    VariantSpec,
    experiment_create,
    experiment_roll_out,
    experiment_start,
    experiment_weights_update,
)
from pricing.selectors.experiments import (
    PricingArm,
    PricingConfigError,
    pricing_arms_for_products,
    pricing_config_check,
)
from tests.factories.catalog import ProductFactory
from tests.factories.experiments import LayerFactory, experiment_with_variants

pytestmark = pytest.mark.django_db

AT = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
STATIC_VS_ENGINE = (
    VariantSpec(key="static", name="Static", weight=0.5, config={"pricing": "static"}),
    VariantSpec(key="engine", name="Engine", weight=0.5, config={"pricing": "engine"}),
)


def _running(merchant, *, key="ai-vs-static", variants=STATIC_VS_ENGINE, **fields):
    experiment = experiment_create(
        merchant=merchant, key=key, name=key, variants=variants, surface=Surface.PRICING, **fields
    )
    return experiment_start(experiment=experiment, actor=None, now=AT - timedelta(days=1))


def _products(merchant, count=200):
    return ProductFactory.create_batch(count, merchant=merchant)


def _expected_index(seed, sku, weights=(0.5, 0.5), coverage=1.0):
    return choose_variation(hash(seed, f"product:{sku}", 2), bucket_ranges(len(weights), coverage, list(weights)))


def test_products_are_bucketed_by_their_sku_into_both_arms(merchant):
    # given
    products = _products(merchant)
    _running(merchant)

    # when
    arms = pricing_arms_for_products(merchant=merchant, products=products)

    # then every product is in the arm GrowthBook's hash of "product:<sku>" gives it
    assert set(arms) == {product.pk for product in products}
    for product in products:
        expected = ("static", "engine")[_expected_index("ai-vs-static", product.sku)]
        assert arms[product.pk] == PricingArm("ai-vs-static", expected, expected)
    engine_share = sum(arm.rule == "engine" for arm in arms.values()) / len(products)
    assert 0.35 < engine_share < 0.65


def test_arms_are_stable_and_cost_no_query_or_write_once_the_memo_is_warm(merchant, django_assert_num_queries):
    # given
    products = _products(merchant, 50)
    _running(merchant)
    first = pricing_arms_for_products(merchant=merchant, products=products)

    # when
    with django_assert_num_queries(0):
        second = pricing_arms_for_products(merchant=merchant, products=products)

    # then
    assert second == first
    assert not Exposure.objects.for_merchant(merchant).exists()


def test_a_shop_without_a_live_pricing_experiment_has_no_arms(merchant):
    # given a running recommendations experiment and a pricing draft
    products = _products(merchant, 20)
    experiment_start(
        experiment=experiment_create(
            merchant=merchant,
            key="recs",
            name="recs",
            surface=Surface.RECOMMENDATIONS,
            variants=[VariantSpec("a", "A", 0.5, {}), VariantSpec("b", "B", 0.5, {})],
        ),
        actor=None,
    )
    experiment_create(merchant=merchant, key="draft", name="draft", variants=STATIC_VS_ENGINE, surface=Surface.PRICING)

    # when / then
    assert pricing_arms_for_products(merchant=merchant, products=products) == {}


def test_another_merchants_products_get_no_arm(merchant, other_merchant):
    # given
    _running(merchant)
    theirs = _products(other_merchant, 10)

    # when / then
    assert pricing_arms_for_products(merchant=merchant, products=theirs) == {}


def test_a_rolled_out_experiment_serves_its_winner_to_every_product(merchant):
    # given
    products = _products(merchant, 60)
    experiment = _running(merchant)
    experiment_roll_out(experiment=experiment, variant=experiment.variants.get(key="engine"), actor=None, now=AT)

    # when
    arms = pricing_arms_for_products(merchant=merchant, products=products)

    # then
    assert {arm.variant_key for arm in arms.values()} == {"engine"}
    assert len(arms) == len(products)


def test_a_running_experiment_beats_a_rolled_out_one(merchant):
    # given an old roll-out of "static" and a new price test covering every product
    products = _products(merchant, 20)
    old = _running(merchant, key="a-old")
    experiment_roll_out(experiment=old, variant=old.variants.get(key="static"), actor=None, now=AT)
    _running(
        merchant,
        key="b-new",
        variants=[
            VariantSpec("control", "Control", 0.5, {"pricing": "engine"}),
            VariantSpec("minus-5", "5% off", 0.5, {"price_multiplier": 0.95}),
        ],
    )

    # when
    arms = pricing_arms_for_products(merchant=merchant, products=products)

    # then
    assert {arm.experiment_key for arm in arms.values()} == {"b-new"}
    multiplied = [arm for arm in arms.values() if arm.rule == "multiplier"]
    assert multiplied and all(arm.multiplier == 0.95 for arm in multiplied)


def test_coverage_leaves_the_uncovered_products_out(merchant):
    # given
    products = _products(merchant)
    _running(merchant, coverage=0.5)

    # when
    arms = pricing_arms_for_products(merchant=merchant, products=products)

    # then
    covered = {p.pk for p in products if _expected_index("ai-vs-static", p.sku, coverage=0.5) >= 0}
    assert set(arms) == covered
    assert 0.3 < len(covered) / len(products) < 0.7


def test_a_layer_slice_keeps_the_other_products_out(merchant):
    # given
    products = _products(merchant)
    layer = LayerFactory(merchant=merchant, key="prices")
    _running(merchant, layer=layer, layer_start=0.0, layer_end=0.3)

    # when
    arms = pricing_arms_for_products(merchant=merchant, products=products)

    # then
    in_slice = {p.pk for p in products if in_namespace(f"product:{p.sku}", ("prices", 0.0, 0.3))}
    assert set(arms) == in_slice
    assert 0 < len(in_slice) < len(products)


def test_an_unrecognised_config_is_served_static_and_logged_once(merchant, caplog):
    # given an experiment made without the service's checks (e.g. before them)
    products = _products(merchant, 30)
    experiment_with_variants(
        merchant=merchant,
        key="made-before-the-checks",
        surface=Surface.PRICING,
        status=ExperimentStatus.RUNNING,
        configs=({}, {"n": 1}),
    )
    live_experiments(merchant_id=merchant.pk)

    # when
    with caplog.at_level(logging.WARNING, logger="pricing.selectors.experiments"):
        first = pricing_arms_for_products(merchant=merchant, products=products)
        pricing_arms_for_products(merchant=merchant, products=products)

    # then
    assert {arm.rule for arm in first.values()} == {"static"}
    assert len([r for r in caplog.records if "names no pricing rule" in r.message]) == 2  # one per variant


def test_a_contextual_bandit_never_prices(merchant):
    # given a contextual bandit on the pricing surface (it would choose per shopper)
    products = _products(merchant, 10)
    experiment_with_variants(
        merchant=merchant,
        key="ctx",
        surface=Surface.PRICING,
        kind="contextual_bandit",
        status=ExperimentStatus.RUNNING,
        configs=({"pricing": "static"}, {"pricing": "engine"}),
    )

    # when / then
    assert pricing_arms_for_products(merchant=merchant, products=products) == {}


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"pricing": "engine"}, ("engine", None)),
        ({"pricing": "static"}, ("static", None)),
        ({"price_multiplier": 0.95}, ("multiplier", 0.95)),
        ({"price_multiplier": 2}, ("multiplier", 2.0)),
        ({}, None),
        ({"strategy": "hybrid"}, None),
    ],
)
def test_pricing_config_check_reads_the_conventions(config, expected):
    # when / then
    assert pricing_config_check(config) == expected


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"pricing": "dynamic"}, "pricing"),
        ({"price_multiplier": "0.9"}, "price_multiplier"),
        ({"price_multiplier": True}, "price_multiplier"),
        ({"price_multiplier": 0.2}, "price_multiplier"),
        ({"price_multiplier": float("nan")}, "price_multiplier"),
        ({"pricing": "engine", "price_multiplier": 0.9}, "pricing"),
    ],
)
def test_pricing_config_check_refuses_a_wrong_rule(config, field):
    # when / then
    with pytest.raises(PricingConfigError) as raised:
        pricing_config_check(config)
    assert raised.value.field == field


# --- the checks experiment_create makes for the pricing surface -----------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"variants": [STATIC_VS_ENGINE[0], VariantSpec("b", "B", 0.5, {"pricing": "x"})]},
         "variants[1].config.pricing"),
        ({"kind": "bandit"}, "kind"),
        ({"kind": "contextual_bandit"}, "kind"),
        ({"targeting": {"devices": ["mobile"]}}, "targeting"),
        ({"targeting": {"visitor": "returning"}}, "targeting"),
    ],
)  # fmt: skip
def test_a_pricing_experiment_that_would_price_per_shopper_or_break_the_conventions_is_refused(
    merchant, overrides, field
):
    # given
    arguments = {"merchant": merchant, "key": "bad", "name": "bad", "surface": Surface.PRICING}
    arguments.setdefault("variants", STATIC_VS_ENGINE)
    arguments.update(overrides)

    # when / then
    with pytest.raises(ExperimentValidationError) as raised:
        experiment_create(**arguments)
    assert raised.value.field == field


def test_a_running_pricing_experiment_keeps_its_weights(merchant):
    # given
    experiment = _running(merchant)

    # when / then
    with pytest.raises(ExperimentValidationError) as raised:
        experiment_weights_update(experiment=experiment, weights={"static": 0.2, "engine": 0.8})
    assert raised.value.field == "weights"


def test_a_pricing_draft_edited_into_a_wrong_config_cannot_start(merchant):
    # given a draft whose variant config was edited after its creation (the admin edits drafts)
    experiment = experiment_create(
        merchant=merchant, key="edited", name="edited", variants=STATIC_VS_ENGINE, surface=Surface.PRICING
    )
    experiment.variants.filter(key="engine").update(config={"price_multiplier": 5})

    # when / then
    with pytest.raises(ExperimentValidationError) as raised:
        experiment_start(experiment=experiment, actor=None)
    assert raised.value.field == "variants[1].config.price_multiplier"
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.DRAFT
