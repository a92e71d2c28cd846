from django.urls import path

from .proposals import PriceChangeRollbackView, ProposalApproveView, ProposalListView, ProposalRejectView
from .storefront import CompetitorPricesImportView, CompetitorPricesView, LivePricesView

urlpatterns = [
    # The storefront (API key).
    path("prices", LivePricesView.as_view(), name="api-prices"),
    path("competitor-prices", CompetitorPricesView.as_view(), name="api-competitor-prices"),
    path("competitor-prices/import", CompetitorPricesImportView.as_view(), name="api-competitor-prices-import"),
    # The approval workflow (signed-in managers, never API keys).
    path("price-proposals", ProposalListView.as_view(), name="api-price-proposals"),
    path("price-proposals/<int:proposal_id>/approve", ProposalApproveView.as_view(), name="api-price-proposal-approve"),
    path("price-proposals/<int:proposal_id>/reject", ProposalRejectView.as_view(), name="api-price-proposal-reject"),
    path("price-changes/<int:change_id>/rollback", PriceChangeRollbackView.as_view(), name="api-price-change-rollback"),
]
