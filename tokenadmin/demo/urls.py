"""Mounted at /demo-provider/ by tokenadmin/urls.py only when TOKENADMIN_DEMO is on.

In DOT's namespace, because its views reverse their own names there.
"""

from django.urls import path
from oauth2_provider import views as dot

from tokenadmin.demo import views

app_name = "oauth2_provider"

urlpatterns = [
    path("login/", views.login, name="demo-login"),
    path("authorize/", views.DemoAuthorizationView.as_view(), name="authorize"),
    path("token/", dot.TokenView.as_view(), name="token"),
    path("revoke_token/", dot.RevokeTokenView.as_view(), name="revoke-token"),
    path("userinfo/", views.userinfo, name="demo-userinfo"),
]
