"""``manage.py ensure_admin``: a superuser to log in with on a development machine."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from supervisors.management.base import ProjectCommand


class Command(ProjectCommand):
    help = (
        "Create (or reset the password of) a superuser and print the login. For development: it refuses to run "
        "with DEBUG off unless --password is given. Example: manage.py ensure_admin --username admin"
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin", help="Login name (default: admin).")
        parser.add_argument(
            "--password", help="Password to set (default: a new random one, printed). Also ADMIN_PASSWORD."
        )

    def handle(self, *args, username: str, password: str | None, **options):
        import os

        password = password or os.environ.get("ADMIN_PASSWORD")
        if not settings.DEBUG and not password:
            raise CommandError("DEBUG is off: give --password (or ADMIN_PASSWORD) rather than a printed random one.")
        password = password or secrets.token_urlsafe(12)
        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(username=username, defaults={"email": ""})
        user.is_staff = user.is_superuser = user.is_active = True
        user.set_password(password)
        user.save()
        verb = "Created" if created else "Reset the password of"
        self.stdout.write(self.style.SUCCESS(f"{verb} superuser '{username}'."))
        self.stdout.write(f"  Admin: http://127.0.0.1:8000/admin/\n  Login: {username}\n  Password: {password}")
