import json
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from events.models import AnonymousIdentity, Customer, Event, Order
from experiments.models import Exposure
from loyalty.models import CustomerInsight, RetentionCandidate
from loyalty.services.points import loyalty_account_for, points_adjust
from loyalty.services.privacy import CustomerAlreadyErased, customer_erase, customer_export, without_pii
from pricing.selectors.demand import demand_panel
from recommendations.models import ServedRecommendation
from recommendations.training_data import training_data_for
from revopt.tenancy.models import AuditLogEntry
from tests.factories.catalog import ProductFactory
from tests.factories.events import CustomerFactory, EventFactory, OrderFactory, OrderLineFactory, SessionFactory
from tests.factories.experiments import ExposureFactory
from tests.factories.loyalty import CustomerInsightFactory, InsightRunFactory, LoyaltyProgramFactory

pytestmark = pytest.mark.django_db

SEGMENT_CONTEXT = {
    "ip": "203.0.113.9",
    "userAgent": "Mozilla/5.0",
    "traits": {"email": "ada@example.com", "name": "Ada Lovelace"},
    "location": {"city": "London", "latitude": 51.5},
    "device": {"type": "mobile"},
    "campaign": {"source": "newsletter"},
}


@pytest.fixture
def ada(merchant):
    """A customer with every kind of row revopt keeps about a person."""
    customer = CustomerFactory(
        merchant=merchant, external_id="shop-ada", email="ada@example.com", marketing_consent=True
    )
    AnonymousIdentity.objects.create(merchant=merchant, anonymous_id="device-ada", customer=customer)
    product = ProductFactory(merchant=merchant, sku="TENT", title="Trail Tent", price=Decimal("25.00"))
    session = SessionFactory(merchant=merchant, customer=customer, external_id="s-ada")
    EventFactory(
        merchant=merchant, customer=customer, session=session, product=product, anonymous_id="device-ada",
        properties={"product_id": "TENT", "name": "Trail Tent", "shipping_address": {"street": "1 Lane"}},
        context=SEGMENT_CONTEXT, timestamp=timezone.now() - timedelta(days=2),
    )  # fmt: skip
    order = OrderFactory(
        merchant=merchant, customer=customer, session=session, placed_at=timezone.now() - timedelta(days=2)
    )
    OrderLineFactory(order=order, product=product, quantity=2)
    CustomerInsightFactory(merchant=merchant, customer=customer, churn_probability=0.9, clv_12m=120.0)
    RetentionCandidate.objects.create(
        merchant=merchant, customer=customer, run=InsightRunFactory(merchant=merchant), churn_probability=0.9,
        offer="percent_10", offer_cost=Decimal("5"), expected_value=3.0, reason="likely to lapse",
        created_at=timezone.now(),
    )  # fmt: skip
    ExposureFactory(
        variant__experiment__merchant=merchant, variant__merchant=merchant, customer=customer, unit_id="shop-ada"
    )
    ServedRecommendation.objects.create(
        merchant=merchant, placement="home", customer=customer, anonymous_id="device-ada", session_external_id="s-ada",
        source="fallback", created_at=timezone.now(),
    )  # fmt: skip
    return customer


# --- without_pii ----------------------------------------------------------------------------------


def test_without_pii_strips_personal_keys_at_any_depth():
    # when
    stripped = without_pii({"context": SEGMENT_CONTEXT, "items": [{"Email": "a@b.c", "sku": "X"}]})

    # then
    assert stripped == {
        "context": {"device": {"type": "mobile"}, "campaign": {"source": "newsletter"}},
        "items": [{"sku": "X"}],
    }


def test_without_pii_can_keep_a_key_that_names_a_product():
    # when
    stripped = without_pii({"name": "Trail Tent", "first_name": "Ada"}, kept=frozenset({"name"}))

    # then
    assert stripped == {"name": "Trail Tent"}


# --- export ---------------------------------------------------------------------------------------


def test_export_holds_everything_about_the_customer_and_is_audited(merchant, ada, merchant_manager):
    # given
    LoyaltyProgramFactory(merchant=merchant)
    points_adjust(
        account=loyalty_account_for(merchant=merchant, customer=ada), points=40, reason="late parcel",
        actor=merchant_manager,
    )  # fmt: skip

    # when
    export = customer_export(merchant=merchant, customer=ada, actor=merchant_manager)

    # then
    assert export["customer"]["email"] == "ada@example.com" and export["customer"]["external_id"] == "shop-ada"
    assert export["consent"] == {"marketing": True, "location": False, "personalization_opt_out": False}
    assert [row["anonymous_id"] for row in export["identities"]] == ["device-ada"]
    assert [row["id"] for row in export["sessions"]] == ["s-ada"]
    assert export["events"][0]["context"]["ip"] == "203.0.113.9"
    assert export["orders"][0]["lines"] == [{"sku": "TENT", "quantity": 2, "unit_price": "25.00"}]
    assert export["insights"]["churn_probability"] == 0.9
    assert export["loyalty"][0]["balance"] == 40 and export["loyalty"][0]["ledger"][0]["reason"] == "late parcel"
    assert len(export["experiments"]) == 1
    json.dumps(export, cls=DjangoJSONEncoder)  # downloadable as it is
    audit = AuditLogEntry.objects.get(action="customer.export")
    assert (audit.target_id, audit.actor) == (str(ada.pk), merchant_manager)


