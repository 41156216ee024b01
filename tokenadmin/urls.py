from django.conf import settings
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("connections.urls")),
    path("", include("alerts.urls")),
]
if settings.TOKENADMIN_DEMO:
    # `make demo` only: the built-in demo authorization server (tokenadmin/demo/).
    urlpatterns.append(path("demo-provider/", include("tokenadmin.demo.urls")))

handler404 = "connections.api.not_found"
