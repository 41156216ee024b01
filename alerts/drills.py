"""The fire drill: send a test alert through a rule's channels or one channel, now.

A drill goes through the same rendering, transports and Notification rows as a real alert
(`is_test=True`), so it proves the whole path. It is tried once, in the caller's request or
command: the person who pressed the button is waiting for the answer. It tries a broken or
disabled channel too (finding out whether it works is the point) and, like any delivery, marks
a channel broken when it fails permanently. Messages say it is a test and carry no link.
"""

from alerts import dispatch
from alerts.events import Alert
from alerts.models import AlertRule, Channel, Event, Notification
from alerts.sources import connection_facts, connections_for_alerts
from connections.models import Connection

# A channel drill has no rule to take an event from; this one says the most (a person must act).
CHANNEL_DRILL_EVENT = Event.NEEDS_REAUTH


def send_test_alert(
    *, rule: AlertRule | None = None, channel: Channel | None = None, requested_by: str
) -> list[Notification]:
    """Send a test of `rule` (through each of its channels, about a connection it covers) or of
    `channel` alone; returns the delivered notification rows."""
    if (rule is None) == (channel is None):
        raise ValueError("Pass either a rule or a channel.")
    connection = _sample_connection(rule) if rule is not None else None
    facts = connection_facts(connection) if connection is not None else {}
    facts["reason"] = f"Fire drill: a test alert sent by {requested_by}. Nothing is wrong."
    alert = Alert(
        event=rule.event if rule is not None else CHANNEL_DRILL_EVENT,
        connection=connection,
        facts=facts,
        is_test=True,
    )
    channels = list(rule.channels.order_by("pk")) if rule is not None else [channel]
    delivered = []
    for target in channels:
        notification = dispatch.create_notification(alert, channel=target, rule=rule)
        if notification is not None:
            delivered.append(dispatch.deliver(notification, alert))
    return delivered


def _sample_connection(rule: AlertRule) -> Connection | None:
    """A connection the rule covers, so the test message shows real facts (None: there is none)."""
    candidates = connections_for_alerts().exclude(status=Connection.Status.DISABLED)
    if not rule.all_connections:
        candidates = candidates.filter(alert_rules=rule)
    return candidates.order_by("name", "pk").first()


def send_connection_test_alert(*, connection: Connection, requested_by: str) -> list[Notification]:
    """A drill of the alert a person must act on (needs reauthorization) about `connection`,
    through the channels its real alert would take (the rules that cover it); [] when no rule
    would tell anyone."""
    facts = connection_facts(connection)
    facts["reason"] = f"Fire drill: a test alert sent by {requested_by}. Nothing is wrong."
    alert = Alert(event=CHANNEL_DRILL_EVENT, connection=connection, facts=facts, is_test=True)
    delivered = []
    for channel, rule in dispatch.channels_for(alert):
        notification = dispatch.create_notification(alert, channel=channel, rule=rule)
        if notification is not None:
            delivered.append(dispatch.deliver(notification, alert))
    return delivered
