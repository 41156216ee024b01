from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("connections.urls")),
    path("", include("alerts.urls")),
]

handler404 = "connections.api.not_found"
