from django.urls import path

from .views import support

app_name = "support"

urlpatterns = [
    path("", support.search, name="search"),
    path("customers/<int:customer_id>/", support.profile, name="profile"),
    path("customers/<int:customer_id>/points", support.adjust_points, name="adjust_points"),
    path("customers/<int:customer_id>/export", support.export, name="export"),
    path("customers/<int:customer_id>/erase", support.erase, name="erase"),
]
