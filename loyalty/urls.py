from django.urls import path

from .views import screens

app_name = "loyalty"

urlpatterns: list = [
    path("", screens.overview, name="index"),
]
