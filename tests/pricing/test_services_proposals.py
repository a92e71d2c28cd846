from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from experiments.models import Surface
from experiments.services.lifecycle import VariantSpec, experiment_create, experiment_start
from pricing.models import GuardrailScope, PriceChange, PriceChangeSource, PriceProposal, ProposalStatus
from pricing.selectors.experiments import pricing_arms_for_products
from pricing.services.proposals import (
    SKIP_EXPERIMENT,
    SKIP_KEEP,
    SKIP_NO_ESTIMATE,
    SKIP_NO_MODEL,
    SKIP_NO_PRICE_ALLOWED,
    SKIP_OUT_OF_STOCK,
    price_proposals_generate,
)
from revopt.tenancy.models import AuditLogEntry
from tests.factories.catalog import ProductFactory
from tests.factories.pricing import (
    DemandModelRunFactory,
    ElasticityEstimateFactory,
    GuardrailFactory,
    PriceProposalFactory,
    PricingSettingsFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(merchant):
    return DemandModelRunFactory(merchant=merchant, started_at=timezone.now() - timedelta(hours=1))


def estimated_products(merchant, run, count: int, **product_fields) -> list:
    """Products (25.00, cost 12.00) with an estimate in service: elasticity -1.8 ± 0.2, so the profit-best
    price is 27.00 without limits."""
    products = ProductFactory.create_batch(count, merchant=merchant, **product_fields)
    for product in products:
        ElasticityEstimateFactory(merchant=merchant, run=run, product=product)
    return products


def test_proposals_stay_inside_the_guardrails_and_record_passing_checks(merchant, run):
    # given a shop-wide limit of ±5% per step
    PricingSettingsFactory(merchant=merchant, explore=False)
    GuardrailFactory(merchant=merchant, max_change_per_step=Decimal("0.05"), min_margin=Decimal("0.30"))
    products = estimated_products(merchant, run, 3)

    # when
    batch = price_proposals_generate(merchant=merchant, seed=1)

    # then every product gets a higher price, at most 5% up, with passing checks and a curve
    assert (batch.created, batch.superseded, batch.auto_approved, batch.skipped) == (3, 0, 0, {})
    proposals = PriceProposal.objects.for_merchant(merchant).filter(product__in=products)
    assert proposals.count() == 3
    for proposal in proposals:
        assert proposal.status == ProposalStatus.PENDING
        assert proposal.run == run
        assert proposal.current_price == Decimal("25.00")
        assert Decimal("25.00") < proposal.proposed_price <= Decimal("26.25")
        assert proposal.profit_change > 0
        assert proposal.profit_change_lower <= proposal.profit_change <= proposal.profit_change_upper
        assert proposal.reasons
        assert len(proposal.curve) >= 10
        assert {check["name"] for check in proposal.guardrail_checks} >= {"max_change_per_step", "min_margin"}
        assert all(check["passed"] for check in proposal.guardrail_checks)
        # the profit-best 27.00 lies beyond the step limit, and the reasons name it
        assert proposal.proposed_price == Decimal("26.25")
        assert "Held at the 5% step limit (26.25)." in proposal.reasons
    entry = AuditLogEntry.objects.get(action="pricing.proposals_generate")
    assert entry.detail["created"] == 3


def test_new_proposal_supersedes_the_pending_one(merchant, run):
    # given a pending proposal from an earlier generation and a decided one
    (product,) = estimated_products(merchant, run, 1)
    older = PriceProposalFactory(merchant=merchant, product=product, created_at=timezone.now() - timedelta(days=1))
    decided = PriceProposalFactory(merchant=merchant, product=product, status=ProposalStatus.REJECTED)

    # when
    batch = price_proposals_generate(merchant=merchant, seed=1)

    # then
    assert (batch.created, batch.superseded) == (1, 1)
    older.refresh_from_db()
    decided.refresh_from_db()
    assert older.status == ProposalStatus.SUPERSEDED
    assert decided.status == ProposalStatus.REJECTED
    assert PriceProposal.objects.for_merchant(merchant).filter(status=ProposalStatus.PENDING).count() == 1


def test_products_in_a_static_arm_of_a_running_pricing_experiment_are_not_proposed(merchant, run):
    # given 20 products in an "AI vs static" pricing experiment
    products = estimated_products(merchant, run, 20)
    variants = (
        VariantSpec(key="static", name="Static", weight=0.5, config={"pricing": "static"}),
        VariantSpec(key="engine", name="Engine", weight=0.5, config={"pricing": "engine"}),
    )
    experiment = experiment_create(
        merchant=merchant, key="ai-vs-static", name="AI vs static", variants=variants, surface=Surface.PRICING
    )
    experiment_start(experiment=experiment, actor=None, now=timezone.now() - timedelta(days=1))
    arms = pricing_arms_for_products(merchant=merchant, products=products)
    static = {pk for pk, arm in arms.items() if arm.rule == "static"}
    assert 0 < len(static) < 20

    # when
    batch = price_proposals_generate(merchant=merchant, seed=1)

    # then only the engine arm's products get proposals
    proposed = set(PriceProposal.objects.for_merchant(merchant).values_list("product_id", flat=True))
    assert proposed == {product.pk for product in products} - static
    assert batch.skipped == {SKIP_EXPERIMENT: len(static)}


def test_auto_approval_applies_only_within_the_band(merchant, run):
    # given a 5% auto-approve band; one product limited to +4% per step, one allowed +20%
    PricingSettingsFactory(merchant=merchant, explore=False, auto_approve_max_change=Decimal("0.05"))
    small, large = estimated_products(merchant, run, 2)
    GuardrailFactory(
        merchant=merchant, scope=GuardrailScope.PRODUCT, product=small, max_change_per_step=Decimal("0.04")
    )
    GuardrailFactory(
        merchant=merchant, scope=GuardrailScope.PRODUCT, product=large, max_change_per_step=Decimal("0.20")
    )

    # when
    batch = price_proposals_generate(merchant=merchant, seed=1)

    # then the small change is live, the large one waits for the merchant
    assert (batch.created, batch.auto_approved) == (2, 1)
    small_proposal = PriceProposal.objects.get(product=small)
    large_proposal = PriceProposal.objects.get(product=large)
    assert small_proposal.status == ProposalStatus.AUTO_APPROVED
    assert large_proposal.status == ProposalStatus.PENDING
    assert large_proposal.proposed_price > Decimal("26.25")  # beyond the band
    small.refresh_from_db()
    large.refresh_from_db()
    assert small.price == small_proposal.proposed_price
    assert large.price == Decimal("25.00")
    change = PriceChange.objects.get(product=small)
    assert change.source == PriceChangeSource.AUTO_APPROVED
    assert (change.from_price, change.to_price) == (Decimal("25.00"), small_proposal.proposed_price)


def test_skipped_products_are_counted_by_reason(merchant, run):
    # given a product kept by its limits, one boxed in by contradicting limits, one out of stock, one without
    # an estimate, one inactive, and one of another merchant
    keep, boxed_in = estimated_products(merchant, run, 2)
    estimated_products(merchant, run, 1, inventory=0)
    ProductFactory(merchant=merchant)
    estimated_products(merchant, run, 1, is_active=False)
    GuardrailFactory(
        merchant=merchant,
        scope=GuardrailScope.PRODUCT,
        product=keep,
        price_floor=Decimal("25.00"),
        price_ceiling=Decimal("25.00"),
    )
    GuardrailFactory(
        merchant=merchant,
        scope=GuardrailScope.PRODUCT,
        product=boxed_in,
        price_floor=Decimal("30.00"),
        price_ceiling=Decimal("20.00"),
    )

    # when
    batch = price_proposals_generate(merchant=merchant, seed=1)

    # then
    assert batch.created == 0
    assert batch.skipped == {
        SKIP_KEEP: 1,
        SKIP_NO_PRICE_ALLOWED: 1,
        SKIP_OUT_OF_STOCK: 1,
        SKIP_NO_ESTIMATE: 1,
    }
    assert not PriceProposal.objects.exists()


def test_without_a_demand_model_nothing_is_proposed(merchant, other_merchant):
    # given products but no succeeded fit (the other merchant's fit does not count)
    ProductFactory.create_batch(2, merchant=merchant)
    other_run = DemandModelRunFactory(merchant=other_merchant)
    estimated_products(other_merchant, other_run, 1)

    # when
    batch = price_proposals_generate(merchant=merchant)

    # then
    assert batch.created == 0
    assert batch.skipped == {SKIP_NO_MODEL: 2}


def test_product_ids_limit_the_generation_to_the_merchants_products(merchant, other_merchant, run):
    # given
    mine, also_mine = estimated_products(merchant, run, 2)
    other_run = DemandModelRunFactory(merchant=other_merchant)
    (theirs,) = estimated_products(other_merchant, other_run, 1)

    # when
    batch = price_proposals_generate(merchant=merchant, product_ids=[mine.pk, theirs.pk], seed=1)

    # then
    assert batch.created == 1
    assert list(PriceProposal.objects.values_list("product_id", flat=True)) == [mine.pk]


def test_seeded_generation_is_reproducible(merchant, run):
    # given wide posteriors, so that the optimizer explores with Thompson draws
    products = estimated_products(merchant, run, 4)
    run.estimates.update(elasticity_sd=0.8, lower=-3.4, upper=-0.2)

    # when
    price_proposals_generate(merchant=merchant, seed=42)
    first = dict(PriceProposal.objects.values_list("product_id", "proposed_price"))
    price_proposals_generate(merchant=merchant, seed=42)
    second = dict(
        PriceProposal.objects.filter(status=ProposalStatus.PENDING).values_list("product_id", "proposed_price")
    )

    # then
    assert set(first) == {product.pk for product in products}
    assert first == second
    assert PriceProposal.objects.filter(explored=True).exists()


def test_query_count_does_not_grow_with_the_number_of_products(merchant, run):
    # given a first generation over 3 products, with shop-wide and category limits and a pending proposal each
    GuardrailFactory(merchant=merchant, max_change_per_step=Decimal("0.10"))
    few = estimated_products(merchant, run, 3)
    for product in few:
        PriceProposalFactory(merchant=merchant, product=product)
    with CaptureQueriesContext(connection) as few_queries:
        price_proposals_generate(merchant=merchant, product_ids=[product.pk for product in few], seed=1)

    # when generating for 12 more
    many = estimated_products(merchant, run, 12)
    for product in many:
        PriceProposalFactory(merchant=merchant, product=product)
    with CaptureQueriesContext(connection) as many_queries:
        batch = price_proposals_generate(merchant=merchant, product_ids=[product.pk for product in many], seed=1)

    # then
    assert batch.created == 12
    assert batch.superseded == 12
    assert len(many_queries) <= len(few_queries)
