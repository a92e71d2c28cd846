from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

api_v1 = [
    path("", include("catalog.api.urls")),
    path("", include("events.api.urls")),
    path("", include("recommendations.api.urls")),
    path("", include("experiments.api.urls")),
    path("", include("pricing.api.urls")),
    path("", include("loyalty.api.urls")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("recommendations/", include("recommendations.urls")),
    path("experiments/", include("experiments.urls")),
    path("pricing/", include("pricing.urls")),
    path("loyalty/", include("loyalty.urls")),
    path("support/", include("loyalty.support_urls")),
    path("funnel/", include("events.urls")),
    path("", include("revopt.dashboard.urls")),
]
