import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from pricing.models import ModelRunStatus, PriceChange, PriceChangeSource, ProposalStatus
from pricing.optimizer import what_if
from pricing.selectors.screens import product_pricing
from revopt.dashboard.templatetags.revopt_ui import _money_text
from tests.factories.catalog import CompetitorPriceObservationFactory, ProductFactory
from tests.factories.pricing import (
    DemandModelRunFactory,
    ElasticityEstimateFactory,
    GuardrailFactory,
    PriceProposalFactory,
)

pytestmark = pytest.mark.django_db

OVERVIEW = reverse("pricing:index")
REFIT = reverse("pricing:refit")


def _login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _product_url(product) -> str:
    return reverse("pricing:product", args=[product.sku])


def _figure(html: str, name: str) -> str:
    return re.search(rf'data-figure="{name}">([^<]*)<', html).group(1).strip()


@pytest.fixture
def priced(merchant):
    """A 25.00 product (cost 12.00) with an estimate in service and a pending proposal to go to 26.50."""
    product = ProductFactory(merchant=merchant, sku="TENT-2P", title="Two-person tent", inventory=1000)
    ElasticityEstimateFactory(merchant=merchant, product=product, category=product.category)
    proposal = PriceProposalFactory(merchant=merchant, product=product)
    return product, proposal


def test_anonymous_visitors_are_sent_to_the_login_page(priced):
    # given
    product, proposal = priced

    # when
    responses = [
        Client().get(OVERVIEW),
        Client().get(_product_url(product)),
        Client().post(reverse("pricing:approve", args=[proposal.pk])),
        Client().post(REFIT),
    ]

    # then
    assert all(response.status_code == 302 for response in responses)
    assert all(response["Location"].startswith(reverse("login")) for response in responses)


def test_support_agents_are_refused_every_pricing_screen_and_action(priced, support_agent):
    # given
    product, proposal = priced
    client = _login(support_agent)

    # when
    responses = [
        client.get(OVERVIEW),
        client.get(_product_url(product)),
        client.post(reverse("pricing:approve", args=[proposal.pk])),
    ]

    # then
    assert [response.status_code for response in responses] == [403, 403, 403]
    assert "Pricing is for the shop" in responses[0].content.decode()
    product.refresh_from_db()
    assert product.price == Decimal("25.00")


def test_another_merchants_manager_finds_neither_the_product_nor_its_proposal(priced, other_merchant_manager):
    # given
    product, proposal = priced
    client = _login(other_merchant_manager)

    # when
    page = client.get(_product_url(product))
    approve = client.post(reverse("pricing:approve", args=[proposal.pk]))
    overview = client.get(OVERVIEW).content.decode()

    # then
    assert page.status_code == 404 and approve.status_code == 404
    assert "Two-person tent" not in overview
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.PENDING


def test_a_platform_admin_picks_the_merchant_with_the_query(priced, merchant, platform_admin):
    # given
    product, _ = priced
    client = _login(platform_admin)

    # when
    chooser = client.get(OVERVIEW)
    overview = client.get(OVERVIEW, {"merchant": merchant.slug})
    page = client.get(_product_url(product), {"merchant": merchant.slug})

    # then
    assert chooser.status_code == 200 and "Two-person tent" not in chooser.content.decode()
    assert overview.status_code == 200 and "Two-person tent" in overview.content.decode()
    assert page.status_code == 200
    # its forms keep the merchant, or the POST would land on the chooser
    assert f'action="{reverse("pricing:approve", args=[priced[1].pk])}?merchant={merchant.slug}"' in (
        page.content.decode()
    )


def test_the_overview_shows_kpis_model_charts_queue_and_recent_changes(priced, merchant, merchant_manager):
    # given
    product, proposal = priced
    PriceChange.objects.create(
        merchant=merchant, product=product, from_price=Decimal("24.00"), to_price=Decimal("25.00"),
        source=PriceChangeSource.APPROVED, reason="Approved", created_at=timezone.now(),
    )  # fmt: skip

    # when
    response = _login(merchant_manager).get(OVERVIEW)

    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert re.search(r'data-kpi="pending">1<', html)
    assert re.search(r'data-kpi="profit-outlook">\+\$9.00<', html)
    assert re.search(r'data-kpi="profit-outlook-interval">\$3.00 to \$15.00<', html)
    assert re.search(r'data-kpi="live-changes">1<', html)
    assert re.search(r'data-kpi="auto-approve">Off<', html)
    assert 'id="elasticity-by-category"' in html and 'class="interval interval-neutral"' in html
    assert 'id="price-changes-per-day"' in html and 'data-up="1"' in html
    queue = re.search(r'data-table="queue".*?</table>', html, re.S).group(0)
    assert f'href="{_product_url(product)}"' in queue and f'data-proposal="{proposal.pk}"' in queue
    recent = re.search(r'data-table="price-changes".*?</table>', html, re.S).group(0)
    assert 'data-action="roll-back"' in recent
    assert 'data-model-status="succeeded"' in html


