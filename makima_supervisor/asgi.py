"""ASGI entry point."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "makima_supervisor.settings")

application = get_asgi_application()

from supervisors.checks import log_startup_warnings  # noqa: E402  (needs the apps loaded)

log_startup_warnings()
