"""A customer's privacy rights: a copy of everything revopt holds about them (export), and erasure.

Erasure removes what identifies the person and keeps what they did, anonymized, so the shop's aggregate figures
(revenue, conversion, experiment results) do not change retroactively. The erased customer is then left out of
every training and scoring (`Customer.erased_at` is the mark the trainers filter on).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from events.models import AnonymousIdentity, Customer, Event, Order, Session
from experiments.models import Exposure
from loyalty.models import CustomerInsight, LoyaltyAccount, RetentionCandidate
from recommendations.models import ServedRecommendation
from revopt.tenancy.models import Merchant
from revopt.tenancy.services import audit_log_write

EXPORT_FORMAT_VERSION = 1
ERASE_CHUNK = 2_000
# Keys (compared lower-case, without "_" and "-") stripped from event properties and context at any depth:
# Segment's traits and context fields that name, locate or fingerprint a person.
PII_KEYS = frozenset(
    {
        "email",
        "name",
        "firstname",
        "lastname",
        "username",
        "phone",
        "address",
        "street",
        "city",
        "postalcode",
        "zip",
        "zipcode",
        "birthday",
        "ip",
        "useragent",
        "location",
        "latitude",
        "longitude",
        "traits",
        "shippingaddress",
        "billingaddress",
        "userid",
        "anonymousid",
    }
)
ERASED = "erased"


class CustomerAlreadyErased(Exception):
    def __init__(self, customer: Customer):
        super().__init__(f"customer {customer.pk} was already erased on {customer.erased_at:%Y-%m-%d}")
        self.customer = customer


# In event properties "name" is the product's or the page's name (Segment's spec), not the person's.
PROPERTY_KEYS_KEPT = frozenset({"name"})


def _is_pii_key(key: object, kept: frozenset[str]) -> bool:
    if not isinstance(key, str):
        return False
    normalized = key.lower().replace("_", "").replace("-", "")
    return normalized in PII_KEYS and normalized not in kept


def without_pii(value: Any, *, kept: frozenset[str] = frozenset()) -> Any:
    """`value` (JSON: dicts, lists, scalars) with every PII key removed at any depth, except those `kept`."""
    if isinstance(value, dict):
        return {key: without_pii(item, kept=kept) for key, item in value.items() if not _is_pii_key(key, kept)}
    if isinstance(value, list):
        return [without_pii(item, kept=kept) for item in value]
    return value


# --- export -------------------------------------------------------------------------------------


def _moment(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _money(value: object) -> str | None:
    return None if value is None else str(value)


def customer_export(*, merchant: Merchant, customer: Customer, actor: AbstractBaseUser | None) -> dict:
    """Everything revopt holds about `customer` as JSON-ready data (the right of access), audited."""
    if customer.merchant_id != merchant.pk:
        raise Customer.DoesNotExist("not a customer of this merchant")
    customers = [customer, *Customer.objects.for_merchant(merchant).filter(merged_into=customer).order_by("pk")]
    ids = [row.pk for row in customers]
    insight = CustomerInsight.objects.for_merchant(merchant).filter(customer=customer).first()
    export = {
        "format_version": EXPORT_FORMAT_VERSION,
        "exported_at": timezone.now().isoformat(),
        "merchant": {"name": merchant.name, "slug": merchant.slug},
        "customer": {
            "id": customer.pk,
            "external_id": customer.external_id,
            "email": customer.email,
            "created_at": _moment(customer.created_at),
            "erased_at": _moment(customer.erased_at),
            "merged_customers": [
                {"id": row.pk, "external_id": row.external_id, "email": row.email} for row in customers[1:]
            ],
        },
        "consent": {
            "marketing": customer.marketing_consent,
            "location": customer.location_consent,
            "personalization_opt_out": customer.personalization_opt_out,
        },
        "identities": [
            {"anonymous_id": anonymous_id, "created_at": _moment(created_at)}
            for anonymous_id, created_at in AnonymousIdentity.objects.for_merchant(merchant)
            .filter(customer_id__in=ids)
            .order_by("created_at", "pk")
            .values_list("anonymous_id", "created_at")
        ],
        "sessions": [
            {
                "id": session.external_id,
                "started_at": _moment(session.started_at),
                "device": session.device,
                "utm_source": session.utm_source,
                "utm_medium": session.utm_medium,
                "utm_campaign": session.utm_campaign,
            }
            for session in Session.objects.for_merchant(merchant).filter(customer_id__in=ids).order_by("started_at")
        ],
        "events": [
            {
                "message_id": event.message_id,
                "name": event.name,
                "timestamp": _moment(event.timestamp),
                "anonymous_id": event.anonymous_id,
                "session": event.session.external_id if event.session is not None else None,
                "product": event.product.sku if event.product is not None else None,
                "price": _money(event.price),
                "quantity": event.quantity,
                "device": event.device,
                "properties": event.properties,
                "context": event.context,
            }
            for event in Event.objects.for_merchant(merchant)
            .filter(customer_id__in=ids)
            .select_related("session", "product")
            .order_by("timestamp", "pk")
            .iterator(chunk_size=ERASE_CHUNK)
        ],
        "orders": [_order_export(order) for order in _orders(merchant, ids)],
        "insights": _insight_export(insight),
        "loyalty": _loyalty_export(merchant, ids),
        "experiments": [
            {
                "experiment": exposure.experiment.key,
                "variant": exposure.variant.key,
                "exposed_at": _moment(exposure.exposed_at),
                "device": exposure.device,
            }
            for exposure in Exposure.objects.for_merchant(merchant)
            .filter(customer_id__in=ids)
            .select_related("experiment", "variant")
            .order_by("exposed_at", "pk")
        ],
    }
    audit_log_write(
        merchant=merchant,
        actor=actor,
        action="customer.export",
        target=customer,
        detail={"events": len(export["events"]), "orders": len(export["orders"])},
    )
    return export


def _orders(merchant: Merchant, ids: list[int]) -> Iterable[Order]:
    return (
        Order.objects.for_merchant(merchant)
        .filter(customer_id__in=ids)
        .prefetch_related("lines")
        .order_by("placed_at", "pk")
    )


def _order_export(order: Order) -> dict:
    return {
        "id": order.external_id,
        "placed_at": _moment(order.placed_at),
        "status": order.status,
        "currency": order.currency,
        "subtotal": _money(order.subtotal),
        "discount": _money(order.discount),
        "shipping": _money(order.shipping),
        "tax": _money(order.tax),
        "total": _money(order.total),
        "coupon": order.coupon,
        "refunded_at": _moment(order.refunded_at),
        "lines": [
            {"sku": line.sku, "quantity": line.quantity, "unit_price": _money(line.unit_price)}
            for line in order.lines.all()
        ],
    }


def _insight_export(insight: CustomerInsight | None) -> dict | None:
    if insight is None:
        return None
    return {
        "as_of": _moment(insight.as_of),
        "orders": insight.orders,
        "revenue": _money(insight.revenue),
        "recency_days": insight.recency_days,
        "r_score": insight.r_score,
        "f_score": insight.f_score,
        "m_score": insight.m_score,
        "segment": insight.segment,
        "cluster": insight.cluster,
        "p_alive": insight.p_alive,
        "expected_purchases_90d": insight.expected_purchases_90d,
        "expected_order_value": insight.expected_order_value,
        "clv_12m": insight.clv_12m,
        "churn_probability": insight.churn_probability,
    }


def _loyalty_export(merchant: Merchant, ids: list[int]) -> list[dict]:
    accounts = (
        LoyaltyAccount.objects.for_merchant(merchant)
        .filter(customer_id__in=ids)
        .select_related("program", "tier")
        .prefetch_related("entries", "redemptions__reward")
        .order_by("pk")
    )
    return [
        {
            "program": account.program.name,
            "tier": account.tier.name if account.tier is not None else None,
            "joined_at": _moment(account.created_at),
            "balance": sum(entry.points for entry in account.entries.all()),
            "ledger": [
                {
                    "kind": entry.kind,
                    "points": entry.points,
                    "reason": entry.reason,
                    "created_at": _moment(entry.created_at),
                    "expires_at": _moment(entry.expires_at),
                }
                for entry in sorted(account.entries.all(), key=lambda entry: (entry.created_at, entry.pk))
            ],
            "redemptions": [
                {
                    "reward": redemption.reward.name,
                    "code": redemption.code,
                    "created_at": _moment(redemption.created_at),
                    "used_at": _moment(redemption.used_at),
                }
                for redemption in sorted(account.redemptions.all(), key=lambda row: (row.created_at, row.pk))
            ],
        }
        for account in accounts
    ]


# --- erase --------------------------------------------------------------------------------------


def _erased_token() -> str:
    return f"{ERASED}-{uuid.uuid4().hex}"


def _strip_events(merchant: Merchant, ids: list[int]) -> int:
    """Blank the anonymous id of the customers' events and strip PII keys from properties and context."""
    changed = 0
    events = Event.objects.for_merchant(merchant).filter(customer_id__in=ids)
    batch: list[Event] = []
    for event in events.only("pk", "anonymous_id", "properties", "context").order_by("pk").iterator(ERASE_CHUNK):
        properties = without_pii(event.properties, kept=PROPERTY_KEYS_KEPT)
        context = without_pii(event.context)
        if properties == event.properties and context == event.context and not event.anonymous_id:
            continue
        event.properties, event.context, event.anonymous_id = properties, context, ""
        batch.append(event)
        if len(batch) == ERASE_CHUNK:
            changed += len(batch)
            Event.objects.bulk_update(batch, ["properties", "context", "anonymous_id"])
            batch.clear()
    if batch:
        changed += len(batch)
        Event.objects.bulk_update(batch, ["properties", "context", "anonymous_id"])
    return changed