def test_the_overview_without_a_fit_or_products_says_what_to_do(merchant_manager):
    # when
    html = _login(merchant_manager).get(OVERVIEW).content.decode()

    # then
    assert "No products to price yet" in html
    assert 'data-figure="no-fit"' in html and "Refit now" in html
    assert "No demand fit in service yet" in html


def test_the_nav_links_pricing_for_managers_only(merchant_manager, support_agent):
    # when
    manager_home = _login(merchant_manager).get(reverse("dashboard:home")).content.decode()
    agent_home = _login(support_agent).get(reverse("dashboard:home")).content.decode()

    # then
    assert f'href="{OVERVIEW}"' in manager_home
    assert f'href="{OVERVIEW}"' not in agent_home


def test_the_product_page_shows_prices_elasticity_curves_guardrails_and_the_proposal(
    priced, merchant, merchant_manager
):
    # given
    product, proposal = priced
    GuardrailFactory(merchant=merchant, max_change_per_step=Decimal("0.10"))
    CompetitorPriceObservationFactory(merchant=merchant, product=product, competitor="Rival", price=Decimal("23.50"))

    # when
    response = _login(merchant_manager).get(_product_url(product))

    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert _figure(html, "current-price") == "$25.00" and _figure(html, "margin") == "52.0%"
    assert _figure(html, "elasticity") == "-1.80"
    assert _figure(html, "pooling").startswith("A blend: 30% comes from its category")
    assert 'data-competitor="Rival"' in html and "-6.0%" in html
    for chart in ("demand-curve", "profit-curve"):
        svg = re.search(rf'<svg[^>]*id="{chart}".*?</svg>\s*</div>', html, re.S).group(0)
        for marker in ("current", "proposed", "competitor"):
            assert f'data-marker="{marker}"' in svg
        assert 'class="chart-shade"' in svg and 'data-low="22.5" data-high="27.5"' in svg
    assert 'data-limit="max_change_per_step"' in html and "whole shop" in html
    assert "Allowed now: <strong>$22.50 to $27.50</strong>" in html
    assert "$25.00 → " in html and "Demand is inelastic enough" in html
    assert 'data-action="approve"' in html and 'data-action="reject"' in html
    assert 'id="what-if-grid"' in html


def test_the_what_if_equals_the_engines_prediction_for_the_same_input(priced, merchant, merchant_manager):
    # given
    product, _ = priced
    item = product_pricing(merchant=merchant, product=product).pricing_input

    # when
    response = _login(merchant_manager).get(_product_url(product), {"price": "27.40"})

    # then
    html = response.content.decode()
    expected = what_if(item, 27.40, draws=400, seed=0)
    current = what_if(item, 25.0, draws=400, seed=0)
    assert response.status_code == 200
    assert _figure(html, "what-if-price") == "$27.40"
    assert _figure(html, "units") == f"{expected.units.expected:.1f}"
    assert _figure(html, "units-interval") == f"{expected.units.lower:.1f} to {expected.units.upper:.1f}"
    assert _figure(html, "profit") == _money_text(expected.profit.expected, "USD")
    assert _figure(html, "profit-interval") == (
        f"{_money_text(expected.profit.lower, 'USD')} to {_money_text(expected.profit.upper, 'USD')}"
    )
    assert _figure(html, "revenue") == _money_text(expected.revenue.expected, "USD")
    delta = expected.profit.expected - current.profit.expected
    assert _figure(html, "profit-delta") == ("+" if delta >= 0 else "−") + _money_text(abs(delta), "USD")
    assert 'data-marker="what-if" data-x="27.4"' in html


def test_the_what_if_names_the_guardrails_a_price_would_break(priced, merchant, merchant_manager):
    # given
    product, _ = priced
    GuardrailFactory(merchant=merchant, price_ceiling=Decimal("26.00"))

    # when
    html = _login(merchant_manager).get(_product_url(product), {"price": "30.00"}).content.decode()

    # then
    box = re.search(r'data-figure="what-if-guardrails">.*?</div>', html, re.S).group(0)
    assert "breaks 1 guardrail" in box and "30.00 is above the price ceiling 26.00." in box


