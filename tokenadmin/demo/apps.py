from django.apps import AppConfig


class DemoProviderConfig(AppConfig):
    """The demo authorization server of `make demo` (installed only when TOKENADMIN_DEMO=1)."""

    name = "tokenadmin.demo"
    label = "demo_provider"
    verbose_name = "Demo provider"
