"""Teaches drf-spectacular how storefront requests authenticate, so /api/schema/ documents the key."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "revopt.tenancy.authentication.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "The merchant's storefront API key (`rvk_…`); `X-Api-Key: <key>` works too.",
        }
