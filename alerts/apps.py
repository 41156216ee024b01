import logging
from typing import Any

from django.apps import AppConfig

logger = logging.getLogger(__name__)


def queue_delivery(sender: Any, *, kind: str = "", pk: int | None = None, **kwargs: Any) -> None:
    """Receiver of `connections.signals.alert_source_written`: queue the worker at once, so an
    alert leaves within seconds instead of at the next per-minute run.

    Never raises: the row is already committed and the per-minute run will find it, so a broker
    that is down (Redis unreachable, a locked database) costs only time. `send_robust` would
    swallow the error silently; this says so in the log.
    """
    from django_q.tasks import async_task

    try:
        async_task("alerts.tasks.deliver_alerts", task_name=f"alerts after {kind} {pk}")
    except Exception as exc:  # any broker failure; see the docstring
        logger.warning(
            "could not queue alert delivery after %s %s (%s); the per-minute run will send it",
            kind,
            pk,
            type(exc).__name__,
        )


class AlertsConfig(AppConfig):
    name = "alerts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from connections.signals import alert_source_written

        alert_source_written.connect(queue_delivery, dispatch_uid="alerts.queue_delivery")
