from django.urls import path

from connections import api, openapi, ops_views, views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("connections/<slug:slug>/authorize/", views.authorize, name="connection-authorize"),
    path("oauth/callback/", views.oauth_callback, name="oauth-callback"),
    path("oauth/confirm/<str:token>/", views.confirm_grant, name="oauth-confirm"),
    path("reauth/<str:token>/", views.reauth, name="reauth"),
    path("healthz", ops_views.healthz, name="healthz"),
    path("metrics", ops_views.metrics, name="metrics"),
    path("api/v1/openapi.json", openapi.openapi_document, name="api-openapi"),
    path("api/v1/connections", api.connection_list, name="api-connection-list"),
    path("api/v1/connections/<slug:slug>", api.connection_detail, name="api-connection-detail"),
    path("api/v1/connections/<slug:slug>/token", api.token, name="api-token"),
    path(
        "api/v1/connections/<slug:slug>/token/rejected",
        api.token_rejected,
        name="api-token-rejected",
    ),
    path("api/v1/connections/<slug:slug>/refresh", api.refresh, name="api-refresh"),
]
