from django.urls import path  # noqa: F401

from .offers import OfferCodeView, OfferDecideView, OfferRedeemView  # noqa: E402
from .points import LoyaltyActionView, LoyaltyCustomerView, LoyaltyRedeemView  # noqa: E402
from .recovery import RecoveryMessageAckView, RecoveryMessagesView  # noqa: E402

urlpatterns: list = [
    path("loyalty/customers/<str:customer_id>", LoyaltyCustomerView.as_view(), name="api-loyalty-customer"),
    path("loyalty/redeem", LoyaltyRedeemView.as_view(), name="api-loyalty-redeem"),
    path("loyalty/actions", LoyaltyActionView.as_view(), name="api-loyalty-actions"),
    path("recovery/messages/take", RecoveryMessagesView.as_view(), name="api-recovery-messages"),
    path("recovery/messages/<int:message_id>/ack", RecoveryMessageAckView.as_view(), name="api-recovery-message-ack"),
    path("offers/decide", OfferDecideView.as_view(), name="api-offers-decide"),
    path("offers/redeem", OfferRedeemView.as_view(), name="api-offers-redeem"),
    path("offers/<str:code>", OfferCodeView.as_view(), name="api-offers-code"),
]
