"""Price proposals: for every active product the demand model knows, the price the optimizer recommends
inside the product's guardrails, stored for the merchant's decision (or approved at once inside the
merchant's auto-approve band).

A constant number of queries however many products: one read per kind of fact (products, estimates,
guardrail limits and contexts, experiment arms), one bulk insert, one update of the proposals replaced.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal

import numpy as np
from django.db import transaction
from django.utils import timezone

from catalog.models import Product
from pricing import optimizer
from pricing.guardrails import feasible_range_explained, guardrail_checks
from pricing.models import DemandModelRun, ElasticityEstimate, PriceProposal, PricingSettings, ProposalStatus
from pricing.optimizer import CurvePoint, PriceRecommendation, PricingInput
from pricing.selectors.demand import merchant_zone
from pricing.selectors.experiments import ENGINE, pricing_arms_for_products
from pricing.selectors.guardrails import (
    guardrail_contexts_for_products,
    guardrail_limits_for_products,
    pricing_settings_for,
)
from pricing.selectors.model import day_of_week_factors, demand_run_in_service, product_elasticity_from
from pricing.services.approval import price_proposal_auto_approve
from revopt.db import bulk_insert
from revopt.tenancy.models import Merchant
from revopt.tenancy.services import audit_log_write

logger = logging.getLogger(__name__)

Progress = Callable[[float], None]

CENT = Decimal("0.01")
HALF_CENT = Decimal("0.005")
# Proposals replaced in one UPDATE per this many products (keeps the statement's parameters bounded).
UPDATE_CHUNK = 2000

CURVE_FIELDS = tuple(curve_field.name for curve_field in fields(CurvePoint))

SKIP_NO_MODEL = "no demand model yet"
SKIP_NO_ESTIMATE = "no elasticity estimate"
SKIP_OUT_OF_STOCK = "out of stock"
SKIP_EXPERIMENT = "in a pricing experiment's static arm"
SKIP_NO_PRICE_ALLOWED = "no price allowed now"
SKIP_KEEP = "keep"
SKIP_BREAKS_GUARDRAIL = "breaks a guardrail"


@dataclass(frozen=True)
class ProposalBatch:
    created: int
    superseded: int
    auto_approved: int
    skipped: dict[str, int] = field(default_factory=dict)


def price_proposals_generate(
    *,
    merchant: Merchant,
    now: datetime | None = None,
    product_ids: Sequence[int] | None = None,
    seed: int | None = None,
    progress: Progress | None = None,
) -> ProposalBatch:
    """Proposes a price for every active product (or those of `product_ids`) with an estimate in service.

    `seed` makes the Thompson draws reproducible (each product's draws depend only on the seed and its id).
    """
    now = now or timezone.now()
    settings = pricing_settings_for(merchant=merchant)
    products = Product.objects.for_merchant(merchant).filter(is_active=True).order_by("pk")
    if product_ids is not None:
        products = products.filter(pk__in=list(product_ids))
    products = list(products)
    run = demand_run_in_service(merchant=merchant)
    skipped: Counter[str] = Counter()
    if run is None:
        skipped[SKIP_NO_MODEL] = len(products)
        return _finish(merchant=merchant, run=None, proposals=[], superseded=0, auto_approved=0, skipped=skipped)

    estimates = _estimates(merchant=merchant, run=run, product_ids=product_ids)
    candidates: list[Product] = []
    for product in products:
        if product.pk not in estimates:
            skipped[SKIP_NO_ESTIMATE] += 1
        elif product.inventory <= 0:
            skipped[SKIP_OUT_OF_STOCK] += 1
        else:
            candidates.append(product)
    arms = pricing_arms_for_products(merchant=merchant, products=candidates)
    in_static_arm = {product_id for product_id, arm in arms.items() if arm.rule != ENGINE}
    skipped[SKIP_EXPERIMENT] += sum(1 for product in candidates if product.pk in in_static_arm)
    candidates = [product for product in candidates if product.pk not in in_static_arm]

    limits = guardrail_limits_for_products(merchant=merchant, products=candidates)
    contexts = guardrail_contexts_for_products(merchant=merchant, products=candidates, now=now, limits=limits)
    day_of_week = day_of_week_factors(run)
    start_weekday = timezone.localtime(now, merchant_zone(merchant)).weekday()
    shared_rng = np.random.default_rng(seed)

    proposals: list[PriceProposal] = []
    for position, product in enumerate(candidates):
        if progress is not None and position % 200 == 0:
            progress(position / len(candidates))
        product_limits, context = limits[product.pk], contexts[product.pk]
        allowed = feasible_range_explained(product_limits, context)
        if allowed is None:
            skipped[SKIP_NO_PRICE_ALLOWED] += 1
            continue
        estimate = estimates[product.pk]
        item = PricingInput(
            product_id=product.pk,
            current_price=float(product.price),
            unit_cost=float(product.cost) if product.cost is not None else None,
            estimate=product_elasticity_from(estimate),
            low=float(allowed.low),
            high=float(allowed.high),
            low_reason=allowed.low_reason,
            high_reason=allowed.high_reason,
            objective=settings.objective,
            inventory=product.inventory,
            horizon_days=settings.horizon_days,
            dead_stock_cover_days=settings.dead_stock_cover_days,
            competitor_price=(
                float(context.lowest_competitor_price) if context.lowest_competitor_price is not None else None
            ),
            day_of_week=day_of_week,
            start_weekday=start_weekday,
        )
        rng = np.random.default_rng([seed, product.pk]) if seed is not None else shared_rng
        recommendation = optimizer.price_recommend(item, rng=rng, explore=settings.explore)
        proposed = Decimal(str(recommendation.proposed_price)).quantize(CENT)
        if abs(proposed - product.price) < HALF_CENT:
            skipped[SKIP_KEEP] += 1
            continue
        checks = guardrail_checks(product_limits, context, proposed)
        if not all(check.passed for check in checks):
            # The optimizer stays inside the feasible range; a price outside it is never stored as a proposal.
            logger.warning("proposal %s for product %s breaks a guardrail: not proposed", proposed, product.pk)
            skipped[SKIP_BREAKS_GUARDRAIL] += 1
            continue
        proposals.append(
            _proposal_row(
                merchant=merchant,
                run=run,
                product=product,
                estimate=estimate,
                settings=settings,
                recommendation=recommendation,
                proposed=proposed,
                checks=[check.as_dict() for check in checks],
                now=now,
            )
        )
    if progress is not None:
        progress(1.0)

    superseded = _store(merchant=merchant, proposals=proposals, now=now)
    auto_approved = _auto_approve(settings=settings, proposals=proposals, now=now)
    return _finish(
        merchant=merchant,
        run=run,
        proposals=proposals,
        superseded=superseded,
        auto_approved=auto_approved,
        skipped=skipped,
    )


def _estimates(
    *, merchant: Merchant, run: DemandModelRun, product_ids: Sequence[int] | None
) -> dict[int, ElasticityEstimate]:
    estimates = ElasticityEstimate.objects.for_merchant(merchant).filter(run=run)
    if product_ids is not None:
        estimates = estimates.filter(product_id__in=list(product_ids))
    return {estimate.product_id: estimate for estimate in estimates}


def _proposal_row(
    *,
    merchant: Merchant,
    run: DemandModelRun,
    product: Product,
    estimate: ElasticityEstimate,
    settings: PricingSettings,
    recommendation: PriceRecommendation,
    proposed: Decimal,
    checks: list[dict],
    now: datetime,
) -> PriceProposal:
    return PriceProposal(
        merchant=merchant,
        product=product,
        run=run,
        status=ProposalStatus.PENDING,
        objective=settings.objective,
        current_price=product.price,
        proposed_price=proposed,
        unit_cost=product.cost,
        elasticity=estimate.elasticity,
        elasticity_lower=estimate.lower,
        elasticity_upper=estimate.upper,
        explored=bool(recommendation.explored),
        units_change=float(recommendation.units.expected),
        units_change_lower=float(recommendation.units.lower),
        units_change_upper=float(recommendation.units.upper),
        revenue_change=float(recommendation.revenue.expected),
        revenue_change_lower=float(recommendation.revenue.lower),
        revenue_change_upper=float(recommendation.revenue.upper),
        profit_change=float(recommendation.profit.expected),
        profit_change_lower=float(recommendation.profit.lower),
        profit_change_upper=float(recommendation.profit.upper),
        confidence=float(recommendation.confidence),
        reasons=list(recommendation.reasons),
        guardrail_checks=checks,
        curve=[{name: float(getattr(point, name)) for name in CURVE_FIELDS} for point in recommendation.curve],
        created_at=now,
    )


@transaction.atomic
def _store(*, merchant: Merchant, proposals: list[PriceProposal], now: datetime) -> int:
    """Replaces each product's pending proposal by the new one; returns how many were replaced."""
    if not proposals:
        return 0
    # One generation at a time per merchant: the settings row is the merchant's pricing lock.
    PricingSettings.objects.for_merchant(merchant).select_for_update().get()
    product_ids = [proposal.product_id for proposal in proposals]
    superseded = 0
    for start in range(0, len(product_ids), UPDATE_CHUNK):
        superseded += (
            PriceProposal.objects.for_merchant(merchant)
            .filter(status=ProposalStatus.PENDING, product_id__in=product_ids[start : start + UPDATE_CHUNK])
            .update(status=ProposalStatus.SUPERSEDED, decided_at=now)
        )
    bulk_insert(proposals)  # COPY on PostgreSQL; sets the primary keys the auto-approval needs
    return superseded


def _auto_approve(*, settings: PricingSettings, proposals: list[PriceProposal], now: datetime) -> int:
    band = settings.auto_approve_max_change
    if band <= 0:
        return 0
    approved = 0
    for proposal in proposals:
        # Only proposals inside the band are handed over (the approval service checks the band and every
        # guardrail again); the rest would cost a query each to be told no.
        if abs(proposal.proposed_price - proposal.current_price) > band * proposal.current_price:
            continue
        if price_proposal_auto_approve(proposal=proposal, settings=settings, now=now) is not None:
            approved += 1
    return approved


def _finish(
    *,
    merchant: Merchant,
    run: DemandModelRun | None,
    proposals: list[PriceProposal],
    superseded: int,
    auto_approved: int,
    skipped: Counter[str],
) -> ProposalBatch:
    batch = ProposalBatch(
        created=len(proposals),
        superseded=superseded,
        auto_approved=auto_approved,
        skipped={reason: count for reason, count in sorted(skipped.items()) if count},
    )
    audit_log_write(
        merchant=merchant,
        actor=None,
        action="pricing.proposals_generate",
        target=run if run is not None else merchant,
        detail={
            "run": run.pk if run is not None else None,
            "created": batch.created,
            "superseded": batch.superseded,
            "auto_approved": batch.auto_approved,
            "skipped": batch.skipped,
        },
    )
    return batch
