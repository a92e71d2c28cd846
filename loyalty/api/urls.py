from django.urls import path  # noqa: F401

from .points import LoyaltyActionView, LoyaltyCustomerView, LoyaltyRedeemView  # noqa: E402

urlpatterns: list = [
    path("loyalty/customers/<str:customer_id>", LoyaltyCustomerView.as_view(), name="api-loyalty-customer"),
    path("loyalty/redeem", LoyaltyRedeemView.as_view(), name="api-loyalty-redeem"),
    path("loyalty/actions", LoyaltyActionView.as_view(), name="api-loyalty-actions"),
]
