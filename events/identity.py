"""Identity resolution for a batch of events: which customer each (userId, anonymousId) pair belongs to.

Rules, applied in event order:
- a userId names an identified customer (created on first sight);
- an anonymousId alone names whoever that anonymous id was last linked to (a new anonymous customer on
  first sight);
- userId + anonymousId links them: an anonymous customer behind the anonymous id is promoted to the
  userId when that user is new to revopt, or merged into the existing customer otherwise (history,
  sessions and orders move with it); an anonymous id last used by another identified customer (a shared
  device) is re-pointed for the future, without moving anyone's history.

The resolver loads what it needs in two queries, decides in memory, and writes in bulk in `flush()`.
"""

from collections.abc import Iterable
from datetime import datetime

from django.db.models import Q

from revopt.db import bulk_insert
from revopt.tenancy.models import Merchant

from .models import AnonymousIdentity, Customer, Event, Order, Session


class IdentityResolver:
    def __init__(self, *, merchant: Merchant, user_ids: Iterable[str], anonymous_ids: Iterable[str]):
        self.merchant = merchant
        user_ids = set(user_ids)
        anonymous_ids = set(anonymous_ids)
        self._by_external_id: dict[str, Customer] = {}
        self._alias_customer: dict[str, Customer] = {}
        self._existing_aliases: dict[str, AnonymousIdentity] = {}
        if user_ids:
            for customer in Customer.objects.for_merchant(merchant).filter(external_id__any_of=list(user_ids)):
                self._by_external_id[customer.external_id] = customer
        if anonymous_ids:
            aliases = (
                AnonymousIdentity.objects.for_merchant(merchant)
                .filter(anonymous_id__any_of=list(anonymous_ids))
                .select_related("customer")
            )
            for alias in aliases:
                self._existing_aliases[alias.anonymous_id] = alias
                self._alias_customer[alias.anonymous_id] = alias.customer
        # Customers merged away in this batch (source → target), by object identity.
        self._replaced: dict[int, Customer] = {}
        self._new_customers: list[Customer] = []
        self._promoted: list[Customer] = []
        self._merges: list[tuple[Customer, Customer]] = []
        self._alias_changed: set[str] = set()

    def canonical(self, customer: Customer) -> Customer:
        while id(customer) in self._replaced:
            customer = self._replaced[id(customer)]
        return customer

    def _new_customer(self, *, external_id: str | None, seen_at: datetime) -> Customer:
        customer = Customer(merchant=self.merchant, external_id=external_id, created_at=seen_at)
        self._new_customers.append(customer)
        if external_id is not None:
            self._by_external_id[external_id] = customer
        return customer

    def _link(self, anonymous_id: str, customer: Customer) -> None:
        self._alias_customer[anonymous_id] = customer
        self._alias_changed.add(anonymous_id)

    def resolve(self, *, user_id: str | None, anonymous_id: str | None, seen_at: datetime) -> Customer:
        if user_id is None:
            customer = self._alias_customer.get(anonymous_id)
            if customer is None:
                customer = self._new_customer(external_id=None, seen_at=seen_at)
                self._link(anonymous_id, customer)
            return self.canonical(customer)

        identified = self._by_external_id.get(user_id)
        if anonymous_id is None:
            return self.canonical(identified or self._new_customer(external_id=user_id, seen_at=seen_at))

        behind_alias = self._alias_customer.get(anonymous_id)
        behind_alias = self.canonical(behind_alias) if behind_alias is not None else None
        if behind_alias is None:
            customer = identified or self._new_customer(external_id=user_id, seen_at=seen_at)
            self._link(anonymous_id, customer)
            return self.canonical(customer)
        if behind_alias.external_id == user_id:
            return behind_alias
        if behind_alias.external_id is None:
            if identified is None:
                behind_alias.external_id = user_id
                self._by_external_id[user_id] = behind_alias
                if behind_alias.pk is not None:
                    self._promoted.append(behind_alias)
                return behind_alias
            identified = self.canonical(identified)
            self._replaced[id(behind_alias)] = identified
            if behind_alias.pk is not None:
                self._merges.append((behind_alias, identified))
            self._link(anonymous_id, identified)
            return identified
        # A shared device: the anonymous id now belongs to whoever logged in last.
        customer = self.canonical(identified or self._new_customer(external_id=user_id, seen_at=seen_at))
        self._link(anonymous_id, customer)
        return customer

    def flush(self) -> None:
        """Write new customers, promotions, merges and alias links."""
        new_customers = [c for c in self._new_customers if self.canonical(c) is c]
        bulk_insert(new_customers)
        new_members: list[int] = []
        for customer in self._promoted:
            if self.canonical(customer) is customer:
                Customer.objects.filter(pk=customer.pk).update(external_id=customer.external_id)
                new_members.append(customer.pk)
        new_members += [source.pk for source, _ in self._merges]
        orders_earn_as_member(merchant=self.merchant, anonymous_customer_ids=new_members)
        for source, target in self._merges:
            customer_merge(source=source, target=self.canonical(target))

        new_aliases = []
        for anonymous_id in self._alias_changed:
            customer = self.canonical(self._alias_customer[anonymous_id])
            existing = self._existing_aliases.get(anonymous_id)
            if existing is None:
                new_aliases.append(
                    AnonymousIdentity(merchant=self.merchant, anonymous_id=anonymous_id, customer=customer)
                )
            elif existing.customer_id != customer.pk:
                AnonymousIdentity.objects.filter(pk=existing.pk).update(customer=customer)
        bulk_insert(new_aliases)


def orders_earn_as_member(*, merchant: Merchant, anonymous_customer_ids: list[int]) -> None:
    """Orders a shopper placed before logging in earn loyalty points once they belong to a member (after the
    batch commits; once, since the ledger's idempotency key is the order). Free for a shop without a program."""
    if not anonymous_customer_ids:
        return
    from events.ingest import loyalty_points_after_commit  # loyalty builds on events: import late
    from loyalty.selectors.points import merchant_has_active_program

    if not merchant_has_active_program(merchant=merchant):
        return
    order_ids = list(
        Order.objects.filter(merchant=merchant, customer_id__in=anonymous_customer_ids).values_list("pk", flat=True)
    )
    loyalty_points_after_commit(merchant=merchant, placed_order_ids=order_ids, reversed_order_refs=[])


def customer_merge(*, source: Customer, target: Customer) -> None:
    """Move an anonymous customer's history onto `target` and mark it merged.

    Callers run inside the ingest transaction; the anonymous row stays (merged_into set) so late events
    that still carry its id keep resolving through the alias.
    """
    scope = Q(merchant_id=source.merchant_id, customer_id=source.pk)
    Event.objects.filter(scope).update(customer_id=target.pk)
    Session.objects.filter(scope).update(customer_id=target.pk)
    Order.objects.filter(scope).update(customer_id=target.pk)
    AnonymousIdentity.objects.filter(scope).update(customer_id=target.pk)
    # Experiments' exposures follow too: the shopper keeps the variant they saw before logging in.
    from experiments.services.assignment import exposures_merge  # experiments builds on events

    exposures_merge(merchant_id=source.merchant_id, source_id=source.pk, target_id=target.pk)
    Customer.objects.filter(pk=source.pk).update(merged_into_id=target.pk)
    if source.created_at < target.created_at:
        Customer.objects.filter(pk=target.pk).update(created_at=source.created_at)
