"""Settings for the test suite: the real settings, with a test key and fast hashing.

The database still comes from DATABASE_URL, so the same suite runs on SQLite
(the default) and on PostgreSQL.
"""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-" + "x" * 40)
# Jobs run in the test's own process at once; the tests of real workers switch to the database backend.
os.environ.setdefault("TASKS_BACKEND", "immediate")
# The needs-attention page recomputes its stored answer on every view, so a test sees what it just
# changed; the tests of the stored answer and its refresh job set a longer age.
os.environ.setdefault("ATTENTION_MAX_AGE_SECONDS", "0")

from makima_supervisor.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file rather than Django's shared in-memory database, so that tests of
    # concurrent writers see SQLite's real locking (WAL, busy timeout).
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / ".test-db.sqlite3")}  # noqa: F405

# Serve static files from the apps (no collectstatic before tests), as runserver does.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
