"""Settings, read from the environment (12-factor) through django-environ.

Every knob an operator may turn is an environment variable named like the
setting; README.md lists them. Defaults are for a developer's machine: SQLite in
the project directory. Production refuses to start without a SECRET_KEY.

A ``.env`` file in the project directory (``scripts/serve`` writes one with
DEBUG on) is read only when SECRET_KEY is not set in the environment.
Production sets SECRET_KEY in the environment, so a development ``.env`` left
in the directory can never switch DEBUG on there. Variables in the environment
always win over the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from pythonjsonlogger.core import RESERVED_ATTRS as JSON_LOG_RESERVED_ATTRS

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
#: The development .env, or None when the environment carries SECRET_KEY (production).
DOTENV_FILE = BASE_DIR / ".env" if not os.environ.get("SECRET_KEY") and (BASE_DIR / ".env").is_file() else None
if DOTENV_FILE is not None:
    env.read_env(DOTENV_FILE)

DEBUG = env.bool("DEBUG", default=False)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set the SECRET_KEY environment variable to a long random string "
            "(python -c 'import secrets; print(secrets.token_urlsafe(64))'), or, for local development, run "
            "./scripts/serve once (it writes a .env with DEBUG=true) or set DEBUG=true."
        )
    SECRET_KEY = "development-only-key-not-for-production-use-0123456789abcdefghijklmnop"

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "makima_supervisor.admin_site.SupervisorAdminConfig",  # django.contrib.admin, with the guarded site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served from here: the docs page works offline
    "django_tasks",  # Django's tasks framework (the backport of django.tasks): background jobs
    "django_tasks_db",  # its database backend: the queue is a table, workers are `manage.py db_worker`
    "axes",  # admin login lockout after repeated failures (per username and client address)
    "supervisors",
]

# The browser_middleware classes are Django's and WhiteNoise's own, stepped over for
# daemons' Bearer-key calls to /api/v1/ (see makima_supervisor/browser_middleware.py).
MIDDLEWARE = [
    # Before everything: daemons' Bearer calls to /api/v1/ go down this list without the browser-only
    # layers (makima_supervisor/daemon_stack.py); every other request goes on down the whole list.
    "makima_supervisor.daemon_stack.DaemonApiDispatchMiddleware",
    # First: forwarded headers from peers outside TRUSTED_PROXIES never reach Django.
    "makima_supervisor.proxy.TrustedProxyMiddleware",
    # Request id, log context, access line and request metrics: sees every final status.
    "makima_supervisor.request_log.RequestLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "supervisors.api.middleware.BodySizeLimitMiddleware",
    "makima_supervisor.browser_middleware.WhiteNoiseMiddleware",
    "makima_supervisor.browser_middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "makima_supervisor.browser_middleware.AuthenticationMiddleware",
    "makima_supervisor.browser_middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Admin login lockout (django-axes): answers a locked-out login with the lockout page.
    "axes.middleware.AxesMiddleware",
    # Last, so its process_exception runs first: database down -> 503 in the API error shape.
    "supervisors.api.db_errors.DatabaseUnavailableMiddleware",
]

ROOT_URLCONF = "makima_supervisor.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "makima_supervisor.wsgi.application"

# --- Database -------------------------------------------------------------
# DATABASE_URL: postgres://user:password@host:5432/name (production) or
# sqlite:////absolute/path.sqlite3. Default: db.sqlite3 in the project directory.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
#: DATABASE_POOLER=pgbouncer: DATABASE_URL points at PgBouncer (or another pooler) in transaction mode.
DATABASE_POOLER = env.str("DATABASE_POOLER", default="").strip().lower()
if DATABASE_POOLER not in ("", "none", "pgbouncer"):
    raise ImproperlyConfigured(
        f"DATABASE_POOLER={DATABASE_POOLER!r}: use pgbouncer (transaction mode) or leave it unset."
    )
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.postgresql":
    # DB_POOL=true uses psycopg's connection pool inside each process; it cannot
    # be combined with persistent connections (CONN_MAX_AGE).
    if env.bool("DB_POOL", default=False):
        _db.setdefault("OPTIONS", {})["pool"] = {
            "min_size": env.int("DB_POOL_MIN_SIZE", default=2),
            "max_size": env.int("DB_POOL_MAX_SIZE", default=10),
            "timeout": env.float("DB_POOL_TIMEOUT", default=10.0),
        }
        _db["CONN_MAX_AGE"] = 0
    else:
        _db["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    _db["CONN_HEALTH_CHECKS"] = env.bool("CONN_HEALTH_CHECKS", default=False)
    if DATABASE_POOLER == "pgbouncer":
        # A transaction-mode pooler hands each transaction to any server connection: nothing may
        # outlive a transaction on the server. No prepared statements (Django's default, said
        # explicitly; the hot path's are off below), no WITH HOLD cursors for .iterator().
        _db.setdefault("OPTIONS", {})["prepare_threshold"] = None
        _db["DISABLE_SERVER_SIDE_CURSORS"] = True
    _db.setdefault("OPTIONS", {}).setdefault("connect_timeout", env.int("DB_CONNECT_TIMEOUT", default=5))
elif _db["ENGINE"] == "django.db.backends.sqlite3":
    # Several writers at once (two requests, a command and the admin) must wait
    # for each other rather than fail with "database is locked": take the write
    # lock when a transaction starts, wait up to SQLITE_TIMEOUT seconds for it,
    # and let readers go on during a write (WAL).
    _db["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": env.int("SQLITE_TIMEOUT", default=20),
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
        **_db.get("OPTIONS", {}),
    }
    # Each request would otherwise reopen the file and re-run the PRAGMAs.
    _db["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["ATOMIC_REQUESTS"] = False

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth ------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Staff log in to the admin with a password; django-axes counts failures and locks out.
# AxesStandaloneBackend first: it refuses a locked-out (username, address) before the password is checked.
# The daemons' API authenticates keys itself (supervisors/api/authentication.py), not through these.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
#: Failed admin logins before that username is locked out from that client address.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
#: Hours a lockout lasts (0: until staff reset it in the admin, or `manage.py axes_reset`).
AXES_COOLOFF_HOURS = env.float("AXES_COOLOFF_HOURS", default=1.0)
AXES_COOLOFF_TIME = AXES_COOLOFF_HOURS or None
# Per (username, client address) combination: someone guessing another account's password from behind
# the same proxy (or NAT) never locks a colleague out, and a guesser cannot lock out a user everywhere.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# The client address by the service's one rule (X-Forwarded-For believed from TRUSTED_PROXIES only).
AXES_CLIENT_IP_CALLABLE = "makima_supervisor.proxy.client_address"
AXES_LOCKOUT_TEMPLATE = "admin/locked_out.html"
AXES_RESET_ON_SUCCESS = True  # a successful login forgets that combination's earlier failures
AXES_SENSITIVE_PARAMETERS = ["password"]
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
# No start-up banner on every manage.py command; failures and lockouts are still logged (logger axes).
AXES_VERBOSE = False

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# --- Static files (whitenoise serves them, also under gunicorn) -------------
STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- Security (production defaults; `manage.py check --deploy` is clean) ---
if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
# --- Behind a TLS-terminating proxy: one switch ---------------------------------
#: The service is reached through a proxy that terminates TLS and sets X-Forwarded-Proto:
#: believe that header (from TRUSTED_PROXIES only) and send cookies over HTTPS only.
BEHIND_TLS_PROXY = env.bool("BEHIND_TLS_PROXY", default=False) or env.bool("USE_X_FORWARDED_PROTO", default=False)
#: Peers whose X-Forwarded-* headers are believed: addresses or CIDR blocks, or * for any peer
#: (only when nothing but the proxy can reach the service). Others' are dropped (makima_supervisor/proxy.py).
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=["127.0.0.1", "::1"])
if BEHIND_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
#: Only for a proxy that does not pass the Host header through (nginx: proxy_set_header Host $host).
USE_X_FORWARDED_HOST = env.bool("USE_X_FORWARDED_HOST", default=False)
SILENCED_SYSTEM_CHECKS = env.list("SILENCED_SYSTEM_CHECKS", default=[])
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- Logging: one line per event on stderr; LOG_FORMAT=json for JSON lines -----------------
#: Root level, and Django's own loggers' too (so LOG_LEVEL=ERROR means no WARNING from anyone).
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
#: plain: "time level logger [request id] message"; json: one JSON object per line (python-json-logger).
LOG_FORMAT = env.str("LOG_FORMAT", default="plain").strip().lower()
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r}: use plain or json.")
#: all: an access line (logger makima.access) per request; errors: only for statuses >= 400.
ACCESS_LOG = env.str("ACCESS_LOG", default="all").strip().lower()
if ACCESS_LOG not in ("all", "errors"):
    raise ImproperlyConfigured(f"ACCESS_LOG={ACCESS_LOG!r}: use all or errors (LOG_LEVEL=WARNING silences INFO lines).")
# Every record gets request_id, daemon, user and contract (makima_supervisor/request_log.py); Django's
# own line for a 4xx is dropped (the access line, logger makima.access, says it at the right level).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_context": {"()": "makima_supervisor.request_log.RequestContextFilter"},
        "no_client_errors": {"()": "makima_supervisor.request_log.ExpectedRefusalFilter"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(levelname)s %(name)s %(message)s %(request_id)s %(daemon)s %(user)s %(contract)s",
            "timestamp": "time",  # ISO 8601, UTC
            "rename_fields": {"levelname": "level", "name": "logger"},
            # Django's request log hands over the request object itself: never serialised (headers, cookies).
            "reserved_attrs": [
                *JSON_LOG_RESERVED_ATTRS,
                "request",
                "server_time",
            ],
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_context"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        "django.request": {"filters": ["no_client_errors"]},
        "django.server": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        "django.db.backends": {"level": LOG_LEVEL if LOG_LEVEL in ("ERROR", "CRITICAL") else "WARNING"},
        "axes": {"level": LOG_LEVEL},
    },
}

# --- The service's own knobs -------------------------------------------------
#: A supervisor silent this long in an active state is stale.
SUPERVISOR_STALE_AFTER_SECONDS = env.int("SUPERVISOR_STALE_AFTER_SECONDS", default=300)
#: A daemon without a heartbeat this long counts as gone; its supervisors may be taken over.
DAEMON_GONE_AFTER_SECONDS = env.int("DAEMON_GONE_AFTER_SECONDS", default=120)
# Failover: live daemons claim supervisors whose daemon is gone (POST /api/v1/supervisors/claim/).
FAILOVER_ENABLED = env.bool("FAILOVER_ENABLED", default=True)
#: States a claim leaves alone (completed always): by default supervisors blocked for a person.
FAILOVER_EXCLUDE_STATES = env.list("FAILOVER_EXCLUDE_STATES", default=["blocked"])
#: The most supervisors one claim may take over.
FAILOVER_MAX_CLAIM = env.int("FAILOVER_MAX_CLAIM", default=50)
#: Checkpoints kept per supervisor (the newest valid one is always kept).
SUPERVISOR_CHECKPOINT_RETENTION = env.int("SUPERVISOR_CHECKPOINT_RETENTION", default=20)
#: Most task ids a whole-list write (PUT/PATCH spawnedTaskIds, pendingTaskIds) may carry; read at start-up.
SUPERVISOR_MAX_TASK_IDS = env.int("SUPERVISOR_MAX_TASK_IDS", default=10_000)
#: Most pending questions a whole-list write (PUT/PATCH pendingQuestions) may carry; read at start-up.
SUPERVISOR_MAX_PENDING_QUESTIONS = env.int("SUPERVISOR_MAX_PENDING_QUESTIONS", default=100)
#: Most messages a conversation history may hold when it is written (400 above it). Real conversations
#: hold hundreds to a few thousand. 50,000, not 100,000: at 100,000 a PUT of that many messages filling
#: the body cost 1.2 s of CPU, at 50,000 0.84 s (docs/persistence.md, "The worst accepted body").
SUPERVISOR_MAX_CONVERSATION_MESSAGES = env.int("SUPERVISOR_MAX_CONVERSATION_MESSAGES", default=50_000)

# --- Background jobs (Django's tasks framework; README "Background jobs") -------
#: Where jobs go: database (a table; `manage.py db_worker` runs them, on as many machines as
#: wanted), immediate (run in the caller at once: tests, a one-off shell), dummy (kept, never
#: run), or a backend's dotted path (e.g. an RQ or Celery backend, when the database is not enough).
TASKS_BACKEND = env.str("TASKS_BACKEND", default="database")
_TASK_BACKENDS = {
    "database": "django_tasks_db.DatabaseBackend",
    "immediate": "django_tasks.backends.immediate.ImmediateBackend",
    "dummy": "django_tasks.backends.dummy.DummyBackend",
}
if TASKS_BACKEND not in _TASK_BACKENDS and "." not in TASKS_BACKEND:
    raise ImproperlyConfigured(
        f"TASKS_BACKEND={TASKS_BACKEND!r}: use database, immediate, dummy or a backend class's dotted path."
    )
TASKS = {"default": {"BACKEND": _TASK_BACKENDS.get(TASKS_BACKEND, TASKS_BACKEND)}}
#: How often the watchdog runs (run_scheduler enqueues it): marks gone daemons, interrupts their supervisors.
WATCHDOG_INTERVAL_SECONDS = env.int("WATCHDOG_INTERVAL_SECONDS", default=15)
#: Most contract ids one watchdog run keeps in its record (WatchdogRun.interrupted_contract_ids).
WATCHDOG_RECORDED_IDS = env.int("WATCHDOG_RECORDED_IDS", default=200)
#: Watchdog runs older than this many days are deleted (by the watchdog itself).
WATCHDOG_KEEP_RUNS_DAYS = env.int("WATCHDOG_KEEP_RUNS_DAYS", default=7)
# A supervisor's timeline (supervisor_events): the newest SUPERVISOR_EVENTS_KEEP events of each
# supervisor are kept; a periodic job prunes the older ones every SUPERVISOR_EVENTS_PRUNE_INTERVAL_SECONDS.
SUPERVISOR_EVENTS_KEEP = env.int("SUPERVISOR_EVENTS_KEEP", default=1000)
SUPERVISOR_EVENTS_PRUNE_INTERVAL_SECONDS = env.int("SUPERVISOR_EVENTS_PRUNE_INTERVAL_SECONDS", default=3600)

# --- Restore jobs (issue 16, item 2): admin restores over more than a page run in a worker ------
#: The supervisor list's page size. An admin restore, start-fresh or mark-interrupted of more
#: supervisors than this is queued as a restore job (the request returns at once); up to it, it runs
#: in the request as before.
ADMIN_LIST_PER_PAGE = env.int("ADMIN_LIST_PER_PAGE", default=50)
#: Supervisors a restore job restores per transaction; staff's Cancel is noticed between chunks.
RESTORE_JOB_CHUNK_SIZE = env.int("RESTORE_JOB_CHUNK_SIZE", default=200)
#: Seconds one run of a restore job works before it hands the rest to a new run at the back of the
#: queue: other jobs (the watchdog) are not held up, and a worker's SIGTERM waits at most this long.
RESTORE_JOB_SLICE_SECONDS = env.float("RESTORE_JOB_SLICE_SECONDS", default=10.0)
#: A restore job with supervisors left and no progress for this long lost its worker: it is enqueued
#: again (the job is safe to run twice at once). Must exceed the time one chunk takes.
RESTORE_JOB_STALLED_AFTER_SECONDS = env.int("RESTORE_JOB_STALLED_AFTER_SECONDS", default=120)
#: How often run_scheduler looks for stalled restore jobs.
RESTORE_JOB_RESCUE_INTERVAL_SECONDS = env.int("RESTORE_JOB_RESCUE_INTERVAL_SECONDS", default=30)
#: Rescues without any progress in between after which a job is given up (failed, the rest skipped).
RESTORE_JOB_MAX_RESCUES = env.int("RESTORE_JOB_MAX_RESCUES", default=5)
#: Finished restore jobs (and their per-supervisor results) older than this many days are deleted
#: by the periodic rescue job; the restoration log keeps every restoration regardless.
RESTORE_JOB_KEEP_DAYS = env.int("RESTORE_JOB_KEEP_DAYS", default=30)

# --- Metrics (GET /metrics; docs/operations.md) -----------------------------------
#: When set, /metrics answers only `Authorization: Bearer <METRICS_TOKEN>`; unset, loopback clients only.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
#: A scrape older than this asks the refresh_metrics job for new supervisor figures (a pass over all supervisors).
METRICS_REFRESH_SECONDS = env.int("METRICS_REFRESH_SECONDS", default=15)
#: Supervisor figures older than this (no job worker refreshed them) are computed by the scrape itself.
METRICS_SNAPSHOT_MAX_AGE_SECONDS = env.int("METRICS_SNAPSHOT_MAX_AGE_SECONDS", default=300)
#: The window of the *_recent gauges (restorations, claims, watchdog runs), in seconds.
METRICS_RECENT_WINDOW_SECONDS = env.int("METRICS_RECENT_WINDOW_SECONDS", default=3600)

# --- The admin's needs-attention page (supervisors/attention.py) -------------------------------
#: Its stored answer is recomputed by the refresh_attention job when the page finds it older than this.
ATTENTION_REFRESH_SECONDS = env.int("ATTENTION_REFRESH_SECONDS", default=10)
#: Older than this (no job worker ran the refresh), the page recomputes it itself before answering.
ATTENTION_MAX_AGE_SECONDS = env.int("ATTENTION_MAX_AGE_SECONDS", default=120)

# --- Notifications (issue 17, item 1; docs/notifications.md) ---------------------------------
#: Where the links in notifications point ("answer it in the admin"): this service's public URL.
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://localhost:8000").rstrip("/")
#: Email, one setting (django-environ's EMAIL_URL: smtp+tls://user:password@host:587, consolemail://,
#: locmemmail://); the console backend by default, which prints the mails to the worker's output.
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="makima-supervisor@localhost")
#: How often run_scheduler enqueues the dispatcher (new events -> deliveries) and the delivery job.
NOTIFICATIONS_DISPATCH_INTERVAL_SECONDS = env.float("NOTIFICATIONS_DISPATCH_INTERVAL_SECONDS", default=5.0)
NOTIFICATIONS_DELIVER_INTERVAL_SECONDS = env.float("NOTIFICATIONS_DELIVER_INTERVAL_SECONDS", default=5.0)
#: Events the dispatcher reads per transaction (its queries do not grow with this).
NOTIFICATIONS_DISPATCH_BATCH = env.int("NOTIFICATIONS_DISPATCH_BATCH", default=500)
#: Seconds one webhook request or one email may take (connect and read); an attempt's lease is 2x + 5.
NOTIFICATIONS_TIMEOUT_SECONDS = env.float("NOTIFICATIONS_TIMEOUT_SECONDS", default=10.0)
#: Retries: the first after ~BASE seconds, doubling up to MAX_DELAY, with jitter; a delivery still
#: failing RETRY_FOR seconds after it was created (or retried by staff) is dead-lettered.
NOTIFICATIONS_RETRY_BASE_SECONDS = env.float("NOTIFICATIONS_RETRY_BASE_SECONDS", default=10.0)
NOTIFICATIONS_RETRY_MAX_DELAY_SECONDS = env.float("NOTIFICATIONS_RETRY_MAX_DELAY_SECONDS", default=3600.0)
NOTIFICATIONS_RETRY_FOR_SECONDS = env.float("NOTIFICATIONS_RETRY_FOR_SECONDS", default=86400.0)
#: Seconds one run of the delivery job sends for before it leaves the rest to the next run.
NOTIFICATIONS_DELIVER_SLICE_SECONDS = env.float("NOTIFICATIONS_DELIVER_SLICE_SECONDS", default=30.0)

# --- The daemons' REST API -----------------------------------------------------
#: Largest request body accepted, in bytes (413 above it). Multi-MB conversation
#: histories must fit; Django's own limit is raised to match so it never cuts first.
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=32 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES
#: Most JSON values (numbers, strings, objects, ...) one request body may hold (413 above it), counted
#: before parsing. Bytes alone do not bound the CPU a body costs: 32 MB of `0,0,0,...` is 16 million
#: values, seconds of parsing and checking; a value costs ~0.3 us (docs/persistence.md).
API_MAX_JSON_VALUES = env.int("API_MAX_JSON_VALUES", default=1_000_000)
#: How long a looked-up API key is trusted without asking the database again:
#: a revoked key is refused at most this many seconds after revocation.
API_KEY_CACHE_SECONDS = env.int("API_KEY_CACHE_SECONDS", default=5)
#: Requests per daemon (or staff user) per minute, counted in the database so all
#: processes and instances share the counters. 0 disables throttling.
API_THROTTLE_RATE_PER_MINUTE = env.int("API_THROTTLE_RATE_PER_MINUTE", default=6000)
#: A resume without an Idempotency-Key this soon after the last restoration is taken
#: for a duplicate (409): a retried or concurrent request, not a new restart.
#: Idempotency keys of resume requests are kept this long.
API_IDEMPOTENCY_TTL_HOURS = env.int("API_IDEMPOTENCY_TTL_HOURS", default=24)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "supervisors.api.authentication.DaemonKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["supervisors.api.permissions.IsDaemonOrStaff"],
    "DEFAULT_THROTTLE_CLASSES": ["supervisors.api.throttling.SharedRateThrottle"],
    "DEFAULT_PARSER_CLASSES": ["supervisors.api.parsers.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "supervisors.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "makima-supervisor API",
    "DESCRIPTION": (
        "The REST API daemons use to save and restore their supervisors' state. "
        "Authenticate with `Authorization: Bearer <daemon API key>` (or a staff session). "
        "Every error has the body `{code, message, fields}`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "supervisors.api.schema.forbid_unknown_request_fields",
    ],
    # The docs page loads Swagger UI from this service's static files, not from a CDN that an
    # offline or locked-down network cannot reach (drf-spectacular-sidecar).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "SupervisorStateEnum": "supervisors.enums.SupervisorStatus",
        "RestorationSourceEnum": "supervisors.enums.RestorationSource",
        "QuestionTypeEnum": "supervisors.enums.QuestionType",
        "RecoveryActionEnum": "supervisors.enums.RecoveryAction",
        "TaskStatusEnum": "supervisors.enums.TaskStatus",
        "ContractStatusEnum": "supervisors.enums.ContractStatus",
        "DaemonStatusEnum": "supervisors.enums.DaemonStatus",
    },
}

# --- Hot path (perf): prepared statements for the heartbeats' fixed SQL on PostgreSQL ---
# See supervisors/services/hot_cursor.py; off by default behind a pooler (DATABASE_POOLER).
DB_PREPARE_HOT_STATEMENTS = env.bool("DB_PREPARE_HOT_STATEMENTS", default=DATABASE_POOLER != "pgbouncer")
DB_PREPARE_THRESHOLD = env.int("DB_PREPARE_THRESHOLD", default=2)
