from django.urls import path

from . import views

app_name = "pricing"
urlpatterns = [
    path("", views.overview, name="index"),
    path("refit", views.refit, name="refit"),
    path("products/<path:sku>/", views.product, name="product"),
    path("proposals/<int:proposal_id>/approve", views.approve, name="approve"),
    path("proposals/<int:proposal_id>/reject", views.reject, name="reject"),
    path("changes/<int:change_id>/rollback", views.rollback, name="rollback"),
]
