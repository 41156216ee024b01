from django.urls import path

from connections import api, dashboard, openapi, ops_views, views
from connections.pages import actions, detail, edit

urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("connections/<slug:slug>/authorize/", views.authorize, name="connection-authorize"),
    # The connection pages ("add" and "discover" first: they would also match a slug).
    path("connections/add/", edit.connection_add, name="connection-add"),
    path("connections/discover/", edit.connection_discover, name="connection-discover"),
    path("connections/<slug:slug>/", detail.connection_detail, name="connection-detail"),
    path("connections/<slug:slug>/edit/", edit.connection_edit, name="connection-edit"),
    path("connections/<slug:slug>/refresh/", actions.refresh_now, name="connection-refresh"),
    path("connections/<slug:slug>/check/", actions.check_now, name="connection-check"),
    path("connections/<slug:slug>/link/", actions.copy_link, name="connection-link"),
    path("connections/<slug:slug>/email-link/", actions.email_link, name="connection-email-link"),
    path("connections/<slug:slug>/test-alert/", actions.test_alert, name="connection-test-alert"),
    path("connections/<slug:slug>/disable/", actions.disable, name="connection-disable"),
    path("connections/<slug:slug>/enable/", actions.enable, name="connection-enable"),
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
