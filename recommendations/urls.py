from django.urls import path

from . import views

app_name = "recommendations"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("versions", views.versions, name="versions"),
]
