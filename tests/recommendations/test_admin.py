import pytest

from recommendations.models import (
    PlacementItemRule,
    PlacementRule,
    RecommenderSettings,
    RecommenderVersion,
    VersionStatus,
)
from revopt.tenancy.models import AuditLogEntry
from tests.factories.catalog import CategoryFactory, ProductFactory
from tests.factories.recommendations import RecommenderVersionFactory

pytestmark = pytest.mark.django_db

VERSIONS_URL = "/admin/recommendations/recommenderversion/"
TRAIN_URL = "/admin/recommendations/recommenderversion/train-now/"


@pytest.fixture
def manager_client(client, merchant_manager):
    client.force_login(merchant_manager)
    return client


@pytest.fixture
def platform_client(client, platform_admin):
    client.force_login(platform_admin)
    return client


def test_manager_sees_only_their_merchants_versions(manager_client, merchant, other_merchant):
    # given
    RecommenderVersionFactory(
        merchant=merchant,
        number=4,
        status=VersionStatus.ACTIVE,
        metrics={
            "ndcg@10": 0.1234,
            "promotion": {"against": "active v3", "candidate": 0.1234, "baseline": 0.1, "holdout": "same"},
        },
        interaction_count=12_345,
    )
    RecommenderVersionFactory(merchant=other_merchant, number=99, interaction_count=777_777)

    # when
    response = manager_client.get(VERSIONS_URL)

    # then
    assert response.status_code == 200
    content = response.content.decode()
    assert response.context["cl"].result_count == 1
    assert "0.1234 vs active v3 0.1000 (+23.4%, same holdout)" in content and "12,345" in content
    assert "777,777" not in content
    assert "Train now" in content


def test_manager_cannot_open_another_merchants_version(manager_client, other_merchant):
    # given
    theirs = RecommenderVersionFactory(merchant=other_merchant)

    # when
    response = manager_client.get(f"{VERSIONS_URL}{theirs.pk}/change/")

    # then
    assert response.status_code == 302 and response.url == "/admin/"


def test_the_detail_page_shows_the_metrics_and_the_evaluation_table(manager_client, merchant):
    # given
    version = RecommenderVersionFactory(
        merchant=merchant,
        metrics={"ndcg@10": 0.2, "holdout_users": 42, "popularity_on_same_holdout": {"ndcg@10": 0.05}},
        evaluation=[
            {"ranker": "revopt", "seeds": 3, "ndcg@10": 0.21, "ndcg@10_sd": 0.004},
            {"ranker": "item-knn", "seeds": 3, "ndcg@10": 0.17, "ndcg@10_sd": 0.0},
        ],
    )

    # when
    response = manager_client.get(f"{VERSIONS_URL}{version.pk}/change/")

    # then
    assert response.status_code == 200
    content = response.content.decode()
    assert "42 customers in the holdout" in content
    assert "<td>ndcg@10</td><td>0.2000</td><td>0.0500</td>" in content
    assert "<th>ranker</th><th>seeds</th><th>ndcg@10</th></tr>" in content
    assert "<td>revopt</td><td>3</td><td>0.2100 ± 0.0040</td>" in content
    assert "Save" not in content  # read-only: versions change only through the registry


def test_the_activate_action_rolls_back_through_the_service(manager_client, merchant, merchant_manager):
    # given
    retired = RecommenderVersionFactory(merchant=merchant, number=1, status=VersionStatus.RETIRED)
    active = RecommenderVersionFactory(merchant=merchant, number=2, status=VersionStatus.ACTIVE)

    # when
    response = manager_client.post(VERSIONS_URL, {"action": "activate", "_selected_action": [retired.pk]}, follow=True)

    # then
    assert response.status_code == 200
    retired.refresh_from_db()
    active.refresh_from_db()
    assert retired.status == VersionStatus.ACTIVE and active.status == VersionStatus.RETIRED
    entry = AuditLogEntry.objects.for_merchant(merchant).get(action="recommender_version.activated")
    assert entry.actor == merchant_manager
    assert "now serves" in response.content.decode()


def test_the_activate_action_explains_a_refusal(manager_client, merchant):
    # given
    failed = RecommenderVersionFactory(merchant=merchant, number=1, status=VersionStatus.FAILED, artifact=None)

    # when
    response = manager_client.post(VERSIONS_URL, {"action": "activate", "_selected_action": [failed.pk]}, follow=True)

    # then
    failed.refresh_from_db()
    assert failed.status == VersionStatus.FAILED
    assert "only candidate or retired versions" in response.content.decode()


