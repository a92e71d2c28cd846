"""The weekly churn refresh: train on a temporal split, score every customer, build the retention list.

`churn_refresh` is not one transaction: the RUNNING run row is committed first and its progress written as
it goes. The scores, the retention list and the flip to SUCCEEDED are written in one transaction, so a
half-written run is never in service. Too little data ends the run FAILED and raises `InsufficientHistory`
(as the other insight runs do), an unexpected error ends it FAILED and is re-raised: either way the scores
and the retention list of the previous succeeded run stay in service.

The retention list holds every customer at or above the churn threshold. Each gets the offer with the best
expected value, P(churn) × win-back rate × value at stake − cost, while the weekly budget lasts:
- the win-back rates in OFFERS are ASSUMPTIONS (typical e-mail win-back campaign results) until a
  retention experiment measures them for the shop;
- the value at stake is the customer's 12-month CLV (a margin) when the lifetime-value run has one, else
  their mean order value × the shop's gross margin (from the order lines' cost snapshots);
- an offer's cost is counted in full, as if every offer were redeemed (a cautious budget);
- customers are taken by expected value; one whose best offer no longer fits the budget gets the next
  offer that fits, if any pays off. Budget 0 means "list, but offer nothing".
Customers without marketing consent, those no offer pays off for, and those the budget does not reach are
listed with offer "none" (cost 0, expected value 0) and the reason, so the merchant still sees the risk.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import numpy as np
from django.db import transaction
from django.db.models import Count, Sum
from django.utils import timezone

from events.models import Order, OrderStatus
from loyalty import churn
from loyalty.churn import COLUMN_INDEX, FeatureTable
from loyalty.models import (
    CustomerInsight,
    InsightKind,
    InsightRun,
    LoyaltyProgram,
    RetentionCandidate,
    RetentionSettings,
    RewardKind,
    RunStatus,
)
from loyalty.selectors.churn import churn_feature_table, retention_settings_for
from loyalty.selectors.summaries import gross_margin
from loyalty.services.insights import InsufficientHistory, insight_run_failed, insight_run_start
from revopt.jsonable import jsonable
from revopt.runs import RunProgress
from revopt.tenancy.models import Merchant
from revopt.tenancy.services import audit_log_write

logger = logging.getLogger(__name__)

Progress = Callable[[float], None]

# Fewer labelled customers (or churners, or retained customers) in either table than this: no model.
MIN_LABELLED_CUSTOMERS = 200
MIN_PER_CLASS = 20
# The retention list keeps every offer and, beyond them, the riskiest customers up to this many rows.
MAX_CANDIDATES = 5_000
NO_OFFER = "none"
CENT = Decimal("0.01")
# Fallbacks when the shop's own orders cannot tell.
DEFAULT_SHIPPING_FEE = 6.95
DEFAULT_MARGIN = 0.30
DEFAULT_POINT_VALUE = 0.01  # a $5 reward for 500 points
MARGIN_BOUNDS = (0.05, 0.95)


@dataclass(frozen=True)
class Offer:
    key: str
    label: str
    # ASSUMED share of at-risk customers the offer brings back, until an experiment measures it.
    win_back_rate: float


OFFERS = (
    Offer("free_shipping", "Free shipping on the next order", 0.08),
    Offer("percent_10", "10% off the next order", 0.12),
    Offer("double_points", "Double points on the next order", 0.06),
)


@dataclass(frozen=True)
class OfferCosts:
    """What the shop pays per offer: shipping fee, margin and points measured from its own rows."""

    shipping_fee: float
    margin: float
    point_value: float
    points_per_currency_unit: float
    has_program: bool

    def cost(self, offer: Offer, *, mean_order_value: float) -> float | None:
        """The offer's cost for a customer, or None when the shop cannot make it."""
        if offer.key == "free_shipping":
            return self.shipping_fee
        if offer.key == "percent_10":
            return 0.10 * mean_order_value
        if offer.key == "double_points":
            if not self.has_program:
                return None
            return mean_order_value * self.points_per_currency_unit * self.point_value
        raise ValueError(f"unknown offer {offer.key}")


