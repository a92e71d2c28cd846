"""Metric sums on a tiny shop where every unit's value is worked out by hand (see `tiny_shop`)."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest

from events.models import Order, OrderStatus
from experiments.metrics import METRICS
from experiments.models import AllocationChange, AllocationSource, Experiment, ExperimentStatus
from experiments.selectors.metrics import (
    exposure_counts_by_period,
    metric_sums_by_variant,
    metrics_sums_by_variant,
)
from experiments.stats.summaries import RatioSums, SampleSums
from loyalty.models import IncentiveKind
from loyalty.services.offers import offer_code_redeem
from tests.factories.events import CustomerFactory, EventFactory, OrderFactory, OrderLineFactory
from tests.factories.experiments import ExposureFactory, experiment_with_variants
from tests.factories.funnel import OfferDecisionFactory

pytestmark = pytest.mark.django_db

START = datetime(2025, 3, 1, tzinfo=UTC)
AS_OF = START + timedelta(days=10)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass
class TinyShop:
    experiment: Experiment
    units: dict  # name -> Customer


def _order(merchant, customer, at, total, status=OrderStatus.COMPLETED, lines=()):
    order = OrderFactory(
        merchant=merchant, customer=customer, placed_at=at, total=Decimal(total), subtotal=Decimal(total), status=status
    )
    for quantity, unit_cost in lines:
        OrderLineFactory(order=order, quantity=quantity, unit_cost=None if unit_cost is None else Decimal(unit_cost))
    return order


@pytest.fixture
def tiny_shop(merchant) -> TinyShop:
    """Four control units and three treatment units, plus rows that must not count.

    Per unit, in the window [exposed_at, AS_OF) and the pre-period [START − 14 d, START):

        unit  revenue  orders items cost  refunded  carted abandoned unsub | pre revenue  pre unsub
        c1      100       2     3    45      0        1       0       0   |     50           0
        c2        0       0     0     0      0        1       1       1   |      0           0
        c3       20       1     1     0      1        0       0       0   |     30           0
        c4        0       0     0     0      0        0       0       0   |      0           0
        t1     1000       1     5   500      0        0       0       0   |    200           0
        t2       70       1     0     0      0        0       0       0   |      0           1
        t3       25       1     0     0      0        1       0       0   |      0           0
    """
    experiment = experiment_with_variants(
        merchant=merchant,
        status=ExperimentStatus.RUNNING,
        started_at=START,
        pre_period_days=14,
        winsorize_percentile=0.75,
    )
    control, treatment = experiment.variants.order_by("index")
    units = {}

    def expose(name, variant, at):
        customer = CustomerFactory(merchant=merchant, external_id=name)
        ExposureFactory(variant=variant, customer=customer, exposed_at=at)
        units[name] = customer
        return customer

    c1 = expose("c1", control, START + HOUR)
    _order(merchant, c1, START - 3 * DAY, "50.00")  # pre-period
    _order(merchant, c1, START + 0.5 * HOUR, "30.00")  # after the start, before the exposure: nowhere
    _order(merchant, c1, START + 2 * DAY, "40.00", lines=[(2, "10.00")])
    _order(merchant, c1, START + 3 * DAY, "60.00", lines=[(1, "25.00")])
    EventFactory(merchant=merchant, customer=c1, name="Product Added", timestamp=START + 2 * DAY)

    c2 = expose("c2", control, START + 2 * HOUR)
    EventFactory(merchant=merchant, customer=c2, name="Product Added", timestamp=START + DAY)
    EventFactory(merchant=merchant, customer=c2, name="Product Added", timestamp=START + 2 * DAY)
    EventFactory(merchant=merchant, customer=c2, name="Unsubscribed", timestamp=START + 5 * DAY)
    EventFactory(merchant=merchant, customer=c2, name="Product Viewed", timestamp=START + DAY)

    c3 = expose("c3", control, START + 3 * HOUR)
    _order(merchant, c3, START - 20 * DAY, "10.00")  # before the pre-period
    _order(merchant, c3, START - DAY, "30.00")
    _order(merchant, c3, START + 4 * DAY, "80.00", status=OrderStatus.REFUNDED, lines=[(3, "5.00")])
    _order(merchant, c3, START + 6 * DAY, "20.00", lines=[(1, None)])

    c4 = expose("c4", control, START + 4 * HOUR)
    _order(merchant, c4, START + 2 * DAY, "55.00", status=OrderStatus.CANCELLED)
    _order(merchant, c4, AS_OF + HOUR, "99.00")  # after the analysis

    t1 = expose("t1", treatment, START + HOUR)
    _order(merchant, t1, START - 2 * DAY, "200.00")
    _order(merchant, t1, START + DAY, "1000.00", lines=[(5, "100.00")])  # the outlier

    t2 = expose("t2", treatment, START + 5 * HOUR)
    _order(merchant, t2, START + DAY, "70.00")
    EventFactory(merchant=merchant, customer=t2, name="Product Added", timestamp=START + HOUR)  # before exposure
    EventFactory(merchant=merchant, customer=t2, name="Unsubscribed", timestamp=START - DAY)

    t3 = expose("t3", treatment, START + 9 * DAY)
    _order(merchant, t3, START + 8 * DAY, "90.00")  # before its exposure
    _order(merchant, t3, START + 9 * DAY + HOUR, "25.00")
    EventFactory(merchant=merchant, customer=t3, name="Product Added", timestamp=START + 9 * DAY + 0.5 * HOUR)

    late = expose("late", treatment, AS_OF + HOUR)  # exposed after the analysis
    _order(merchant, late, AS_OF + 2 * HOUR, "500.00")
    return TinyShop(experiment=experiment, units=units)


def test_revenue_per_user_is_winsorized_at_the_percentile_of_positive_values_with_a_capped_pre_period(tiny_shop):
    # given: positive revenues 20, 25, 70, 100, 1000: the 0.75 percentile (rank 0.75 × 4 = 3) is 100;
    # positive pre-period revenues 30, 50, 200: rank 1.5, halfway between 50 and 200 = 125 (numpy's quantile)

    # when
    sums = metric_sums_by_variant(experiment=tiny_shop.experiment, metric="revenue_per_user", as_of=AS_OF)

    # then
    assert sums["control"] == SampleSums(
        n=4, y_sum=120, y_sum_squares=100**2 + 20**2, x_sum=80, x_sum_squares=50**2 + 30**2, xy_sum=50 * 100 + 30 * 20
    )
    assert sums["variant-1"] == SampleSums(
        n=3,
        y_sum=100 + 70 + 25,
        y_sum_squares=100**2 + 70**2 + 25**2,
        x_sum=125,
        x_sum_squares=125**2,
        xy_sum=125 * 100,
    )
    assert np.quantile([30, 50, 200], 0.75) == 125  # the same definition as the statistics engine's


def test_without_winsorizing_or_pre_period_the_raw_values_are_summed(tiny_shop):
    # when
    sums = metric_sums_by_variant(
        experiment=tiny_shop.experiment,
        metric="revenue_per_user",
        as_of=AS_OF,
        winsorize=False,
        with_pre_period=False,
    )

    # then
    assert sums["variant-1"] == SampleSums(n=3, y_sum=1095, y_sum_squares=1000**2 + 70**2 + 25**2)
    assert sums["control"] == SampleSums(n=4, y_sum=120, y_sum_squares=100**2 + 20**2)


def test_a_percentile_of_one_caps_nothing(tiny_shop):
    # given
    Experiment.objects.filter(pk=tiny_shop.experiment.pk).update(winsorize_percentile=1.0)
    tiny_shop.experiment.refresh_from_db()

    # when
    sums = metric_sums_by_variant(experiment=tiny_shop.experiment, metric="revenue_per_user", as_of=AS_OF)

    # then
    assert sums["variant-1"].y_sum == 1095 and sums["variant-1"].x_sum == 200


def test_margin_subtracts_the_cost_of_goods_and_is_capped_on_its_own_values(tiny_shop):
    # given: margins 55, 0, 20, 0 | 500, 70, 25 -> positive 20, 25, 55, 70, 500 -> cap 70

    # when
    sums = metric_sums_by_variant(
        experiment=tiny_shop.experiment, metric="margin_per_user", as_of=AS_OF, with_pre_period=False
    )

    # then
    assert sums["control"] == SampleSums(n=4, y_sum=75, y_sum_squares=55**2 + 20**2)
    assert sums["variant-1"] == SampleSums(n=3, y_sum=165, y_sum_squares=70**2 + 70**2 + 25**2)


def test_margin_counts_merchandise_after_discount_not_tax_or_shipping(merchant):
    # given one exposed unit whose order is 100 of goods, 10 off, 6.95 shipping and 6.30 tax, goods costing 40
    experiment = experiment_with_variants(merchant=merchant, status=ExperimentStatus.RUNNING, started_at=START)
    control = experiment.variants.order_by("index").first()
    customer = CustomerFactory(merchant=merchant)
    ExposureFactory(variant=control, customer=customer, exposed_at=START + HOUR)
    order = OrderFactory(
        merchant=merchant,
        customer=customer,
        placed_at=START + DAY,
        subtotal=Decimal("100.00"),
        discount=Decimal("10.00"),
        shipping=Decimal("6.95"),
        tax=Decimal("6.30"),
        total=Decimal("103.25"),
    )
    OrderLineFactory(order=order, quantity=2, unit_cost=Decimal("20.00"))

    # when
    margin = metric_sums_by_variant(experiment=experiment, metric="margin_per_user", as_of=AS_OF, with_pre_period=False)
    revenue = metric_sums_by_variant(experiment=experiment, metric="revenue_per_user", as_of=AS_OF)

    # then: margin 100 − 10 − 40; revenue is what the shopper paid
    assert margin["control"].y_sum == pytest.approx(50.0)
    assert revenue["control"].y_sum == pytest.approx(103.25)


def test_a_redeemed_free_shipping_offer_lowers_the_units_margin_by_exactly_the_shipping_cost(merchant):
    # given two units with the same order, 3 lines (100 of goods costing 40), shipped free; only the treated
    # unit's order used a free-shipping code (the carrier's 6.95 is the merchant's)
    experiment = experiment_with_variants(merchant=merchant, status=ExperimentStatus.RUNNING, started_at=START)
    control, treatment = experiment.variants.order_by("index")
    offer = OfferDecisionFactory(
        merchant=merchant, decided_at=START + DAY, kind=IncentiveKind.FREE_SHIPPING, value=0.0, cost=Decimal("6.95")
    )
    orders = {}
    for variant in (control, treatment):
        customer = CustomerFactory(merchant=merchant)
        ExposureFactory(variant=variant, customer=customer, exposed_at=START + HOUR)
        orders[variant.key] = _order(
            merchant, customer, START + DAY + HOUR, "100.00", lines=[(1, "10.00"), (2, "10.00"), (1, "10.00")]
        )
    offer_code_redeem(merchant=merchant, code=offer.code, order_id=orders["variant-1"].pk, at=START + DAY + HOUR)

    # when
    margin = metric_sums_by_variant(
        experiment=experiment, metric="margin_per_user", as_of=AS_OF, winsorize=False, with_pre_period=False
    )
    revenue = metric_sums_by_variant(experiment=experiment, metric="revenue_per_user", as_of=AS_OF, winsorize=False)

    # then: 100 − 40 against 100 − 40 − 6.95 (taken once, not once per line); revenue does not move
    assert margin["control"].y_sum == pytest.approx(60.0)
    assert margin["variant-1"].y_sum == pytest.approx(53.05)
    assert revenue["control"].y_sum == revenue["variant-1"].y_sum == pytest.approx(100.0)


def test_incentive_costs_count_only_on_completed_orders_in_the_window(merchant):
    # given a unit with a completed order carrying 2.00 of bonus points, and a refunded one carrying 6.95
    experiment = experiment_with_variants(merchant=merchant, status=ExperimentStatus.RUNNING, started_at=START)
    control = experiment.variants.order_by("index").first()
    customer = CustomerFactory(merchant=merchant)
    ExposureFactory(variant=control, customer=customer, exposed_at=START + HOUR)
    kept = _order(merchant, customer, START + DAY, "50.00", lines=[(1, "20.00")])
    refunded = _order(merchant, customer, START + 2 * DAY, "70.00", status=OrderStatus.REFUNDED, lines=[(1, "30.00")])
    Order.objects.filter(pk=kept.pk).update(incentive_cost=Decimal("2.00"))
    Order.objects.filter(pk=refunded.pk).update(incentive_cost=Decimal("6.95"))

    # when
    margin = metric_sums_by_variant(experiment=experiment, metric="margin_per_user", as_of=AS_OF, with_pre_period=False)

    # then: 50 − 20 − 2
    assert margin["control"].y_sum == pytest.approx(28.0)


@pytest.mark.parametrize(
    ("metric", "control", "treatment"),
    [
        # numerator sum, sum of squares, denominator sum, sum of squares, cross sum
        ("aov", (120, 100**2 + 20**2, 3, 2**2 + 1, 100 * 2 + 20 * 1), (1095, 1000**2 + 70**2 + 25**2, 3, 3, 1095)),
        ("items_per_order", (4, 3**2 + 1, 3, 2**2 + 1, 3 * 2 + 1 * 1), (5, 25, 3, 3, 5)),
        ("cart_abandonment", (1, 1, 2, 2, 1), (0, 0, 1, 1, 0)),
        ("repeat_purchase", (1, 1, 2, 2, 1), (0, 0, 3, 3, 0)),
        ("refund_rate", (1, 1, 4, 2**2 + 2**2, 2), (0, 0, 3, 3, 0)),
    ],
)
def test_ratio_metrics_sum_numerator_and_denominator_per_unit(tiny_shop, metric, control, treatment):
    # when
    sums = metric_sums_by_variant(experiment=tiny_shop.experiment, metric=metric, as_of=AS_OF)

    # then
    assert sums["control"] == RatioSums(4, *control)
    assert sums["variant-1"] == RatioSums(3, *treatment)


def test_proportions_count_units_with_their_pre_period_flag(tiny_shop):
    # when
    sums = metrics_sums_by_variant(
        experiment=tiny_shop.experiment, metrics=["conversion", "unsubscribe_rate"], as_of=AS_OF
    )

    # then: buyers c1 and c3 (by its completed order, not the refunded one), both buyers before the start too
    assert sums["conversion"]["control"] == SampleSums(
        n=4, y_sum=2, y_sum_squares=2, x_sum=2, x_sum_squares=2, xy_sum=2
    )
    assert sums["conversion"]["variant-1"] == SampleSums(
        n=3, y_sum=3, y_sum_squares=3, x_sum=1, x_sum_squares=1, xy_sum=1
    )
    assert sums["unsubscribe_rate"]["control"] == SampleSums(n=4, y_sum=1, y_sum_squares=1)
    assert sums["unsubscribe_rate"]["variant-1"] == SampleSums(n=3, y_sum=0, y_sum_squares=0, x_sum=1, x_sum_squares=1)


def test_every_metric_comes_from_a_single_statement(tiny_shop, django_assert_max_num_queries):
    # given
    separately = {
        metric: metric_sums_by_variant(experiment=tiny_shop.experiment, metric=metric, as_of=AS_OF)
        for metric in METRICS
    }

    # when
    with django_assert_max_num_queries(6) as captured:
        together = metrics_sums_by_variant(experiment=tiny_shop.experiment, metrics=list(METRICS), as_of=AS_OF)

    # then: one statement (on PostgreSQL, also its settings, in a savepoint rolled back afterwards)
    assert together == separately
    statements = [
        query["sql"]
        for query in captured.captured_queries
        if not query["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT"))
    ]
    assert len(statements) <= 2
    assert len([sql for sql in statements if "experiments_exposure" in sql]) == 1


def test_the_window_ends_when_the_experiment_stopped(tiny_shop):
    # given: stopped on day 5: t3 is not exposed yet, c1's and t1's, t2's orders count, c3's refund and order not
    Experiment.objects.filter(pk=tiny_shop.experiment.pk).update(stopped_at=START + 5 * DAY)
    tiny_shop.experiment.refresh_from_db()

    # when
    sums = metrics_sums_by_variant(
        experiment=tiny_shop.experiment, metrics=["refund_rate", "revenue_per_user"], as_of=AS_OF, winsorize=False
    )

    # then
    assert sums["refund_rate"]["control"].numerator_sum == 1  # c3's refunded order was placed on day 4
    assert sums["revenue_per_user"]["control"].y_sum == 100
    assert sums["revenue_per_user"]["variant-1"] == SampleSums(
        n=2, y_sum=1070, y_sum_squares=1000**2 + 70**2, x_sum=200, x_sum_squares=200**2, xy_sum=200 * 1000
    )


def test_another_merchants_rows_never_count(tiny_shop, other_merchant):
    # given: rows of another merchant pointing at this merchant's customer (never valid, but a query
    # without the merchant filter would count them), and the other merchant's own experiment
    c4 = tiny_shop.units["c4"]
    OrderFactory(merchant=other_merchant, customer=c4, placed_at=START + DAY, total=Decimal("500.00"))
    EventFactory(merchant=other_merchant, customer=c4, name="Unsubscribed", timestamp=START + DAY)
    other = experiment_with_variants(merchant=other_merchant, status=ExperimentStatus.RUNNING, started_at=START)
    ExposureFactory(variant=other.variants.get(index=0), exposed_at=START + HOUR)

    # when
    sums = metrics_sums_by_variant(
        experiment=tiny_shop.experiment, metrics=["revenue_per_user", "unsubscribe_rate"], as_of=AS_OF
    )

    # then
    assert sums["revenue_per_user"]["control"].y_sum == 120
    assert sums["unsubscribe_rate"]["control"].y_sum == 1


def test_variants_without_units_are_listed_with_zeros(merchant):
    # given
    experiment = experiment_with_variants(
        merchant=merchant, weights=(0.4, 0.3, 0.3), status=ExperimentStatus.RUNNING, started_at=START
    )
    ExposureFactory(variant=experiment.variants.get(index=0), exposed_at=START + HOUR)

    # when
    sums = metrics_sums_by_variant(experiment=experiment, metrics=["revenue_per_user", "aov"], as_of=AS_OF)

    # then
    assert list(sums["aov"]) == ["control", "variant-1", "variant-2"]
    assert sums["revenue_per_user"]["control"] == SampleSums(n=1, y_sum=0, y_sum_squares=0)
    assert sums["aov"]["variant-2"] == RatioSums(0, 0, 0, 0, 0, 0)


def test_a_draft_experiment_has_no_pre_period(merchant):
    # given
    experiment = experiment_with_variants(merchant=merchant)
    customer = CustomerFactory(merchant=merchant)
    ExposureFactory(variant=experiment.variants.get(index=1), customer=customer, exposed_at=START)
    _order(merchant, customer, START + HOUR, "12.50")

    # when
    sums = metric_sums_by_variant(experiment=experiment, metric="revenue_per_user", as_of=AS_OF)

    # then
    assert sums["variant-1"] == SampleSums(n=1, y_sum=12.5, y_sum_squares=12.5**2)


def test_units_per_period_carry_the_weights_in_force_when_they_arrived(tiny_shop):
    # given: the split moved from 50/50 to 20/80 six hours in; one more unit arrives exactly at the change
    experiment = tiny_shop.experiment
    for at, weights in (
        (START, {"control": 0.5, "variant-1": 0.5}),
        (START + 6 * HOUR, {"control": 0.2, "variant-1": 0.8}),
    ):
        AllocationChange.objects.create(
            merchant=experiment.merchant,
            experiment=experiment,
            effective_at=at,
            source=AllocationSource.MANUAL,
            weights=weights,
        )
    ExposureFactory(variant=experiment.variants.get(index=0), exposed_at=START + 6 * HOUR)

    # when
    periods = exposure_counts_by_period(experiment=experiment, as_of=AS_OF)

    # then
    assert periods == [
        (6, {"control": 4, "variant-1": 2}, {"control": 0.5, "variant-1": 0.5}),
        (2, {"control": 1, "variant-1": 1}, {"control": 0.2, "variant-1": 0.8}),
    ]


def test_units_before_the_first_change_count_in_the_first_period_and_later_changes_are_ignored(tiny_shop):
    # given
    experiment = tiny_shop.experiment
    AllocationChange.objects.create(
        merchant=experiment.merchant,
        experiment=experiment,
        effective_at=START + 2 * HOUR,
        source=AllocationSource.START,
        weights={"control": 0.6, "variant-1": 0.4},
    )
    AllocationChange.objects.create(
        merchant=experiment.merchant,
        experiment=experiment,
        effective_at=AS_OF + DAY,
        source=AllocationSource.MANUAL,
        weights={"control": 0.1, "variant-1": 0.9},
    )

    # when
    periods = exposure_counts_by_period(experiment=experiment, as_of=AS_OF)

    # then
    assert periods == [(7, {"control": 4, "variant-1": 3}, {"control": 0.6, "variant-1": 0.4})]


def test_without_allocation_history_the_current_weights_are_the_one_period(tiny_shop, django_assert_max_num_queries):
    # when
    with django_assert_max_num_queries(3):
        periods = exposure_counts_by_period(experiment=tiny_shop.experiment, as_of=AS_OF)

    # then
    assert periods == [(7, {"control": 4, "variant-1": 3}, {"control": 0.5, "variant-1": 0.5})]


def test_many_reallocations_put_every_unit_in_the_period_it_arrived_in(merchant, django_assert_max_num_queries):
    # given: a bandit's hourly reallocations (two at once at hour 10) and units arriving around them
    experiment = experiment_with_variants(merchant=merchant, status=ExperimentStatus.RUNNING, started_at=START)
    control, treatment = experiment.variants.order_by("index")
    starts = [START + index * HOUR for index in range(37)] + [START + 10 * HOUR]
    for index, at in enumerate(starts):
        share = round(0.1 + 0.02 * index, 2)
        AllocationChange.objects.create(
            merchant=merchant,
            experiment=experiment,
            effective_at=at,
            source=AllocationSource.BANDIT,
            weights={"control": round(1 - share, 2), "variant-1": share},
        )
    arrivals = [START + minutes * timedelta(minutes=1) for minutes in range(0, 40 * 60, 37)] + [START + 10 * HOUR]
    for number, at in enumerate(arrivals):
        ExposureFactory(variant=treatment if number % 3 else control, exposed_at=at)

    # when
    with django_assert_max_num_queries(3):
        periods = exposure_counts_by_period(experiment=experiment, as_of=AS_OF)

    # then: a unit belongs to the last change at or before its arrival (the second change at hour 10)
    changes = sorted(
        AllocationChange.objects.filter(experiment=experiment).values_list("effective_at", "pk", "weights")
    )
    expected = [[0, 0] for _ in changes]
    for number, at in enumerate(arrivals):
        period = max(index for index, (effective_at, _, _) in enumerate(changes) if effective_at <= at)
        expected[period][1 if number % 3 else 0] += 1
    assert [(total, [by["control"], by["variant-1"]]) for total, by, _ in periods] == [
        (sum(pair), pair) for pair in expected
    ]
    assert [weights for _, _, weights in periods] == [weights for _, _, weights in changes]
    assert periods[10][0] == 0 < periods[11][0]  # the first of the two changes at hour 10 never held a unit
