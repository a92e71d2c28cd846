"""`manage.py setup_demo`: the demo merchant, its logins and a storefront API key. Safe to rerun."""

import os
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from revopt.tenancy.models import ApiKey, Merchant, Role
from revopt.tenancy.services import api_key_create, merchant_create, role_groups_sync, staff_member_create

DEMO_MERCHANT_SLUG = "demo"
DEMO_MERCHANT_NAME = "Demo Outdoor Co."
DEMO_MANAGER_USERNAME = "demo"
DEMO_ADMIN_USERNAME = "admin"
# Documented in the README; override with DEMO_PASSWORD for anything reachable by others.
DEFAULT_DEMO_PASSWORD = "revopt-demo"


class Command(BaseCommand):
    help = "Create the demo merchant, a merchant manager and a platform admin login, and a storefront API key."

    def add_arguments(self, parser):
        parser.add_argument(
            "--base-url", default="http://127.0.0.1:8000", help="Where the site is served, for the printed links."
        )

    def handle(self, *args, base_url: str, **options) -> None:
        base_url = base_url.rstrip("/")
        password = os.environ.get("DEMO_PASSWORD") or DEFAULT_DEMO_PASSWORD

        role_groups_sync()
        merchant = Merchant.objects.filter(slug=DEMO_MERCHANT_SLUG).first()
        if merchant is None:
            merchant = merchant_create(name=DEMO_MERCHANT_NAME, slug=DEMO_MERCHANT_SLUG)
            self.stdout.write(f"Created merchant {merchant.name} ({merchant.slug}).")
        else:
            self.stdout.write(f"Merchant {merchant.name} ({merchant.slug}) already exists.")

        self._ensure_pricing_guardrails(merchant)
        self._ensure_loyalty_program(merchant)
        self._ensure_retention_settings(merchant)
        self._ensure_offer_settings(merchant)

        logins = [
            self._ensure_user(DEMO_MANAGER_USERNAME, password, Role.MERCHANT_MANAGER, merchant),
            self._ensure_user(DEMO_ADMIN_USERNAME, password, Role.PLATFORM_ADMIN, None),
        ]

        active_key = (
            ApiKey.objects.for_merchant(merchant).filter(revoked_at__isnull=True).order_by("created_at").first()
        )
        issued = None if active_key else api_key_create(merchant=merchant, name="Demo storefront")

        self.stdout.write("")
        self.stdout.write(self.style.SUCCESS("revopt demo is ready"))
        self.stdout.write(f"  Sign in:   {base_url}/accounts/login/")
        for username, role_label, created in logins:
            note = "" if created else "  (existing user: password unchanged)"
            self.stdout.write(f"  {role_label + ':':<18}username {username}   password {password}{note}")
        self.stdout.write(f"  Admin:     {base_url}/admin/")
        self.stdout.write(f"  API docs:  {base_url}/api/docs/")
        if issued is not None:
            self.stdout.write(f"  Storefront API key (shown once, store it now): {issued.raw_key}")
        else:
            self.stdout.write(
                f"  A storefront API key already exists ({active_key.name}, prefix {active_key.prefix}); keys are "
                "shown only once. To get a new one, add an API key in the admin: "
                f"{base_url}/admin/tenancy/apikey/add/ (revoke the old one there too)."
            )

    def _ensure_pricing_guardrails(self, merchant: Merchant) -> None:
        """The limits a careful merchant starts with, so the demo's first proposals are ones a person would
        consider: at most 10% a step and one change a week per product, at least a 20% margin."""
        from pricing.guardrails import GuardrailLimits
        from pricing.models import Guardrail, GuardrailScope
        from pricing.services.guardrails import guardrail_save

        if Guardrail.objects.for_merchant(merchant).filter(scope=GuardrailScope.MERCHANT).exists():
            return
        guardrail_save(
            merchant=merchant,
            actor=None,
            scope=GuardrailScope.MERCHANT,
            limits=GuardrailLimits(
                max_change_per_step=Decimal("0.10"),
                min_margin=Decimal("0.20"),
                max_changes_per_period=1,
                period_days=7,
            ),
            note="demo: a careful start",
        )
        self.stdout.write("Set the demo shop's pricing guardrails (10% a step, 1 change a week, 20% margin).")

    def _ensure_loyalty_program(self, merchant: Merchant) -> None:
        """A points program like a small outdoor shop's, set up before the simulated orders so they earn."""
        from loyalty.models import EarnAction, EarnRule, LoyaltyProgram, Reward, RewardKind, Tier
        from loyalty.services.points import loyalty_program_save

        if LoyaltyProgram.objects.for_merchant(merchant).exists():
            return
        program = loyalty_program_save(
            program=LoyaltyProgram(merchant=merchant, name="Trail Points", expiry_days=365), actor=None
        )
        EarnRule.objects.bulk_create(
            [
                EarnRule(
                    merchant=merchant, program=program, action=EarnAction.REVIEW, points=50, limit_per_customer=10
                ),
                EarnRule(merchant=merchant, program=program, action=EarnAction.REFERRAL, points=200),
            ]
        )
        Tier.objects.bulk_create(
            [
                Tier(merchant=merchant, program=program, name="Trail", threshold_points=0),
                Tier(
                    merchant=merchant,
                    program=program,
                    name="Summit",
                    threshold_points=300,
                    earn_multiplier=Decimal("1.5"),
                    benefits="1.5 points per dollar, early access to sales",
                ),
            ]
        )
        Reward.objects.bulk_create(
            [
                Reward(
                    merchant=merchant,
                    program=program,
                    name="$5 off",
                    kind=RewardKind.AMOUNT_OFF,
                    points_cost=500,
                    value=5,
                ),
                Reward(
                    merchant=merchant,
                    program=program,
                    name="Free shipping",
                    kind=RewardKind.FREE_SHIPPING,
                    points_cost=300,
                ),
            ]
        )
        self.stdout.write("Created the demo shop's points program (Trail Points: two tiers, two rewards).")

    def _ensure_retention_settings(self, merchant: Merchant) -> None:
        """The demo shop has 60 days of history; the churn model trains on the table as of 2 × horizon ago, so
        the default 90-day horizon would leave it nothing to learn from. A 14-day horizon fits, and a small
        weekly budget lets the retention list suggest offers."""
        from loyalty.models import RetentionSettings

        if RetentionSettings.objects.for_merchant(merchant).exists():
            return
        RetentionSettings.objects.create(merchant=merchant, churn_horizon_days=14, weekly_budget=Decimal("200"))

    def _ensure_offer_settings(self, merchant: Merchant) -> None:
        """The demo shop has no uplift model before its first training, so half of its carts get a random
        incentive (the randomized data the model learns from) within a budget a small shop would set."""
        from loyalty.models import OfferSettings

        if OfferSettings.objects.for_merchant(merchant).exists():
            return
        OfferSettings.objects.create(
            merchant=merchant, daily_budget=Decimal("150"), max_offers_per_customer=2, exploration_share=0.5
        )

    def _ensure_user(
        self, username: str, password: str, role: Role, merchant: Merchant | None
    ) -> tuple[str, str, bool]:
        if get_user_model().objects.filter(username=username).exists():
            # Never reset a password someone may have changed since the first run.
            return username, Role(role).label, False
        staff_member_create(username=username, password=password, role=role, merchant=merchant)
        return username, Role(role).label, True
