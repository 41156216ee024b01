"""Forms for the admin. Secrets go in, never come back out.

They collect and validate input only: the admin saves through `connections.services`, and the
model's validation (`Connection.full_clean`, backup loops in `clean()`) is the same one the
services run, so each refusal shows next to its field.
"""

from typing import Any

from django import forms

from connections.models import AuthMethod, Connection, Provider
from connections.models.provider import client_secret_error
from connections.presets import list_presets
from connections.services import EDITABLE_CONNECTION_FIELDS, ServiceError, choose_client_secret


class ConnectionAdminForm(forms.ModelForm):
    """The connection form with a write-only client secret.

    The secret is typed into a password input that is never pre-filled. On edit, leaving it blank
    keeps the stored secret, so an admin can change a scope without knowing the secret, and a
    move to a public client removes it (`services.choose_client_secret`). On add, blank is for
    a public client; the model says whether the provider needs a secret.
    """

    # Django 6 will assume https for scheme-less URLs; say so now (and silence the warning).
    health_check_url = forms.URLField(required=False, max_length=500, assume_scheme="https")
    new_client_secret = forms.CharField(
        label="Client secret",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )

    class Meta:
        model = Connection
        fields = EDITABLE_CONNECTION_FIELDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["new_client_secret"]
        if self.instance.pk:
            field.help_text = (
                "Write-only. Leave blank to keep the stored secret (a move to a public client "
                "removes it)."
            )
        else:
            field.help_text = (
                "Write-only: it is stored encrypted and never shown again. Blank for a public "
                "client (a provider whose client authentication is none)."
            )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        provider = cleaned.get("provider")
        if provider and (
            error := self._client_secret_error(provider, cleaned.get("new_client_secret"))
        ):
            self.add_error("new_client_secret", error)
        return cleaned

    def _client_secret_error(self, provider: Provider, typed: str | None) -> str | None:
        """The model's secret rule (which this form, lacking a `client_secret` field, excludes
        from the model's validation), on the secret the service will store: the one typed, else
        the stored one, which a move to a public client removes."""
        secret = typed or None
        if self.instance.pk:
            try:
                secret, _ = choose_client_secret(
                    connection=self.instance, provider=provider, client_secret=secret
                )
            except ServiceError as exc:
                return str(exc)
        has_secret = bool(self.instance.client_secret if secret is None else secret)
        return client_secret_error(
            auth_method=provider.token_endpoint_auth_method, has_secret=has_secret
        )

    def typed_secret(self) -> str | None:
        """The new client secret, or None to keep the stored one."""
        return self.cleaned_data.get("new_client_secret") or None

    def changes(self) -> dict[str, Any]:
        """The edited settings, for `connection_update`, which writes only these columns: a
        refresh that rotated the tokens while the form was open is never overwritten."""
        return {
            name: self.cleaned_data[name]
            for name in self.changed_data
            if name in EDITABLE_CONNECTION_FIELDS
        }

    def creation_arguments(self) -> dict[str, Any]:
        """Everything `connection_create` needs for a connection at an existing provider."""
        fields = {name: self.cleaned_data[name] for name in EDITABLE_CONNECTION_FIELDS}
        return {**fields, "client_secret": self.cleaned_data["new_client_secret"]}


# --- the dashboard's add and edit pages --------------------------------------------------------

PROVIDER_SOURCES = (
    ("preset", "A preset"),
    ("issuer", "Discovery from an issuer URL"),
    ("endpoints", "Endpoints typed in"),
)
# Which inputs go with which source: the others are ignored, so a value left in a hidden
# section never makes `connection_create` refuse "two sources".
SOURCE_FIELDS = {
    "preset": ("preset", "preset_params"),
    "issuer": ("issuer",),
    "endpoints": ("authorize_url", "token_url", "revoke_url", "userinfo_url", "auth_method"),
}


def _backup_choices() -> forms.ModelChoiceField:
    return forms.ModelChoiceField(
        queryset=Connection.objects.only("name", "slug").order_by("name"),
        required=False,
        empty_label="No backup",
        to_field_name="slug",
        help_text="Serves pipelines when this connection cannot.",
    )


