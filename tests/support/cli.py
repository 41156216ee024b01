"""Running `manage.py` commands in-process, as a shell user would, for the CLI tests."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command


def run_command(command: str, *args: str) -> tuple[str, str]:
    """Run `manage.py command args…`; return (stdout, stderr)."""
    out, err = StringIO(), StringIO()
    call_command(command, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def command_fails(command: str, *args: str, returncode: int = 1) -> str:
    """Run, expect a CommandError with `returncode`, return its message."""
    with pytest.raises(CommandError) as info:
        run_command(command, *args)
    assert info.value.returncode == returncode, str(info.value)
    return str(info.value)
