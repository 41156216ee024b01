from django.urls import path

from connections import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("connections/<slug:slug>/authorize/", views.authorize, name="connection-authorize"),
    path("oauth/callback/", views.oauth_callback, name="oauth-callback"),
    path("reauth/<str:token>/", views.reauth, name="reauth"),
    path("healthz", views.healthz, name="healthz"),
]
