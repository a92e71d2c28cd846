import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from pricing.models import GuardrailScope, ModelRunStatus, PriceChange, PriceChangeSource, ProposalStatus
from pricing.optimizer import what_if
from pricing.selectors.screens import (
    grid_prices,
    pooling_words,
    price_change_days,
    pricing_overview,
    product_pricing,
    profit_outlook,
)
from tests.factories.catalog import CategoryFactory, CompetitorPriceObservationFactory, ProductFactory
from tests.factories.pricing import (
    DemandModelRunFactory,
    ElasticityEstimateFactory,
    GuardrailFactory,
    PriceProposalFactory,
)

pytestmark = pytest.mark.django_db


def _change(product, *, from_price: str, to_price: str, at: datetime, **fields) -> PriceChange:
    fields.setdefault("source", PriceChangeSource.APPROVED)
    return PriceChange.objects.create(
        merchant=product.merchant,
        product=product,
        from_price=Decimal(from_price),
        to_price=Decimal(to_price),
        reason="test",
        created_at=at,
        **fields,
    )


def test_the_profit_outlook_sums_expectations_and_adds_interval_half_widths_in_quadrature(merchant):
    # given: two pending proposals (+9 [3, 15] and +4 [0, 12]) and one already decided
    PriceProposalFactory(merchant=merchant)
    PriceProposalFactory(merchant=merchant, profit_change=4.0, profit_change_lower=0.0, profit_change_upper=12.0)
    PriceProposalFactory(merchant=merchant, status=ProposalStatus.REJECTED, profit_change=100.0)

    # when
    outlook = profit_outlook(merchant=merchant)

    # then
    assert outlook.proposals == 2
    assert outlook.expected == pytest.approx(13.0)
    assert outlook.lower == pytest.approx(13.0 - math.hypot(6.0, 4.0))
    assert outlook.upper == pytest.approx(13.0 + math.hypot(6.0, 8.0))


def test_the_overview_counts_queues_and_charts_only_the_merchants_own_rows(merchant, other_merchant):
    # given
    now = timezone.now()
    tents = CategoryFactory(merchant=merchant, name="Tents")
    run = DemandModelRunFactory(merchant=merchant)
    for elasticity in (-1.0, -2.0, -3.0):
        ElasticityEstimateFactory(
            merchant=merchant, run=run, category=tents, elasticity=elasticity,
            product=ProductFactory(merchant=merchant, category=tents),
        )  # fmt: skip
    small = PriceProposalFactory(merchant=merchant, profit_change=2.0, profit_change_lower=1.0)
    big = PriceProposalFactory(merchant=merchant, profit_change=20.0, profit_change_upper=30.0)
    product = ProductFactory(merchant=merchant)
    _change(product, from_price="25.00", to_price="26.00", at=now - timedelta(days=2))
    _change(product, from_price="26.00", to_price="24.00", at=now - timedelta(days=40))
    PriceProposalFactory(merchant=other_merchant, profit_change=99.0)
    _change(ProductFactory(merchant=other_merchant), from_price="10.00", to_price="11.00", at=now)

    # when
    screen = pricing_overview(merchant=merchant, now=now)

    # then
    assert screen.pending == 2
    assert [proposal.pk for proposal in screen.queue] == [big.pk, small.pk]
    assert screen.live_changes == 1  # the one 40 days ago is outside the 30
    assert [row.change.product_id for row in screen.recent_changes] == [product.pk, product.pk]
    assert [row.can_roll_back for row in screen.recent_changes] == [True, False]  # only the latest
    [category] = screen.categories
    assert (category.name, category.products) == ("Tents", 3)
    assert category.mean == pytest.approx(-2.0)
    assert category.spread == pytest.approx(math.sqrt(2 / 3))
    assert screen.model.in_service == run and screen.model.running is None
    assert sum(day.up for day in screen.change_days) == 1 and sum(day.down for day in screen.change_days) == 1


def test_a_running_fit_is_shown_while_the_last_succeeded_one_stays_in_service(merchant):
    # given
    done = DemandModelRunFactory(merchant=merchant, started_at=timezone.now() - timedelta(days=1))
    running = DemandModelRunFactory(merchant=merchant, status=ModelRunStatus.RUNNING, progress=0.42, finished_at=None)

    # when
    screen = pricing_overview(merchant=merchant)

    # then
    assert screen.model.in_service == done
    assert screen.model.running == running and screen.model.latest == running
    assert screen.model.progress_percent == 42


def test_price_change_days_cover_every_day_with_rises_and_cuts_apart(merchant):
    # given: noon UTC, the merchant's time zone
    now = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
    product = ProductFactory(merchant=merchant)
    _change(product, from_price="25.00", to_price="26.00", at=now - timedelta(hours=1))
    _change(product, from_price="26.00", to_price="27.00", at=now - timedelta(minutes=30))
    _change(product, from_price="27.00", to_price="20.00", at=now - timedelta(days=10))
    _change(product, from_price="20.00", to_price="21.00", at=now - timedelta(days=100))

    # when
    days = price_change_days(merchant=merchant, now=now, days=90)

    # then
    assert len(days) == 90 and days[-1].day == date(2026, 6, 15) and days[0].day == date(2026, 3, 18)
    assert (days[-1].up, days[-1].down) == (2, 0)
    assert (days[-11].up, days[-11].down) == (0, 1)
    assert sum(day.up + day.down for day in days) == 3  # the change 100 days ago is out


