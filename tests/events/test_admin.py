import pytest
from django.test import Client

from events.services import data_quality_report_create, event_batch_ingest
from revopt.tenancy.models import Role
from revopt.tenancy.services import staff_member_create
from tests.events.conftest import make_event
from tests.factories.catalog import ProductFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def manager_client(merchant):
    staff_member_create(username="manager", password="pw-123456789", role=Role.MERCHANT_MANAGER, merchant=merchant)
    client = Client()
    client.login(username="manager", password="pw-123456789")
    return client


def test_a_manager_sees_only_their_merchants_events_and_orders(manager_client, merchant, other_merchant, products):
    # given
    ProductFactory(merchant=other_merchant, sku="SKU-1")
    event_batch_ingest(merchant=merchant, events=[make_event(anonymousId="ours")])
    event_batch_ingest(merchant=other_merchant, events=[make_event(anonymousId="theirs")])

    # when
    events_page = manager_client.get("/admin/events/event/")
    customers_page = manager_client.get("/admin/events/customer/")

    # then
    assert events_page.status_code == 200
    assert events_page.context["cl"].result_count == 1
    assert customers_page.context["cl"].queryset.get().merchant == merchant


def test_event_history_cannot_be_edited_in_the_admin(manager_client, merchant, products):
    event_batch_ingest(merchant=merchant, events=[make_event()])

    assert manager_client.get("/admin/events/event/add/").status_code == 403


def test_another_merchants_report_is_not_found(manager_client, other_merchant):
    report = data_quality_report_create(merchant=other_merchant)

    response = manager_client.get(f"/admin/events/dataqualityreport/{report.pk}/change/")

    assert response.status_code == 302  # the admin redirects missing objects to its index


def test_a_failing_data_quality_report_shows_its_checks(manager_client, merchant):
    # given: no events at all
    report = data_quality_report_create(merchant=merchant)

    # when
    response = manager_client.get(f"/admin/events/dataqualityreport/{report.pk}/change/")

    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert "training blocked" in html
    assert "Events received in the window" in html
