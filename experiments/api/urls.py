from django.urls import path

from .views import AssignView

urlpatterns = [path("experiments/assign", AssignView.as_view(), name="api-experiments-assign")]