def test_grid_prices_span_the_current_price_the_feasible_range_and_competitors():
    # when
    prices = grid_prices(
        current=Decimal("20.00"), feasible=(Decimal("18.00"), Decimal("30.00")), competitors=[Decimal("11.00")]
    )

    # then
    assert prices[0] == Decimal("11.00") and prices[-1] == Decimal("30.00")
    assert len(prices) == 41
    assert all(later > earlier for earlier, later in zip(prices, prices[1:], strict=False))


def test_the_product_screen_matches_the_engines_what_if_and_says_where_each_limit_comes_from(merchant):
    # given
    category = CategoryFactory(merchant=merchant, name="Tents")
    product = ProductFactory(merchant=merchant, category=category, price=Decimal("25.00"), cost=Decimal("12.00"))
    ElasticityEstimateFactory(merchant=merchant, product=product, category=category)
    GuardrailFactory(merchant=merchant, min_margin=Decimal("0.30"), max_change_per_step=Decimal("0.10"))
    GuardrailFactory(merchant=merchant, scope=GuardrailScope.CATEGORY, category=category, price_floor=Decimal("20"))
    GuardrailFactory(
        merchant=merchant, scope=GuardrailScope.PRODUCT, product=product, max_change_per_step=Decimal("0.05")
    )
    CompetitorPriceObservationFactory(merchant=merchant, product=product, competitor="Rival", price=Decimal("24.00"))
    CompetitorPriceObservationFactory(
        merchant=merchant, product=product, competitor="Rival", price=Decimal("19.00"),
        observed_at=timezone.now() - timedelta(days=3),
    )  # fmt: skip

    # when
    screen = product_pricing(merchant=merchant, product=product)

    # then: limits and their sources
    sources = {row.name: (row.value, row.source) for row in screen.limit_rows}
    assert sources == {
        "price_floor": ("20.00", "category Tents"),
        "min_margin": ("30%", "whole shop"),
        "max_change_per_step": ("5%", "this product"),
    }
    assert screen.feasible == (Decimal("23.75"), Decimal("26.25"))
    # the latest observation per competitor only
    assert [(row.competitor, row.price) for row in screen.competitors] == [("Rival", Decimal("24.00"))]
    # the grid is the engine's what-if, price by price, with the guardrails each price breaks
    expected = what_if(screen.pricing_input, screen.grid[0].price, draws=400, seed=0)
    assert screen.grid[0].profit == pytest.approx(expected.profit.expected)
    assert screen.grid[0].units_upper == pytest.approx(expected.units.upper)
    assert screen.grid[0].broken  # 30% below today breaks the step limit and the floor
    assert screen.baseline.price == 25.0 and screen.baseline.broken == ()


def test_without_an_estimate_the_screen_says_why_and_offers_no_what_if(merchant):
    # given
    product = ProductFactory(merchant=merchant)

    # when
    screen = product_pricing(merchant=merchant, product=product)

    # then
    assert screen.estimate is None and screen.grid == [] and screen.pricing_input is None
    assert "has not been fitted yet" in screen.no_estimate_reason


@pytest.mark.parametrize(
    ("weight", "own", "words"),
    [
        (0.1, -1.9, "Mostly its own sales history"),
        (0.4, -1.9, "A blend: 40% comes from its category"),
        (0.8, -1.9, "Mostly borrowed from its category (80%)"),
        (1.0, None, "Entirely borrowed from its category"),
    ],
)
def test_pooling_is_said_in_words(merchant, weight, own, words):
    # given
    estimate = ElasticityEstimateFactory(merchant=merchant, pooling_weight=weight, own_elasticity=own)

    # when
    text = pooling_words(estimate)

    # then
    assert text.startswith(words)


def test_the_overview_costs_the_same_queries_for_a_few_rows_or_many(merchant):
    # given
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def seed(count: int) -> None:
        run = DemandModelRunFactory(merchant=merchant)
        for _ in range(count):
            product = ProductFactory(merchant=merchant)
            ElasticityEstimateFactory(merchant=merchant, run=run, product=product, category=product.category)
            PriceProposalFactory(merchant=merchant, product=product)
            _change(product, from_price="25.00", to_price="26.00", at=timezone.now() - timedelta(days=1))

    seed(2)
    pricing_overview(merchant=merchant)  # settings are created on first use
    with CaptureQueriesContext(connection) as few:
        pricing_overview(merchant=merchant)
    seed(25)

    # when
    with CaptureQueriesContext(connection) as many:
        screen = pricing_overview(merchant=merchant)

    # then
    assert len(screen.queue) == 20 and len(screen.recent_changes) == 20
    assert len(many) == len(few) <= 12
