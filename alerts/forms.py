"""Admin forms for channels and rules. A channel's URL and secret go in, never come back out."""

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email

from alerts.conditions import FACTS, validate_condition
from alerts.dispatch import split_addresses
from alerts.models import AlertRule, Channel

MIN_SECRET_LENGTH = 16


def _write_only(label: str) -> forms.CharField:
    return forms.CharField(
        label=label,
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )


class ChannelAdminForm(forms.ModelForm):
    """Email addresses are plain fields; a webhook's or Slack's URL (a Slack URL is itself a
    credential) and the signing secret are write-only: never pre-filled, blank keeps the stored
    value. Giving a new URL or secret is taken as the fix of a broken channel."""

    new_url = _write_only("URL")
    new_secret = _write_only("Signing secret")
    repaired = forms.BooleanField(
        label="Mark as repaired",
        required=False,
        help_text="Clear the broken state: the channel is used again from now on.",
    )

    class Meta:
        model = Channel
        fields = ("name", "kind", "email_addresses", "to_connection_contact", "enabled")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        stored = self.instance
        self.fields["new_url"].help_text = "Webhook or Slack incoming-webhook URL. Write-only" + (
            "; leave blank to keep the stored one." if stored.url else "."
        )
        self.fields["new_secret"].help_text = (
            f"Webhook only: signs each request (at least {MIN_SECRET_LENGTH} characters). "
            "Write-only" + ("; leave blank to keep the stored one." if stored.secret else ".")
        )
        if not stored.broken_at:
            del self.fields["repaired"]

    def clean_email_addresses(self) -> str:
        text = self.cleaned_data.get("email_addresses", "")
        for address in split_addresses(text):
            try:
                validate_email(address)
            except ValidationError:
                raise ValidationError(f"{address!r} is not an email address.") from None
        return text

    def clean_new_url(self) -> str:
        url = self.cleaned_data.get("new_url", "")
        if url:
            try:
                URLValidator(schemes=["https", "http"])(url)
            except ValidationError:
                # Not echoed back: a Slack URL is a credential.
                raise ValidationError("Enter a full http(s) URL.") from None
        return url

    def clean_new_secret(self) -> str:
        secret = self.cleaned_data.get("new_secret", "")
        if secret and len(secret) < MIN_SECRET_LENGTH:
            raise ValidationError(f"Use at least {MIN_SECRET_LENGTH} characters.")
        return secret

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        kind = data.get("kind")
        has_url = bool(data.get("new_url") or self.instance.url)
        has_secret = bool(data.get("new_secret") or self.instance.secret)
        if kind == Channel.Kind.EMAIL:
            if not split_addresses(data.get("email_addresses", "")) and not data.get(
                "to_connection_contact"
            ):
                self.add_error(
                    "email_addresses",
                    "Give at least one address, or tick “to connection contact”.",
                )
        elif kind in (Channel.Kind.WEBHOOK, Channel.Kind.SLACK):
            if not has_url:
                self.add_error("new_url", "This kind of channel needs a URL.")
            if kind == Channel.Kind.WEBHOOK and not has_secret:
                self.add_error("new_secret", "A webhook needs a signing secret.")
        return data

    def save(self, commit: bool = True) -> Channel:
        channel = self.instance
        if url := self.cleaned_data.get("new_url"):
            channel.url = url
        if secret := self.cleaned_data.get("new_secret"):
            channel.secret = secret
        if url or secret or self.cleaned_data.get("repaired"):
            channel.broken_at, channel.broken_reason = None, ""
        return super().save(commit=commit)


class AlertRuleAdminForm(forms.ModelForm):
    class Meta:
        model = AlertRule
        fields = ("name", "event", "condition", "all_connections", "connections", "channels")
        fields += ("enabled",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        facts = "; ".join(f"{name}: {meaning}" for name, meaning in FACTS.items())
        self.fields["condition"].help_text = (
            "Optional: <fact> <op> <whole number>, joined by 'and', e.g. "
            f"'days_until_expiry <= 10'. Operators: <= < >= > == !=. Facts: {facts}. "
            "Blank: every such event."
        )

    def clean_condition(self) -> str:
        condition = " ".join(self.cleaned_data.get("condition", "").split())
        validate_condition(condition)
        return condition

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not data.get("all_connections") and not data.get("connections"):
            self.add_error("connections", "Choose the connections, or tick “all connections”.")
        return data
