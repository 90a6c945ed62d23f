"""URL map: the admin, and the daemons' API under /api/ (see supervisors.api.urls)."""

from django.contrib import admin
from django.urls import path

urlpatterns = [
    path("admin/", admin.site.urls),
]
