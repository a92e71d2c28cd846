import pytest
from django.utils import timezone

from loyalty.models import RunStatus, UpliftModel

pytestmark = pytest.mark.django_db

URL = "/admin/loyalty/upliftmodel/"


def test_managers_see_their_merchants_uplift_runs_read_only(client, merchant_manager, merchant, other_merchant):
    # given
    own = UpliftModel.objects.create(
        merchant=merchant, status=RunStatus.SUCCEEDED, started_at=timezone.now(), artifact=b"secret-bytes"
    )
    other = UpliftModel.objects.create(merchant=other_merchant, status=RunStatus.FAILED, started_at=timezone.now())
    client.force_login(merchant_manager)

    # when
    listing = client.get(URL)
    detail = client.get(f"{URL}{own.pk}/change/")
    foreign = client.get(f"{URL}{other.pk}/change/")
    add = client.get(f"{URL}add/")

    # then
    assert listing.status_code == 200
    assert list(listing.context["cl"].queryset) == [own]
    assert detail.status_code == 200
    assert b"secret-bytes" not in detail.content
    assert foreign.status_code == 302  # the admin's "does not exist" redirect: not this manager's row
    assert add.status_code == 403
