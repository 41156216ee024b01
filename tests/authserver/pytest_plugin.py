"""Fixtures for the test authorization server.

Enable with ``pytest_plugins = ["tests.authserver.pytest_plugin"]`` in ``tests/conftest.py``.
"""

from collections.abc import Iterator

import pytest

from tests.authserver.harness import AuthServer


@pytest.fixture(scope="session")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    server = AuthServer.start(tmp_path_factory.mktemp("authserver"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def auth_server_clean(auth_server: AuthServer) -> AuthServer:
    """The shared server with faults, latency and counters cleared for this test."""
    auth_server.reset()
    return auth_server