@pytest.mark.parametrize(
    ("price", "error"),
    [
        ("-5", "A price is above zero."),
        ("0", "A price is above zero."),
        ("cheap", "Enter a price as a number"),
        ("NaN", "Enter a price as a number"),
        ("1e400", "That price is too large."),
        ("9999999", "Try a price up to 375.00"),  # 10 × the top of the default ±50% range
        ("25.001", "at most two decimals"),
    ],
)
def test_a_bad_what_if_price_is_a_form_error_on_the_page(priced, merchant_manager, price, error):
    # given
    product, _ = priced

    # when
    response = _login(merchant_manager).get(_product_url(product), {"price": price})

    # then
    html = response.content.decode()
    assert response.status_code == 400
    assert error in re.search(r'class="field-error"[^>]*>([^<]*)<', html).group(1)
    assert _figure(html, "what-if-price") == "$25.00"  # the page still shows today's price


def test_a_product_without_an_estimate_says_why(merchant, merchant_manager):
    # given
    DemandModelRunFactory(merchant=merchant)
    product = ProductFactory(merchant=merchant, sku="NEW-1")

    # when
    response = _login(merchant_manager).get(_product_url(product), {"price": "20"})

    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert "No elasticity estimate for this product." in html
    assert "had no sales history for this product" in html
    assert "No demand estimate for this product" not in html  # no empty charts, the section is left out


def test_approving_puts_the_price_live_and_comes_back_with_a_message(priced, merchant_manager):
    # given
    product, proposal = priced
    url = _product_url(product)

    # when
    response = _login(merchant_manager).post(
        reverse("pricing:approve", args=[proposal.pk]), {"note": "Looks right", "next": url}, follow=True
    )

    # then
    assert response.redirect_chain[-1][0] == url
    html = response.content.decode()
    assert "Two-person tent is now $26.50 (was $25.00)." in html
    product.refresh_from_db()
    proposal.refresh_from_db()
    assert product.price == Decimal("26.50")
    assert proposal.status == ProposalStatus.APPROVED and proposal.decision_note == "Looks right"
    change = PriceChange.objects.get(product=product)
    assert (change.from_price, change.to_price, change.actor) == (Decimal("25.00"), Decimal("26.50"), merchant_manager)


def test_a_guardrail_refusal_is_shown_and_nothing_changes(priced, merchant, merchant_manager):
    # given: a ceiling set after the proposal was made
    product, proposal = priced
    GuardrailFactory(merchant=merchant, price_ceiling=Decimal("26.00"))

    # when
    response = _login(merchant_manager).post(reverse("pricing:approve", args=[proposal.pk]), follow=True)

    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert "Nothing changed: the price would break a guardrail." in html
    assert "26.50 is above the price ceiling 26.00." in html
    product.refresh_from_db()
    assert product.price == Decimal("25.00") and not PriceChange.objects.exists()


def test_approving_a_decided_proposal_is_refused_with_its_reason(priced, merchant_manager):
    # given
    product, proposal = priced
    client = _login(merchant_manager)
    client.post(reverse("pricing:reject", args=[proposal.pk]), {"note": "Not now"})

    # when
    response = client.post(reverse("pricing:approve", args=[proposal.pk]), follow=True)

    # then
    assert "Nothing changed. This proposal is rejected" in response.content.decode()
    product.refresh_from_db()
    assert product.price == Decimal("25.00")


def test_rejecting_keeps_the_price_and_a_too_long_note_is_refused(priced, merchant_manager):
    # given
    product, proposal = priced
    client = _login(merchant_manager)

    # when
    too_long = client.post(reverse("pricing:reject", args=[proposal.pk]), {"note": "x" * 501}, follow=True)
    proposal.refresh_from_db()
    status_after_bad_note = proposal.status
    rejected = client.post(reverse("pricing:reject", args=[proposal.pk]), {"note": "Too soon"}, follow=True)

    # then
    assert "Nothing changed." in too_long.content.decode() and status_after_bad_note == ProposalStatus.PENDING
    assert "Proposal rejected: Two-person tent stays at $25.00." in rejected.content.decode()
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.REJECTED