@dataclass(frozen=True)
class Flagged:
    customer_id: int
    churn_probability: float
    clv_12m: float | None
    mean_order_value: float
    marketing_consent: bool


@dataclass(frozen=True)
class Suggestion:
    customer_id: int
    churn_probability: float
    clv_12m: float | None
    offer: str
    offer_cost: float
    expected_value: float
    reason: str


def churn_refresh(*, merchant: Merchant, as_of: datetime | None = None, progress: Progress | None = None) -> InsightRun:
    """Train on the table as of as_of − 2 × horizon, evaluate on the one as of as_of − horizon (each labelled
    by the horizon that followed it), score everyone as of `as_of` and rebuild the retention list."""
    as_of = as_of or timezone.now()
    settings = retention_settings_for(merchant=merchant)
    horizon = timedelta(days=settings.churn_horizon_days)
    run = insight_run_start(merchant=merchant, kind=InsightKind.CHURN, as_of=as_of)

    report = RunProgress(run, progress)

    try:
        report(0.0)
        train = churn_feature_table(
            merchant=merchant, as_of=as_of - 2 * horizon, horizon_days=horizon.days, labelled=True
        )
        test = churn_feature_table(merchant=merchant, as_of=as_of - horizon, horizon_days=horizon.days, labelled=True)
        shortage = _shortage(train=train, test=test)
        if shortage:
            raise InsufficientHistory(shortage)
        report(0.2)
        model = churn.churn_train(train, test, seed=merchant.pk)
        report(0.7)
        current = churn_feature_table(merchant=merchant, as_of=as_of, horizon_days=horizon.days, labelled=False)
        probability = churn.churn_score(model, current)
        report(0.8)
        _store(run=run, model=model, settings=settings, current=current, probability=probability, horizon=horizon)
    except Exception as error:
        insight_run_failed(run=run, error=error)
        raise
    report(1.0)
    return run


def _shortage(*, train: FeatureTable, test: FeatureTable) -> str:
    for name, table in (("training", train), ("test", test)):
        churned = int(table.churned.sum()) if table.churned is not None else 0
        retained = len(table.customer_id) - churned
        if len(table.customer_id) < MIN_LABELLED_CUSTOMERS:
            return (
                f"too little history: the {name} table (customers with an order before {table.as_of[:10]}) has "
                f"{len(table.customer_id)} customers, at least {MIN_LABELLED_CUSTOMERS} are needed"
            )
        if min(churned, retained) < MIN_PER_CLASS:
            return (
                f"too little history: the {name} table has {churned} churned and {retained} retained customers, "
                f"at least {MIN_PER_CLASS} of each are needed"
            )
    return ""


