import pytest
from django.core.management import CommandError, call_command

from events.models import Order
from revopt.simulator.models import SimulationRun

pytestmark = pytest.mark.django_db

ARGS = ["--sessions", "300", "--days", "5", "--products", "40", "--seed", "3", "--no-progress"]


def test_simulate_prints_the_stats_and_if_empty_skips_the_second_time(merchant, capsys):
    # when
    call_command("simulate", "--merchant", merchant.slug, *ARGS)
    first = capsys.readouterr().out
    call_command("simulate", "--merchant", merchant.slug, "--if-empty", *ARGS)
    second = capsys.readouterr().out

    # then
    run = SimulationRun.objects.for_merchant(merchant).get()
    assert run.status == SimulationRun.Status.COMPLETED and run.stats["sessions"] == 300
    assert "conversion" in first and "cart abandonment" in first and "AOV" in first
    assert f"{run.stats['orders']:,}" in first
    assert "skipping" in second
    assert Order.objects.for_merchant(merchant).count() == run.stats["orders"]


def test_simulate_needs_a_known_merchant(merchant):
    with pytest.raises(CommandError, match="no merchant"):
        call_command("simulate", "--merchant", "no-such-shop", *ARGS)


def test_base_url_needs_an_api_key(merchant):
    with pytest.raises(CommandError, match="go together"):
        call_command("simulate", "--merchant", merchant.slug, "--base-url", "http://127.0.0.1:8000", *ARGS)
