import re
from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command

from revopt.tenancy.models import ApiKey, Merchant, Role, StaffMembership
from revopt.tenancy.selectors import api_key_for_raw_key

pytestmark = pytest.mark.django_db


def _run(**options) -> str:
    out = StringIO()
    call_command("setup_demo", stdout=out, **options)
    return out.getvalue()


def test_setup_demo_creates_merchant_logins_and_a_working_key(monkeypatch):
    # given
    monkeypatch.delenv("DEMO_PASSWORD", raising=False)

    # when
    output = _run()

    # then
    merchant = Merchant.objects.get(slug="demo")
    assert merchant.name == "Demo Outdoor Co."
    manager = get_user_model().objects.get(username="demo")
    admin = get_user_model().objects.get(username="admin")
    assert manager.check_password("revopt-demo") and admin.check_password("revopt-demo")
    assert StaffMembership.objects.get(user=manager).merchant == merchant
    assert StaffMembership.objects.get(user=manager).role == Role.MERCHANT_MANAGER
    assert admin.is_superuser and StaffMembership.objects.get(user=admin).role == Role.PLATFORM_ADMIN
    assert Group.objects.filter(name=Role.SUPPORT_AGENT.label).exists()
    raw_key = re.search(r"(rvk_\S+)", output).group(1)
    assert api_key_for_raw_key(raw_key=raw_key).merchant == merchant
    assert "http://127.0.0.1:8000/accounts/login/" in output
    assert "username demo   password revopt-demo" in output


def test_setup_demo_is_idempotent_and_never_reprints_a_key():
    # given
    first = _run()

    # when
    second = _run()

    # then
    assert Merchant.objects.filter(slug="demo").count() == 1
    assert get_user_model().objects.filter(username__in=["demo", "admin"]).count() == 2
    assert ApiKey.objects.count() == 1
    assert "rvk_" in first
    assert "rvk_" not in second
    assert "already exists" in second and "/admin/tenancy/apikey/add/" in second


def test_setup_demo_issues_a_new_key_when_the_old_one_was_revoked():
    # given
    _run()
    ApiKey.objects.update(revoked_at="2026-01-01T00:00:00Z")

    # when
    output = _run()

    # then
    assert "rvk_" in output
    assert ApiKey.objects.filter(revoked_at__isnull=True).count() == 1


def test_setup_demo_takes_the_password_from_the_environment(monkeypatch):
    # given
    monkeypatch.setenv("DEMO_PASSWORD", "a-better-secret")

    # when
    _run(base_url="http://demo.example:9000/")

    # then
    assert get_user_model().objects.get(username="demo").check_password("a-better-secret")


def test_setup_demo_sets_careful_pricing_guardrails_once():
    # given
    from pricing.models import Guardrail, GuardrailScope

    # when run twice
    _run()
    _run()

    # then one shop-wide row with the demo's limits
    guardrail = Guardrail.objects.get(merchant__slug="demo", scope=GuardrailScope.MERCHANT)
    assert (guardrail.max_change_per_step, guardrail.min_margin) == (Decimal("0.10"), Decimal("0.20"))
    assert (guardrail.max_changes_per_period, guardrail.period_days) == (1, 7)


def test_setup_demo_creates_a_points_program_once():
    # given
    from loyalty.models import LoyaltyProgram

    # when run twice
    _run()
    _run()

    # then one active program with its tiers and rewards, ready before the simulated orders arrive
    program = LoyaltyProgram.objects.get(merchant__slug="demo")
    assert program.is_active
    assert [tier.name for tier in program.tiers.order_by("threshold_points")] == ["Trail", "Summit"]
    assert program.rewards.count() == 2 and program.earn_rules.count() == 2
    # and a churn horizon the demo's 60 days of history can train on twice over
    from loyalty.models import RetentionSettings

    assert RetentionSettings.objects.get(merchant__slug="demo").churn_horizon_days * 2 < 60