def _store(
    *,
    run: InsightRun,
    model: churn.ChurnModel,
    settings: RetentionSettings,
    current: FeatureTable,
    probability: np.ndarray,
    horizon: timedelta,
) -> None:
    merchant = run.merchant
    threshold = settings.churn_threshold if settings.churn_threshold is not None else model.evaluation.threshold
    clv = dict(
        CustomerInsight.objects.for_merchant(merchant)
        .filter(clv_12m__isnull=False)
        .values_list("customer_id", "clv_12m")
    )
    flagged = [
        Flagged(
            customer_id=int(customer_id),
            churn_probability=float(p),
            clv_12m=clv.get(int(customer_id)),
            mean_order_value=float(values[COLUMN_INDEX["mean_order_value"]]),
            marketing_consent=bool(values[COLUMN_INDEX["marketing_consent"]]),
        )
        for customer_id, p, values in zip(current.customer_id, probability, current.values, strict=True)
        if p >= threshold
    ]
    costs = offer_costs(merchant=merchant, as_of=run.as_of)
    suggestions = retention_suggestions(flagged=flagged, costs=costs, budget=float(settings.weekly_budget))
    now = timezone.now()
    with transaction.atomic():
        _write_scores(run=run, customer_ids=current.customer_id, probability=probability)
        RetentionCandidate.objects.bulk_create(
            [
                RetentionCandidate(
                    merchant=merchant,
                    customer_id=suggestion.customer_id,
                    run=run,
                    churn_probability=suggestion.churn_probability,
                    clv_12m=suggestion.clv_12m,
                    offer=suggestion.offer,
                    offer_cost=Decimal(str(suggestion.offer_cost)).quantize(CENT),
                    expected_value=suggestion.expected_value,
                    reason=suggestion.reason[:300],
                    created_at=now,
                )
                for suggestion in suggestions
            ],
            batch_size=2000,
        )
        offered = [s for s in suggestions if s.offer != NO_OFFER]
        run.status = RunStatus.SUCCEEDED
        run.finished_at = timezone.now()
        run.customers = len(current.customer_id)
        run.progress = 1.0
        run.artifact = pickle.dumps(model)
        run.summary = jsonable(
            {
                **asdict(model.evaluation),
                "horizon_days": horizon.days,
                "train_as_of": (run.as_of - 2 * horizon).isoformat(),
                "test_as_of": (run.as_of - horizon).isoformat(),
                "threshold_used": float(threshold),
                "threshold_source": "settings" if settings.churn_threshold is not None else "model",
                "scored": len(current.customer_id),
                "flagged": len(flagged),
                "candidates": len(suggestions),
                "offers": len(offered),
                "budget": float(settings.weekly_budget),
                "budget_spent": round(sum(s.offer_cost for s in offered), 2),
                "offer_costs": asdict(costs),
                "win_back_rates_assumed": {offer.key: offer.win_back_rate for offer in OFFERS},
            }
        )
        run.save(update_fields=["status", "finished_at", "customers", "progress", "artifact", "summary"])
        audit_log_write(
            merchant=merchant,
            actor=None,
            action="loyalty.churn_refresh",
            target=run,
            detail={
                "status": run.status,
                "auc": run.summary["auc"],
                "scored": run.customers,
                "flagged": len(flagged),
                "offers": len(offered),
                "budget_spent": run.summary["budget_spent"],
            },
        )


def _write_scores(*, run: InsightRun, customer_ids: np.ndarray, probability: np.ndarray) -> None:
    """Upserts each scored customer's churn columns and clears those of customers this run did not score
    (erased, merged away), so every churn score in service comes from this run."""
    merchant = run.merchant
    rows = [
        CustomerInsight(
            merchant=merchant,
            customer_id=int(customer_id),
            as_of=run.as_of,
            churn_probability=float(p),
            churn_run=run,
        )
        for customer_id, p in zip(customer_ids, probability, strict=True)
    ]
    CustomerInsight.objects.bulk_create(
        rows,
        batch_size=2000,
        update_conflicts=True,
        unique_fields=["customer"],
        update_fields=["churn_probability", "churn_run"],
    )
    CustomerInsight.objects.for_merchant(merchant).filter(churn_probability__isnull=False).exclude(
        churn_run=run
    ).update(churn_probability=None, churn_run=None)


