"""ensure_admin: a superuser; an existing user only when told to; no weak password in production."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError

pytestmark = pytest.mark.django_db

STRONG = "correct-horse-battery-staple-42"


def ensure_admin(*args: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command("ensure_admin", *args, stdout=out)
    return out.getvalue()


def test_creates_a_superuser_and_prints_the_login(settings):
    settings.DEBUG = True
    out = ensure_admin("--username", "dev")
    user = User.objects.get(username="dev")
    assert user.is_superuser and user.is_staff and user.is_active
    password = out.rsplit("Password: ", 1)[1].strip()
    assert user.check_password(password)


def test_an_existing_user_is_refused_without_the_flag_and_left_as_it_was(settings):
    settings.DEBUG = False
    staff = User.objects.create_user("alice", password="old-password-of-alice", is_staff=True)
    with pytest.raises(CommandError, match="already exists") as caught:
        ensure_admin("--username", "alice", "--password", STRONG)
    assert caught.value.returncode == 2
    staff.refresh_from_db()
    assert staff.check_password("old-password-of-alice") and not staff.is_superuser


def test_reset_password_never_promotes_a_staff_user(settings):
    settings.DEBUG = False
    User.objects.create_user("bob", password="old-password-of-bob", is_staff=True)
    with pytest.raises(CommandError, match="not a superuser"):
        ensure_admin("--username", "bob", "--password", STRONG, "--reset-password")
    bob = User.objects.get(username="bob")
    assert bob.check_password("old-password-of-bob") and not bob.is_superuser


def test_reset_password_sets_a_superusers_password(settings):
    settings.DEBUG = False
    User.objects.create_superuser("root", password="old-password-of-root")
    out = ensure_admin("--username", "root", "--password", STRONG, "--reset-password")
    assert "Reset the password" in out
    assert User.objects.get(username="root").check_password(STRONG)


@pytest.mark.parametrize("weak", ["admin", "12345678901234", "short"])
def test_outside_debug_the_password_validators_apply(settings, weak):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="password is refused") as caught:
        ensure_admin("--username", "admin", "--password", weak)
    assert caught.value.returncode == 2
    assert not User.objects.exists()


def test_in_debug_a_simple_password_is_allowed(settings):
    settings.DEBUG = True
    ensure_admin("--username", "admin", "--password", "admin")
    assert User.objects.get(username="admin").check_password("admin")


@pytest.mark.parametrize("name", ["", "   ", "bad name!", "x" * 151])
def test_an_unusable_username_is_refused(settings, name):
    settings.DEBUG = True
    with pytest.raises(CommandError) as caught:
        ensure_admin("--username", name)
    assert caught.value.returncode == 2
    assert not User.objects.exists()


def test_serve_passes_the_flag_so_each_start_prints_a_working_login(settings):
    """scripts/serve runs ensure_admin on every start: the second start resets the dev admin's password."""
    settings.DEBUG = True
    ensure_admin("--reset-password", "--username", "admin")
    out = ensure_admin("--reset-password", "--username", "admin")
    assert User.objects.get(username="admin").check_password(out.rsplit("Password: ", 1)[1].strip())