@transaction.atomic
def customer_erase(*, merchant: Merchant, customer: Customer, actor: AbstractBaseUser | None) -> Customer:
    """Erase `customer` (and the customers merged into them): PII removed, behaviour kept anonymized.

    - e-mail blanked, the shop's id replaced by a random token (nothing maps it back), consents withdrawn and
      personalization switched off;
    - anonymous ids deleted (a returning device starts as a new, unknown visitor) and blanked on events and
      served recommendation lists; experiment exposures keyed by the token;
    - PII keys (e-mail, name, phone, address, ip, user agent, location, traits…) stripped from event
      properties and context;
    - scores and retention suggestions deleted; orders, order lines, sessions, events and the points ledger (an
      append-only record) kept so the shop's aggregates stay true.
    The audit row carries counts only. Raises CustomerAlreadyErased for a second erase.
    """
    locked = Customer.objects.for_merchant(merchant).select_for_update().get(pk=customer.pk)
    if locked.erased_at is not None:
        raise CustomerAlreadyErased(locked)
    now = timezone.now()
    customers = [locked, *Customer.objects.for_merchant(merchant).filter(merged_into=locked).order_by("pk")]
    ids = [row.pk for row in customers]
    for row in customers:
        row.email = ""
        row.external_id = _erased_token()
        row.marketing_consent = False
        row.location_consent = False
        row.personalization_opt_out = True
        row.erased_at = now
    Customer.objects.bulk_update(
        customers,
        ["email", "external_id", "marketing_consent", "location_consent", "personalization_opt_out", "erased_at"],
    )
    identities, _ = AnonymousIdentity.objects.for_merchant(merchant).filter(customer_id__in=ids).delete()
    events = _strip_events(merchant, ids)
    ServedRecommendation.objects.for_merchant(merchant).filter(customer_id__in=ids).update(
        anonymous_id="", session_external_id=""
    )
    Exposure.objects.for_merchant(merchant).filter(customer_id__in=ids).update(unit_id=locked.external_id)
    insights, _ = CustomerInsight.objects.for_merchant(merchant).filter(customer_id__in=ids).delete()
    candidates, _ = RetentionCandidate.objects.for_merchant(merchant).filter(customer_id__in=ids).delete()
    audit_log_write(
        merchant=merchant,
        actor=actor,
        action="customer.erase",
        target=locked,
        detail={
            "customers": len(ids),
            "anonymous_ids_deleted": identities,
            "events_stripped": events,
            "insights_deleted": insights,
            "retention_candidates_deleted": candidates,
        },
    )
    return locked
