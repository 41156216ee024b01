"""Every preset against a local fake of its provider's token endpoint (issue 9, "What it must
show"): the fake enforces the provider's documented request shape and answers in its documented
response shape (`contracts.py`, written from the provider reference, not from presets.json).

For each preset: a connection is made from the preset as a user would (the CLI, admin and
dashboard all call `services.connection_create`), then its endpoints are pointed at the fake.
That step is explicit on purpose: the documented hosts (oauth2.googleapis.com, a tenant's
login.microsoftonline.com, {shop}.myshopify.com, ...) are not ours to call from a test, so the
token URL the preset produced is first checked against the documented one and then replaced by
the fake's address with the same path (`services.provider_update`, the admin's edit path). The
consent URL is never fetched: the fake reads it as the provider's consent page would.

Then, under a clock that only moves when told (time-machine): consent and the code exchange, two
refreshes on demand as a pipeline would ask, and a revoked grant. Checked: the wire shape (no
violation at the fake), both expiries and their sources, the expiry's kind and the
reauthorize-by date, rotation kept or learned, the rotated-away refresh token never sent again,
and `needs_reauth` from the provider's own dead-grant answer.
"""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests
import time_machine

from connections.authorize import complete_authorization, start_authorization
from connections.confirmations import confirm_held_grant
from connections.lifecycle import NeedsReauth, get_access_token
from connections.models import Connection, RefreshAttempt
from connections.models.connection import DeadlineSource
from connections.presets import list_presets
from connections.services import connection_create, provider_update
from tests.providers.contract_server import ContractServer
from tests.providers.contracts import CLIENT_ID, CLIENT_SECRET, CONTRACTS, Contract

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 9, 1, 9, 0, tzinfo=UTC)
BROWSER = "browser-secret-of-the-person-consenting"
ENDPOINT_FIELDS = ("token_url", "userinfo_url", "revoke_url", "introspect_url")


@pytest.fixture
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def reload(connection: Connection) -> Connection:
    return Connection.objects.select_related("provider").get(pk=connection.pk)


def connect(contract: Contract, fake: ContractServer) -> Connection:
    """Create the connection from the preset, point it at the fake, consent, exchange the code."""
    saved = connection_create(
        name=f"{contract.slug} export",
        client_id=CLIENT_ID,
        client_secret="" if contract.auth == {"none"} else CLIENT_SECRET,  # a public client
        preset=contract.slug,
        preset_params=contract.params,
    )
    provider = saved.connection.provider
    assert provider.token_url == contract.token_url, "the preset's token URL is not the documented"
    provider_update(
        provider=provider,
        changes={
            name: fake.url_for(getattr(provider, name))
            for name in ENDPOINT_FIELDS
            if getattr(provider, name)
        },
    )
    connection = reload(saved.connection)
    code, state = fake.consent(start_authorization(connection, browser_secret=BROWSER))
    result = complete_authorization(state=state, code=code, error="", browser_secret=BROWSER)
    if result.held is not None:
        # Nothing names the account (no id_token, no userinfo): a staff user confirms it.
        return confirm_held_grant(request=result.held, confirmed_by="admin@example.com")
    return reload(result.connection)


def assert_access_token(contract: Contract, connection: Connection, fake: ContractServer) -> None:
    assert connection.access_token == fake.issued_access[-1]
    assert connection.access_expiry_source == contract.access_source
    expected = datetime.now(UTC) + timedelta(seconds=contract.access_lifetime)
    assert connection.access_expires_at == expected


def expected_refresh_expiry(
    contract: Contract, *, consented_at: datetime, last_refresh_at: datetime
) -> tuple[datetime | None, str]:
    """The refresh token's expiry after the last refresh, and its source, from the contract."""
    if contract.kind in ("none", "unknown") and not contract.refresh_field:
        return None, ("policy" if contract.kind == "none" else "unknown")
    lifetime = timedelta(days=contract.refresh_days or 0)
    anchor = consented_at if contract.kind == "absolute" else last_refresh_at
    return anchor + lifetime, ("response" if contract.refresh_field else "policy")


def expected_deadline(
    contract: Contract, refresh_expires_at: datetime | None, *, consented_at: datetime
) -> tuple[datetime | None, str]:
    if contract.hard_cap_days:
        return consented_at + timedelta(days=contract.hard_cap_days), DeadlineSource.HARD_CAP
    return {
        "absolute": (refresh_expires_at, DeadlineSource.ABSOLUTE_EXPIRY),
        "sliding": (None, DeadlineSource.RENEWED_AUTOMATICALLY),
        "none": (None, DeadlineSource.NEVER_EXPIRES),
        "unknown": (None, DeadlineSource.UNKNOWN),
    }[contract.kind]