def test_rolling_back_needs_a_reason_and_restores_the_previous_price(priced, merchant_manager):
    # given
    product, proposal = priced
    client = _login(merchant_manager)
    client.post(reverse("pricing:approve", args=[proposal.pk]))
    change = PriceChange.objects.get(product=product)
    url = reverse("pricing:rollback", args=[change.pk])

    # when
    without_reason = client.post(url, {"reason": "  "}, follow=True)
    product.refresh_from_db()
    price_after_refusal = product.price
    with_reason = client.post(url, {"reason": "Sales dropped"}, follow=True)

    # then
    assert "Say why you roll this change back" in without_reason.content.decode()
    assert price_after_refusal == Decimal("26.50")
    assert "Rolled back: Two-person tent is $25.00 again." in with_reason.content.decode()
    product.refresh_from_db()
    assert product.price == Decimal("25.00")
    rollback = PriceChange.objects.get(reverts=change)
    assert rollback.source == PriceChangeSource.ROLLBACK and "Sales dropped" in rollback.reason


def test_a_rollback_of_another_shops_change_is_not_found(priced, merchant_manager, other_merchant):
    # given
    theirs = ProductFactory(merchant=other_merchant)
    change = PriceChange.objects.create(
        merchant=other_merchant, product=theirs, from_price=Decimal("10"), to_price=Decimal("11"),
        source=PriceChangeSource.APPROVED, reason="x", created_at=timezone.now(),
    )  # fmt: skip

    # when
    response = _login(merchant_manager).post(reverse("pricing:rollback", args=[change.pk]), {"reason": "mine now"})

    # then
    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.price == Decimal("25.00") and PriceChange.objects.count() == 1


def test_an_outside_next_is_ignored(priced, merchant_manager):
    # given
    product, proposal = priced

    # when
    response = _login(merchant_manager).post(
        reverse("pricing:reject", args=[proposal.pk]), {"next": "https://evil.example/pricing/"}
    )

    # then
    assert response["Location"] == _product_url(product)


def test_refit_enqueues_the_fit_on_commit_once(
    merchant, merchant_manager, monkeypatch, django_capture_on_commit_callbacks
):
    # given
    queued: list[int] = []
    monkeypatch.setattr("pricing.views.demand_model_fit_task.delay", lambda merchant_id: queued.append(merchant_id))
    client = _login(merchant_manager)

    # when
    with django_capture_on_commit_callbacks(execute=True):
        first = client.post(REFIT, follow=True)
    DemandModelRunFactory(merchant=merchant, status=ModelRunStatus.RUNNING, progress=0.3, finished_at=None)
    with django_capture_on_commit_callbacks(execute=True):
        second = client.post(REFIT, follow=True)

    # then
    assert queued == [merchant.pk]
    assert "Refit queued" in first.content.decode()
    html = second.content.decode()
    assert "A fit is already running (30% done)" in html
    assert 'aria-valuenow="30"' in html and 'data-model-status="running"' in html


def test_posts_need_the_csrf_token(priced, merchant_manager):
    # given
    _, proposal = priced
    client = Client(enforce_csrf_checks=True)
    client.force_login(merchant_manager)

    # when
    response = client.post(reverse("pricing:approve", args=[proposal.pk]))

    # then
    assert response.status_code == 403
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.PENDING


def test_get_is_not_allowed_on_actions(priced, merchant_manager):
    # given
    _, proposal = priced

    # when
    response = _login(merchant_manager).get(reverse("pricing:approve", args=[proposal.pk]))

    # then
    assert response.status_code == 405


def test_a_stalled_fit_does_not_block_a_refit(
    merchant, merchant_manager, monkeypatch, django_capture_on_commit_callbacks
):
    # given: a run its worker never finished, three hours ago
    queued: list[int] = []
    monkeypatch.setattr("pricing.views.demand_model_fit_task.delay", lambda merchant_id: queued.append(merchant_id))
    DemandModelRunFactory(
        merchant=merchant, status=ModelRunStatus.RUNNING, progress=0.5, finished_at=None,
        started_at=timezone.now() - timedelta(hours=3),
    )  # fmt: skip
    client = _login(merchant_manager)

    # when
    overview = client.get(OVERVIEW).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(REFIT)

    # then
    assert 'data-model-status="stalled"' in overview and "never finished" in overview
    assert queued == [merchant.pk]


def test_a_sku_with_a_slash_and_spaces_has_its_page(merchant, merchant_manager):
    # given
    product = ProductFactory(merchant=merchant, sku="TENT/2P blue", title="Blue tent")
    PriceProposalFactory(merchant=merchant, product=product)

    # when
    overview = _login(merchant_manager).get(OVERVIEW).content.decode()
    page = _login(merchant_manager).get(_product_url(product))

    # then
    assert _product_url(product) == "/pricing/products/TENT/2P%20blue/"
    assert f'href="{_product_url(product)}"' in overview
    assert page.status_code == 200 and "Blue tent" in page.content.decode()