class _ConnectionPageFields(forms.Form):
    """What add and edit share; field names are the services' argument names, so a
    ServiceError's `field` shows next to its input."""

    name = forms.CharField(max_length=200)
    slug = forms.SlugField(
        max_length=50, required=False, help_text="In URLs and the token API. Blank: from the name."
    )
    client_id = forms.CharField(label="Client id", max_length=500)
    client_secret = forms.CharField(
        label="Client secret",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )
    scopes = forms.CharField(
        max_length=1000,
        required=False,
        help_text="Space-separated. Blank: the provider's defaults.",
    )
    contact_email = forms.EmailField(
        label="Contact email",
        required=False,
        help_text="Who owns the provider account: gets reauthorization links.",
    )
    expected_account = forms.CharField(
        max_length=255,
        required=False,
        help_text="Optional: the account the first grant must belong to.",
    )

    def __init__(self, *args: Any, exclude_pk: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["backup"] = _backup_choices()
        if exclude_pk is not None:
            self.fields["backup"].queryset = self.fields["backup"].queryset.exclude(pk=exclude_pk)

    def add_service_error(self, field: str | None, message: str) -> None:
        """Show a service's refusal next to its input (or above the form)."""
        self.add_error(field if field in self.fields else None, message)


class ConnectionAddForm(_ConnectionPageFields):
    """A new connection and where its provider comes from: a preset, discovery or endpoints."""

    source = forms.ChoiceField(
        label="Provider", choices=PROVIDER_SOURCES, initial="preset", widget=forms.RadioSelect
    )
    preset = forms.ChoiceField(required=False)
    preset_params = forms.CharField(
        label="Preset values",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="One name=value a line, for presets with placeholders (e.g. tenant=contoso).",
    )
    issuer = forms.URLField(label="Issuer URL", required=False, assume_scheme="https")
    authorize_url = forms.URLField(
        label="Authorization endpoint", required=False, assume_scheme="https"
    )
    token_url = forms.URLField(label="Token endpoint", required=False, assume_scheme="https")
    revoke_url = forms.URLField(label="Revocation endpoint", required=False, assume_scheme="https")
    userinfo_url = forms.URLField(label="Userinfo endpoint", required=False, assume_scheme="https")
    auth_method = forms.ChoiceField(
        label="Client authentication", choices=AuthMethod.choices, required=False
    )

    field_order = ["name", "slug", "source", "preset", "preset_params", "issuer"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["client_secret"].help_text = (
            "Write-only: stored encrypted, never shown again. Blank for a public client "
            "(client authentication none, as the Looker preset)."
        )
        presets = [(preset.slug, preset.name) for preset in list_presets()]
        self.fields["preset"].choices = [("", "Choose a preset…"), *presets]

    def clean_preset_params(self) -> dict[str, str]:
        params = {}
        for line in self.cleaned_data["preset_params"].splitlines():
            if not line.strip():
                continue
            name, sep, value = line.partition("=")
            if not sep:
                raise forms.ValidationError(f"{line.strip()!r} is not name=value.")
            params[name.strip()] = value.strip()
        return params

    def creation_arguments(self) -> dict[str, Any]:
        """Keyword arguments for `connection_create`: the chosen source's inputs only."""
        data = self.cleaned_data
        arguments = {
            name: data[name]
            for name in ("name", "client_id", "client_secret", "scopes", "contact_email")
        }
        arguments |= {
            "slug": data["slug"] or None,
            "expected_account": data["expected_account"],
            "backup": data.get("backup"),
        }
        for name in SOURCE_FIELDS[data["source"]]:
            arguments[name] = data[name] or None
        return arguments


class ConnectionEditForm(_ConnectionPageFields):
    """The connection's own settings; the provider is changed in the admin. The secret is
    write-only: never rendered, blank keeps the stored one."""

    def __init__(self, *args: Any, connection: Connection, **kwargs: Any) -> None:
        initial = {name: getattr(connection, name) for name in PAGE_EDIT_FIELDS}
        initial["backup"] = connection.backup.slug if connection.backup_id else None
        super().__init__(*args, initial=initial, exclude_pk=connection.pk, **kwargs)
        self.fields["slug"].required = True
        self.fields["client_secret"].help_text = "Write-only. Leave blank to keep the stored one."

    def changes(self) -> dict[str, Any]:
        """The edited settings, for `connection_update` (which writes only those columns)."""
        return {
            name: self.cleaned_data[name]
            for name in self.changed_data
            if name in PAGE_EDIT_FIELDS or name == "backup"
        }

    def typed_secret(self) -> str | None:
        return self.cleaned_data.get("client_secret") or None


PAGE_EDIT_FIELDS = ("name", "slug", "client_id", "scopes", "contact_email", "expected_account")
