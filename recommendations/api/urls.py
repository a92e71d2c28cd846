from django.urls import path

from .views import RecommendationListView, SearchRerankView

urlpatterns = [
    path("recommendations", RecommendationListView.as_view(), name="recommendation-list"),
    path("recommendations/rerank", SearchRerankView.as_view(), name="recommendation-rerank"),
]
