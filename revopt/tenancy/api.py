"""Base view for storefront endpoints: the merchant always comes from the API key."""

from rest_framework.views import APIView

from .models import Merchant


class MerchantAPIView(APIView):
    @property
    def merchant(self) -> Merchant:
        return self.request.auth.merchant
