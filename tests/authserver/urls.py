from django.contrib.auth.views import LoginView
from django.urls import include, path

from tests.authserver import views

control_patterns = [
    path("clients/", views.create_client),
    path("users/", views.create_user),
    path("faults/", views.set_faults),
    path("stats/", views.stats),
    path("reset/", views.reset),
    path("age/", views.age),
    path("revoke-all/", views.revoke_all),
]

urlpatterns = [
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    path("accounts/login/", LoginView.as_view(), name="login"),
    path("control/", include(control_patterns)),
]
