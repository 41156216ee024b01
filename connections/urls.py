from django.urls import path

from connections import api, views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("connections/<slug:slug>/authorize/", views.authorize, name="connection-authorize"),
    path("oauth/callback/", views.oauth_callback, name="oauth-callback"),
    path("reauth/<str:token>/", views.reauth, name="reauth"),
    path("healthz", views.healthz, name="healthz"),
    path("api/v1/connections", api.connection_list, name="api-connection-list"),
    path("api/v1/connections/<slug:slug>", api.connection_detail, name="api-connection-detail"),
    path("api/v1/connections/<slug:slug>/token", api.token, name="api-token"),
    path("api/v1/connections/<slug:slug>/refresh", api.refresh, name="api-refresh"),
]
