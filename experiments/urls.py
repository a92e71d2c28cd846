from django.urls import path

from . import views

app_name = "experiments"
urlpatterns = [
    path("", views.experiment_list, name="list"),
    # Before "<key>/", so the planner always wins: an experiment keyed "plan" has no results page here.
    path("plan/", views.plan, name="plan"),
    path("<slug:key>/", views.results, name="results"),
    path("<slug:key>/refresh", views.refresh, name="refresh"),
    path("<slug:key>/start", views.start, name="start"),
    path("<slug:key>/stop", views.stop, name="stop"),
    path("<slug:key>/roll-out", views.roll_out, name="roll_out"),
]