def test_the_activate_action_cannot_reach_another_merchants_version(manager_client, other_merchant):
    # given
    theirs = RecommenderVersionFactory(merchant=other_merchant, number=1, status=VersionStatus.RETIRED)

    # when
    manager_client.post(VERSIONS_URL, {"action": "activate", "_selected_action": [theirs.pk]}, follow=True)

    # then
    theirs.refresh_from_db()
    assert theirs.status == VersionStatus.RETIRED


def test_train_now_queues_a_training_of_the_managers_merchant(manager_client, merchant, merchant_manager):
    # when: tasks run eagerly in tests; without a data-quality report the training fails at the gate
    response = manager_client.post(TRAIN_URL)

    # then
    assert response.status_code == 302 and response.url == VERSIONS_URL
    version = RecommenderVersion.objects.get()
    assert version.merchant == merchant and version.trigger == "admin" and version.created_by == merchant_manager


def test_a_platform_admin_chooses_the_merchant_to_train(platform_client, other_merchant):
    # when
    form = platform_client.get(TRAIN_URL)
    response = platform_client.post(TRAIN_URL, {"merchant": other_merchant.pk})

    # then
    assert form.status_code == 200 and "merchant" in form.context["form"].fields
    assert response.status_code == 302
    assert RecommenderVersion.objects.get().merchant == other_merchant


def test_a_support_agent_cannot_train(client, support_agent):
    # given
    client.force_login(support_agent)

    # when
    response = client.post(TRAIN_URL)

    # then
    assert response.status_code == 403
    assert not RecommenderVersion.objects.exists()


def test_settings_weights_are_validated(manager_client, merchant):
    # given
    url = "/admin/recommendations/recommendersettings/add/"
    form = {
        "half_life_days": 30,
        "training_window_days": 180,
        "promotion_tolerance": 0.02,
        "new_arrival_days": 14,
    }

    # when
    bad = manager_client.post(url, {**form, "feedback_weights": '{"view": 1, "like": 3}'})
    good = manager_client.post(url, {**form, "feedback_weights": '{"view": 1, "purchase": 10}'})

    # then
    assert bad.status_code == 200 and "Unknown feedback kinds: like" in bad.content.decode()
    assert good.status_code == 302
    settings = RecommenderSettings.objects.for_merchant(merchant).get()
    assert settings.feedback_weights == {"view": 1.0, "purchase": 10.0}
    assert manager_client.get(url).status_code == 403  # one row per merchant: edit it instead


def test_saving_a_placement_rule_goes_through_the_service(manager_client, merchant, other_merchant):
    # given
    mine = CategoryFactory(merchant=merchant, name="Coffee", path="Coffee")
    theirs = CategoryFactory(merchant=other_merchant, name="Secret", path="Secret")
    form = {
        "placement": "pdp",
        "exclude_purchased": "on",
        "impression_discount": 0.8,
        "impression_window_days": 7,
        "default_k": 8,
        "max_per_category": 3,
    }

    # when
    offered = manager_client.get("/admin/recommendations/placementrule/add/").content.decode()
    response = manager_client.post(
        "/admin/recommendations/placementrule/add/", {**form, "repurchasable_categories": [mine.pk]}
    )

    # then
    assert "Coffee" in offered and "Secret" not in offered
    assert response.status_code == 302
    rule = PlacementRule.objects.for_merchant(merchant).get()
    assert rule.default_k == 8 and rule.max_per_category == 3 and rule.impression_discount == 0.8
    assert list(rule.repurchasable_categories.all()) == [mine]
    assert AuditLogEntry.objects.for_merchant(merchant).filter(action="placement_rule.saved").count() == 1
    assert theirs not in rule.allowed_categories.all()


def test_item_rules_are_created_and_deleted_through_the_service(manager_client, merchant):
    # given
    product = ProductFactory(merchant=merchant)
    url = "/admin/recommendations/placementitemrule/"

    # when
    missing_position = manager_client.post(f"{url}add/", {"product": product.pk, "action": "pin", "placement": "home"})
    created = manager_client.post(
        f"{url}add/", {"product": product.pk, "action": "pin", "placement": "home", "position": 1}
    )
    rule = PlacementItemRule.objects.for_merchant(merchant).get()
    deleted = manager_client.post(f"{url}{rule.pk}/delete/", {"post": "yes"})

    # then
    assert missing_position.status_code == 200 and "A pin needs a position." in missing_position.content.decode()
    assert created.status_code == 302 and deleted.status_code == 302
    assert not PlacementItemRule.objects.exists()
    actions = set(AuditLogEntry.objects.for_merchant(merchant).values_list("action", flat=True))
    assert {"placement_item_rule.created", "placement_item_rule.deleted"} <= actions
