"""A test-only OAuth 2.0 / OpenID Connect authorization server (django-oauth-toolkit).

It runs as a separate process (``python -m tests.authserver.serve``) so the product talks to it
over real HTTP, exactly as it talks to a provider. ``harness.AuthServer`` starts and controls it;
``pytest_plugin`` exposes it as fixtures. Never deploy this: its control endpoints are
unauthenticated.
"""