def test_export_includes_the_customers_merged_into_them(merchant, ada, merchant_manager):
    # given
    merged = CustomerFactory(merchant=merchant, email="ada.old@example.com", merged_into=ada)
    OrderFactory(merchant=merchant, customer=merged)

    # when
    export = customer_export(merchant=merchant, customer=ada, actor=merchant_manager)

    # then
    assert export["customer"]["merged_customers"][0]["email"] == "ada.old@example.com"
    assert len(export["orders"]) == 2


def test_export_refuses_another_merchants_customer(merchant, other_merchant, merchant_manager):
    # given
    theirs = CustomerFactory(merchant=other_merchant)

    # when / then
    with pytest.raises(Customer.DoesNotExist):
        customer_export(merchant=merchant, customer=theirs, actor=merchant_manager)
    assert not AuditLogEntry.objects.filter(action="customer.export").exists()


# --- erase ----------------------------------------------------------------------------------------


def test_erase_removes_pii_and_keeps_the_activity_anonymized(merchant, ada, merchant_manager):
    # when
    erased = customer_erase(merchant=merchant, customer=ada, actor=merchant_manager)

    # then
    ada.refresh_from_db()
    assert ada.erased_at is not None and erased.pk == ada.pk
    assert ada.email == "" and ada.external_id.startswith("erased-") and "ada" not in ada.external_id
    assert not ada.marketing_consent and ada.personalization_opt_out
    assert not AnonymousIdentity.objects.filter(customer=ada).exists()
    event = Event.objects.get(customer=ada)
    assert event.anonymous_id == ""
    assert event.context == {"device": {"type": "mobile"}, "campaign": {"source": "newsletter"}}
    assert event.properties == {"product_id": "TENT", "name": "Trail Tent"}
    assert Order.objects.filter(customer=ada).count() == 1 and Order.objects.get(customer=ada).lines.count() == 1
    assert not CustomerInsight.objects.filter(customer=ada).exists()
    assert not RetentionCandidate.objects.filter(customer=ada).exists()
    assert Exposure.objects.get(customer=ada).unit_id == ada.external_id
    served = ServedRecommendation.objects.get(customer=ada)
    assert (served.anonymous_id, served.session_external_id) == ("", "")


def test_erase_is_audited_without_the_personal_data(merchant, ada, merchant_manager):
    # when
    customer_erase(merchant=merchant, customer=ada, actor=merchant_manager)

    # then
    audit = AuditLogEntry.objects.get(action="customer.erase")
    assert (audit.target_id, audit.actor) == (str(ada.pk), merchant_manager)
    written = json.dumps(audit.detail)
    assert "ada@example.com" not in written and "shop-ada" not in written and "device-ada" not in written
    assert audit.detail["anonymous_ids_deleted"] == 1 and audit.detail["events_stripped"] == 1


def test_erase_also_erases_the_customers_merged_into_them(merchant, ada, merchant_manager):
    # given
    merged = CustomerFactory(
        merchant=merchant, email="ada.old@example.com", external_id="shop-ada-old", merged_into=ada
    )
    AnonymousIdentity.objects.create(merchant=merchant, anonymous_id="old-laptop", customer=merged)

    # when
    customer_erase(merchant=merchant, customer=ada, actor=merchant_manager)

    # then
    merged.refresh_from_db()
    assert merged.erased_at is not None and merged.email == "" and merged.external_id.startswith("erased-")
    assert not AnonymousIdentity.objects.filter(anonymous_id="old-laptop").exists()


def test_a_second_erase_is_refused(merchant, ada, merchant_manager):
    # given
    customer_erase(merchant=merchant, customer=ada, actor=merchant_manager)
    token = Customer.objects.get(pk=ada.pk).external_id

    # when / then
    with pytest.raises(CustomerAlreadyErased):
        customer_erase(merchant=merchant, customer=ada, actor=merchant_manager)
    assert Customer.objects.get(pk=ada.pk).external_id == token
    assert AuditLogEntry.objects.filter(action="customer.erase").count() == 1


def test_erase_refuses_another_merchants_customer(merchant, other_merchant, merchant_manager):
    # given
    theirs = CustomerFactory(merchant=other_merchant, email="bob@example.com")

    # when / then
    with pytest.raises(Customer.DoesNotExist):
        customer_erase(merchant=merchant, customer=theirs, actor=merchant_manager)
    theirs.refresh_from_db()
    assert theirs.erased_at is None and theirs.email == "bob@example.com"


def test_erased_customers_never_train_the_recommender(merchant, ada, merchant_manager):
    # given
    other = CustomerFactory(merchant=merchant)
    tent = ProductFactory(merchant=merchant, sku="STOVE")
    EventFactory(merchant=merchant, customer=other, product=tent, timestamp=timezone.now() - timedelta(days=1))
    before = training_data_for(merchant=merchant)

    # when
    customer_erase(merchant=merchant, customer=ada, actor=merchant_manager)
    after = training_data_for(merchant=merchant)

    # then
    assert ada.pk in before.users.ids.tolist()
    assert after.users.ids.tolist() == [other.pk]
    assert len(after.interactions) == 1 and len(after.baskets.user) == 0


def test_erased_customers_never_fit_the_demand_model(merchant, ada, merchant_manager):
    # given
    start, end = date.today() - timedelta(days=10), date.today()
    before = demand_panel(merchant=merchant, start=start, end=end)

    # when
    customer_erase(merchant=merchant, customer=ada, actor=merchant_manager)
    after = demand_panel(merchant=merchant, start=start, end=end)

    # then
    assert before.units.sum() == 2
    assert len(after.units) == 0
