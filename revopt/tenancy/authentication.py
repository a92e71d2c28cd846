from dataclasses import dataclass

from rest_framework import authentication, exceptions
from rest_framework.request import Request

from .models import ApiKey, Merchant
from .selectors import api_key_for_raw_key_cached
from .services import api_key_mark_used


@dataclass(frozen=True)
class StorefrontClient:
    """The caller behind a valid API key: a shop's storefront, never a person."""

    merchant: Merchant
    api_key: ApiKey
    is_authenticated: bool = True
    is_staff: bool = False

    @property
    def pk(self) -> str:
        return f"storefront:{self.api_key.prefix}"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[StorefrontClient, ApiKey] | None:
        raw_key = request.headers.get("X-Api-Key", "")
        if not raw_key:
            header = request.headers.get("Authorization", "")
            if not header:
                return None
            scheme, _, credentials = header.partition(" ")
            if scheme.lower() not in ("bearer", "api-key") or not credentials.strip():
                raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <api key>'.")
            raw_key = credentials.strip()
        api_key = api_key_for_raw_key_cached(raw_key=raw_key)
        if api_key is None:
            raise exceptions.AuthenticationFailed("API key is invalid or revoked.")
        api_key_mark_used(api_key=api_key)
        return StorefrontClient(merchant=api_key.merchant, api_key=api_key), api_key

    def authenticate_header(self, request: Request) -> str:
        return self.keyword
