"""Calls made with a token: userinfo, health canaries, introspection (RFC 7662)."""

from typing import Any

from connections.oauth.http import Client, get_json, send


def fetch_userinfo(url: str, *, access_token: str, timeout: float | None = None) -> dict[str, Any]:
    """OpenID Connect UserInfo (OIDC Core §5.3) or any JSON 'who am I' endpoint."""
    return get_json(url, headers={"Authorization": f"Bearer {access_token}"}, timeout=timeout)


def probe(url: str, *, access_token: str, timeout: float | None = None) -> int:
    """GET `url` with the access token as a health canary; return the (2xx) status.

    401 and 403 are permanent (the token or grant is rejected); other failures are transient.
    """
    headers = {"Authorization": f"Bearer {access_token}"}
    return send("GET", url, headers=headers, timeout=timeout).status_code


def introspect(client: Client, url: str, *, token: str, hint: str) -> dict[str, Any]:
    """RFC 7662 token introspection, authenticated as the client."""
    data = {"token": token, "token_type_hint": hint}
    auth = None
    if client.auth_method == "client_secret_post":
        data |= {"client_id": client.client_id, "client_secret": client.client_secret}
    elif client.auth_method == "none":  # a public client names itself (RFC 6749 §3.2.1)
        data["client_id"] = client.client_id
    else:
        auth = (client.client_id, client.client_secret)
    return get_json(url, headers={}, timeout=client.timeout, method="POST", data=data, auth=auth)
