"""WSGI entry point (gunicorn: ``makima_supervisor.wsgi:application``)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "makima_supervisor.settings")

application = get_wsgi_application()

from supervisors.checks import log_startup_warnings  # noqa: E402  (needs the apps loaded)

log_startup_warnings()
