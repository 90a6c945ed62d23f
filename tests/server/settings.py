"""Production settings (makima_supervisor.settings) with the test views of tests.server.urls mounted."""

from makima_supervisor.settings import *  # noqa: F403

ROOT_URLCONF = "tests.server.urls"
