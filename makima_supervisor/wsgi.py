"""WSGI entry point (gunicorn: ``makima_supervisor.wsgi:application``)."""

import os

from makima_supervisor.handler import get_wsgi_application  # Django's, with daemons' calls lean

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "makima_supervisor.settings")

application = get_wsgi_application()

from supervisors.checks import log_startup_warnings  # noqa: E402  (needs the apps loaded)

log_startup_warnings()
