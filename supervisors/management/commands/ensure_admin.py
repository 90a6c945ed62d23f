"""``manage.py ensure_admin``: a superuser to log in with on a development machine."""

from __future__ import annotations

import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.db import transaction

from supervisors.management.base import EXIT_USAGE, ProjectCommand


class Command(ProjectCommand):
    help = (
        "Create a superuser and print the login. An existing user is left alone unless --reset-password is given "
        "(then only its password changes, and only if it is a superuser already). With DEBUG off a password must "
        "be given and Django's password validators apply. Example: manage.py ensure_admin --username admin"
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin", help="Login name (default: admin).")
        parser.add_argument(
            "--password", help="Password to set (default: a new random one, printed). Also ADMIN_PASSWORD."
        )
        parser.add_argument(
            "--reset-password",
            action="store_true",
            help="If the superuser exists, set its password (scripts/serve does, on each start). Without it an "
            "existing user is refused.",
        )
        parser.add_argument(
            "--admin-url",
            default="http://127.0.0.1:8000/admin/",
            help="Where the admin is served, printed with the login (scripts/serve gives its own address).",
        )

    def handle(self, *args, username: str, password: str | None, reset_password: bool, admin_url: str, **options):
        password = password or os.environ.get("ADMIN_PASSWORD")
        if not settings.DEBUG and not password:
            raise CommandError(
                "DEBUG is off: give --password (or ADMIN_PASSWORD) rather than a printed random one.",
                returncode=EXIT_USAGE,
            )
        password = password or secrets.token_urlsafe(12)
        user_model = get_user_model()
        username = self._checked_username(user_model, username)
        with transaction.atomic():
            user = user_model.objects.select_for_update().filter(**{user_model.USERNAME_FIELD: username}).first()
            if user is not None and not reset_password:
                raise CommandError(
                    f"User {username!r} already exists; nothing changed. Give --reset-password to set a new "
                    "password for it.",
                    returncode=EXIT_USAGE,
                )
            if user is not None and not (user.is_superuser and user.is_staff):
                # Resetting a staff member's password must not also make them a superuser.
                raise CommandError(
                    f"User {username!r} exists and is not a superuser; ensure_admin does not promote anyone "
                    "(grant it in the admin).",
                    returncode=EXIT_USAGE,
                )
            created = user is None
            if created:
                user = user_model(**{user_model.USERNAME_FIELD: username}, email="")
                user.is_staff = user.is_superuser = user.is_active = True
            self._check_password(password, user)
            user.set_password(password)
            user.save()
        verb = "Created" if created else "Reset the password of"
        self.stdout.write(self.style.SUCCESS(f"{verb} superuser '{username}'."))
        self.stdout.write(f"  Admin: {admin_url}\n  Login: {username}\n  Password: {password}")

    @staticmethod
    def _checked_username(user_model, username: str) -> str:
        """A name the user model accepts (its validators, its length); an empty one is a usage error."""
        if not username.strip():
            raise CommandError("The username must not be empty.", returncode=EXIT_USAGE)
        field = user_model._meta.get_field(user_model.USERNAME_FIELD)
        try:
            field.clean(username, None)
        except ValidationError as exc:
            raise CommandError(f"Username {username!r}: {' '.join(exc.messages)}", returncode=EXIT_USAGE) from None
        return username

    @staticmethod
    def _check_password(password: str, user) -> None:
        """Outside DEBUG, AUTH_PASSWORD_VALIDATORS decide (a superuser's password guards everything)."""
        if settings.DEBUG:
            return
        try:
            validate_password(password, user)
        except ValidationError as exc:
            raise CommandError(f"The password is refused: {' '.join(exc.messages)}", returncode=EXIT_USAGE) from None