def offer_costs(*, merchant: Merchant, as_of: datetime) -> OfferCosts:
    """The shop's mean shipping fee charged, gross margin over the order lines with a cost, and the value of a
    point (the best amount-off reward's value per point), from the rows before `as_of`."""
    orders = Order.objects.for_merchant(merchant).exclude(status=OrderStatus.CANCELLED).filter(placed_at__lt=as_of)
    shipping = orders.filter(shipping__gt=0).aggregate(total=Sum("shipping"), count=Count("pk"))
    shipping_fee = float(shipping["total"]) / shipping["count"] if shipping["count"] else DEFAULT_SHIPPING_FEE
    known_margin = gross_margin(merchant=merchant, as_of=as_of)
    margin = DEFAULT_MARGIN if known_margin is None else min(max(known_margin, MARGIN_BOUNDS[0]), MARGIN_BOUNDS[1])
    program = LoyaltyProgram.objects.for_merchant(merchant).filter(is_active=True).first()
    point_value = DEFAULT_POINT_VALUE
    if program is not None:
        rewards = program.rewards.filter(is_active=True, kind=RewardKind.AMOUNT_OFF, value__gt=0)
        values = [float(reward.value) / reward.points_cost for reward in rewards]
        point_value = max(values) if values else DEFAULT_POINT_VALUE
    return OfferCosts(
        shipping_fee=round(shipping_fee, 2),
        margin=round(margin, 4),
        point_value=point_value,
        points_per_currency_unit=float(program.points_per_currency_unit) if program is not None else 0.0,
        has_program=program is not None,
    )


def retention_suggestions(*, flagged: list[Flagged], costs: OfferCosts, budget: float) -> list[Suggestion]:
    """Every flagged customer with the offer chosen for them (or "none" and why), offers first by expected
    value, then the rest by churn probability; the offers' costs never add up to more than `budget`."""
    options: list[tuple[float, Flagged, list[tuple[float, Offer, float]]]] = []
    suggestions: dict[int, Suggestion] = {}
    for customer in flagged:
        if not customer.marketing_consent:
            suggestions[customer.customer_id] = _none(customer, "no marketing consent: contact only if they write in")
            continue
        at_stake = customer.clv_12m if customer.clv_12m is not None else customer.mean_order_value * costs.margin
        ranked = []
        for offer in OFFERS:
            cost = costs.cost(offer, mean_order_value=customer.mean_order_value)
            if cost is None:
                continue
            value = customer.churn_probability * offer.win_back_rate * max(at_stake, 0.0) - cost
            if value > 0:
                ranked.append((value, offer, cost))
        if not ranked:
            suggestions[customer.customer_id] = _none(customer, "no offer is worth its cost for this customer")
            continue
        ranked.sort(key=lambda item: (-item[0], item[2], item[1].key))
        options.append((ranked[0][0], customer, ranked))
    options.sort(key=lambda item: (-item[0], item[1].customer_id))
    remaining = budget
    for _, customer, ranked in options:
        affordable = [(value, offer, cost) for value, offer, cost in ranked if round(cost, 2) <= remaining + 1e-9]
        if not affordable:
            reason = "no retention budget set" if budget <= 0 else "the weekly retention budget is spent"
            suggestions[customer.customer_id] = _none(customer, reason)
            continue
        value, offer, cost = affordable[0]
        remaining -= round(cost, 2)
        at_stake = "12-month CLV" if customer.clv_12m is not None else "mean order margin"
        suggestions[customer.customer_id] = Suggestion(
            customer_id=customer.customer_id,
            churn_probability=customer.churn_probability,
            clv_12m=customer.clv_12m,
            offer=offer.key,
            offer_cost=round(cost, 2),
            expected_value=round(value, 4),
            reason=(
                f"{customer.churn_probability:.0%} churn risk; {offer.label.lower()} wins back an assumed "
                f"{offer.win_back_rate:.0%} of the {at_stake} for {cost:.2f}"
            ),
        )
    ordered = sorted(
        suggestions.values(),
        key=lambda s: (s.offer == NO_OFFER, -s.expected_value, -s.churn_probability, s.customer_id),
    )
    offers = [s for s in ordered if s.offer != NO_OFFER]
    return offers + [s for s in ordered if s.offer == NO_OFFER][: max(MAX_CANDIDATES - len(offers), 0)]


def _none(customer: Flagged, reason: str) -> Suggestion:
    return Suggestion(
        customer_id=customer.customer_id,
        churn_probability=customer.churn_probability,
        clv_12m=customer.clv_12m,
        offer=NO_OFFER,
        offer_cost=0.0,
        expected_value=0.0,
        reason=f"{customer.churn_probability:.0%} churn risk; {reason}",
    )
