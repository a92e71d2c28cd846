from django.urls import path

from . import views

app_name = "funnel"
urlpatterns: list = [
    path("", views.funnel_overview, name="index"),
]
