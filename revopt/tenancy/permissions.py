from rest_framework.permissions import BasePermission

from .models import ApiKey


class HasMerchantApiKey(BasePermission):
    message = "A merchant API key is required."

    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, ApiKey)
