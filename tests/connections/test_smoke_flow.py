from django.utils import timezone

from connections.lifecycle import get_access_token
from connections.models import Connection


def test_it_authorizes_and_refreshes(authorized_connection, auth_server_clean):
    c = authorized_connection
    assert c.refresh_token and c.access_token and c.account_id == "1"
    Connection.objects.filter(pk=c.pk).update(access_expires_at=timezone.now())
    old_refresh = c.refresh_token
    fresh = get_access_token(c)
    assert fresh.access_token != c.access_token
    assert fresh.refresh_token != old_refresh
    assert auth_server_clean.stats()["refresh_calls"] == 1