@pytest.mark.parametrize("contract", CONTRACTS.values(), ids=list(CONTRACTS))
def test_the_preset_keeps_a_grant_alive_as_its_provider_documents(contract: Contract, clock):
    with ContractServer(contract) as fake:
        connection = connect(contract, fake)
        assert fake.violations == [], "consent and code exchange"
        assert connection.status == Connection.Status.ACTIVE
        assert connection.refresh_token == fake.live_refresh
        assert_access_token(contract, connection, fake)
        first_refresh_token = connection.refresh_token
        provider = connection.provider
        lifetime = timedelta(days=contract.refresh_days) if contract.refresh_days else None
        assert (provider.refresh_token_expiry, provider.refresh_token_lifetime) == (
            contract.kind,
            lifetime,
        )
        # Before any refresh has shown anything, the deadline rests on the preset's word.
        expires_at, source = expected_refresh_expiry(contract, consented_at=T0, last_refresh_at=T0)
        assert (connection.refresh_expires_at, connection.refresh_expiry_source) == (
            expires_at,
            source,
        )
        assert connection.reauthorization_deadline == expected_deadline(
            contract, expires_at, consented_at=T0
        )

        for gap in contract.gaps:
            clock.shift(gap)
            connection = get_access_token(connection)
            assert fake.violations == [], "refresh"
            assert_access_token(contract, connection, fake)
            # The grant in force is the newest the provider issued (or the kept one).
            assert connection.refresh_token == fake.live_refresh
        last_refresh_at = datetime.now(UTC)
        successes = RefreshAttempt.objects.filter(
            connection=connection, outcome=RefreshAttempt.Outcome.SUCCESS
        )
        assert (successes.count(), fake.counts["refreshed"]) == (2, 2)
        assert fake.counts["reused"] == fake.counts["reused_in_grace"] == 0
        if contract.rotation in ("none", "echo"):
            assert connection.refresh_token == first_refresh_token

        connection = reload(connection)
        assert connection.provider.rotates_refresh_tokens is contract.rotates
        assert connection.refresh_expiry_kind == contract.kind
        expires_at, source = expected_refresh_expiry(
            contract, consented_at=T0, last_refresh_at=last_refresh_at
        )
        assert (connection.refresh_expires_at, connection.refresh_expiry_source) == (
            expires_at,
            source,
        )
        assert connection.reauthorization_deadline == expected_deadline(
            contract, expires_at, consented_at=T0
        )
        assert connection.status == Connection.Status.ACTIVE

        fake.revoke_grant()
        clock.shift(contract.gaps[1])
        with pytest.raises(NeedsReauth):
            get_access_token(connection)
        assert fake.counts["refused"] == 1
        assert reload(connection).status == Connection.Status.NEEDS_REAUTH
        assert fake.violations == []


def test_every_preset_has_a_contract_and_every_contract_a_preset():
    assert sorted(CONTRACTS) == sorted(preset.slug for preset in list_presets())


@pytest.mark.parametrize(
    ("slug", "recovered"),
    [("xero", True), ("atlassian", True), ("box", False)],
)
def test_a_lost_refresh_reply_is_recovered_only_inside_the_reuse_window(
    slug: str, recovered: bool, clock, settings
):
    """The provider rotated the refresh token but its answer never arrived (read timeout). The
    engine retries at once with the token it holds: inside Xero's 30-minute or Atlassian's
    10-minute reuse window that works; Box's refresh tokens are single-use, so the grant is lost
    and says so."""
    settings.TOKENADMIN = settings.TOKENADMIN | {"HTTP_TIMEOUT": 0.3}
    contract = CONTRACTS[slug]
    with ContractServer(contract) as fake:
        connection = connect(contract, fake)
        clock.shift(contract.gaps[0])
        fake.lose_next_refresh_reply_for = 0.6
        if recovered:
            connection = get_access_token(connection)
            assert connection.status == Connection.Status.ACTIVE
            assert connection.refresh_token == fake.live_refresh
            assert fake.counts["reused_in_grace"] == 1
        else:
            with pytest.raises(NeedsReauth):
                get_access_token(connection)
            assert reload(connection).status == Connection.Status.NEEDS_REAUTH
        assert fake.counts["replies_lost"] == 1


# --- the fake itself refuses what its provider refuses (so the contract tests can fail) -------


def test_the_fake_refuses_the_wrong_client_authentication():
    with ContractServer(CONTRACTS["xero"]) as fake:  # Basic only
        form = {"grant_type": "refresh_token", "refresh_token": "x"}
        form |= {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
        response = requests.post(fake.url_for(CONTRACTS["xero"].token_url), data=form, timeout=5)
    assert (response.status_code, response.json()) == (401, {"error": "invalid_client"})
    assert fake.violations == ["client_secret in the body; the provider takes frozenset({'basic'})"]


def test_the_fake_refuses_a_form_body_where_json_is_documented():
    with ContractServer(CONTRACTS["atlassian"]) as fake:
        response = requests.post(
            fake.url_for(CONTRACTS["atlassian"].token_url),
            data={"grant_type": "refresh_token"},
            timeout=5,
        )
    assert response.status_code == 400
    assert fake.violations and "must be json" in fake.violations[0]


def test_the_fake_issues_no_refresh_token_without_what_the_provider_needs(clock):
    """Shopify without expiring=1 hands out a non-expiring token and no refresh token."""
    contract = CONTRACTS["shopify"]
    with ContractServer(contract) as fake:
        url = (
            f"{contract.authorize_url}?response_type=code&client_id={CLIENT_ID}&state=s"
            "&redirect_uri=http%3A%2F%2Ftestserver%2Foauth%2Fcallback%2F"
        )
        code, _ = fake.consent(url)
        form = {"grant_type": "authorization_code", "code": code}
        form |= {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
        form["redirect_uri"] = "http://testserver/oauth/callback/"
        body = requests.post(fake.url_for(contract.token_url), data=form, timeout=5).json()
    assert "access_token" in body and "refresh_token" not in body
    assert fake.violations == []


def test_the_fake_answers_github_in_form_encoding_unless_json_is_asked_for():
    contract = CONTRACTS["github-app"]
    with ContractServer(contract) as fake:
        form = {"grant_type": "refresh_token", "refresh_token": "unknown"}
        form |= {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
        url = fake.url_for(contract.token_url)
        plain = requests.post(url, data=form, headers={"Accept": "*/*"}, timeout=5)
        as_json = requests.post(url, data=form, headers={"Accept": "application/json"}, timeout=5)
    assert plain.status_code == 200 and plain.text.startswith("error=bad_refresh_token")
    assert as_json.json()["error"] == "bad_refresh_token"
