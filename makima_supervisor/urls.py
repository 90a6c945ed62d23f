"""URL map: the admin, and the daemons' API under /api/ (see supervisors.api.urls)."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from supervisors.api.views.health import healthz, readyz
from supervisors.metrics.view import metrics

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(("supervisors.api.urls", "api"), namespace="api")),
    path("api/schema/", SpectacularAPIView.as_view(throttle_classes=[]), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema", throttle_classes=[]), name="api-docs"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics, name="metrics"),
]

handler404 = "supervisors.api.errors.not_found_view"
