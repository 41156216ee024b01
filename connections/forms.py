"""Forms for the admin. Secrets go in, never come back out.

They collect and validate input only: the admin saves through `connections.services`, and the
model's validation (`Connection.full_clean`, backup loops in `clean()`) is the same one the
services run, so each refusal shows next to its field.
"""

from typing import Any

from django import forms

from connections.models import Connection
from connections.services import EDITABLE_CONNECTION_FIELDS


class ConnectionAdminForm(forms.ModelForm):
    """The connection form with a write-only client secret.

    The secret is typed into a password input that is never pre-filled. On edit, leaving it blank
    keeps the stored secret, so an admin can change a scope without knowing the secret.
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
            field.help_text = "Write-only. Leave blank to keep the stored secret."
        else:
            field.required = True
            field.help_text = "Write-only: it is stored encrypted and never shown again."

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
