import pytest
from django.test import Client

from revopt.simulator.models import SimulationRun

pytestmark = pytest.mark.django_db


def test_a_manager_sees_their_simulation_runs_only(merchant, other_merchant, merchant_manager):
    # given
    ours = SimulationRun.objects.create(merchant=merchant, seed=1, stats={"sessions": 100, "conversion": 0.031})
    SimulationRun.objects.create(merchant=other_merchant, seed=2, stats={"sessions": 5})
    client = Client()
    client.force_login(merchant_manager)

    # when
    listing = client.get("/admin/simulator/simulationrun/")
    detail = client.get(f"/admin/simulator/simulationrun/{ours.pk}/change/")

    # then
    assert listing.status_code == 200
    assert [run.pk for run in listing.context["cl"].result_list] == [ours.pk]
    assert "3.10%" in listing.content.decode()
    assert detail.status_code == 200
    assert "<th>sessions</th><td>100</td>" in detail.content.decode()
