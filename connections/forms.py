"""Forms for the admin. Secrets go in, never come back out."""

from typing import Any

from django import forms

from connections.models import Connection

# An allow-list: token values, the client secret, status and engine state are never form fields
# (a form would render a token into HTML, or let a hand edit undo a refresh).
EDITABLE_FIELDS = (
    "name",
    "slug",
    "provider",
    "backup",
    "client_id",
    "scopes",
    "refresh_threshold",
    "renewal_fraction",
    "refresh_lifetime_override",
    "refresh_expiry_override",
    "health_check_url",
)


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
        fields = EDITABLE_FIELDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["new_client_secret"]
        if self.instance.pk:
            field.help_text = "Write-only. Leave blank to keep the stored secret."
        else:
            field.required = True
            field.help_text = "Write-only: it is stored encrypted and never shown again."

    def clean_backup(self) -> Connection | None:
        backup = self.cleaned_data.get("backup")
        if backup is not None and backup.pk == self.instance.pk:
            raise forms.ValidationError("A connection cannot be its own backup.")
        return backup

    def changed_model_fields(self) -> list[str]:
        """The columns this form may write on edit.

        Saving only these keeps a refresh that rotated the tokens meanwhile from being overwritten
        with the stale values loaded for the form (rules 3 and 4 of the design).
        """
        names = {f.name for f in Connection._meta.concrete_fields}
        fields = [name for name in self.changed_data if name in names]
        if self.cleaned_data.get("new_client_secret"):
            fields.append("client_secret")
        return [*fields, "updated_at"]

    def save(self, commit: bool = True) -> Connection:
        secret = self.cleaned_data.get("new_client_secret")
        if secret:
            self.instance.client_secret = secret
        return super().save(commit=commit)
