"""The production URLs plus two reference endpoints the benchmark measures beside the recommendations:

- `/bench/bare`: the cheapest Django answer (a tiny JsonResponse through the whole middleware stack),
  the floor the issue's target compares to;
- `/bench/auth`: a DRF view behind the storefront's API-key authentication, answering the same tiny
  body: what any authenticated storefront endpoint pays before doing its own work.
"""

from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


def bare(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


class AuthenticatedHello(APIView):
    def get(self, request: Request) -> Response:
        return Response({"ok": True, "merchant": request.user.merchant.slug})


urlpatterns = [
    path("bench/bare", bare, name="bench-bare"),
    path("bench/auth", AuthenticatedHello.as_view(), name="bench-auth"),
    path("", include("revopt.urls")),
]
