"""DimeConnect settings: one module, read from the environment (and `.env` when present).

Every variable is listed in `.env.example` and the README. Production (`DEBUG=False`) refuses to
start without `SECRET_KEY` and `FIELD_ENCRYPTION_KEYS` (system checks `connectors.E001`/`E002`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

# `DIMECONNECT_ENV_FILE` names another file; set it empty to read none (the test suite does).
_env_file = os.environ.get("DIMECONNECT_ENV_FILE", str(BASE_DIR / ".env"))
if _env_file and Path(_env_file).is_file():
    environ.Env.read_env(_env_file, overwrite=False)

env = environ.Env()

DEBUG: bool = env.bool("DEBUG", default=False)

# The placeholder lets development start without a key; check connectors.E001 refuses it when
# DEBUG is off, so a production deployment can never run on it.
INSECURE_SECRET_KEY_PLACEHOLDER = "django-insecure-dimeconnect-development-only"
SECRET_KEY: str = env.str("SECRET_KEY", default="") or INSECURE_SECRET_KEY_PLACEHOLDER

ALLOWED_HOSTS: list[str] = env.list(
    "ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else []
)
CSRF_TRUSTED_ORIGINS: list[str] = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Comma-separated Fernet keys: the first encrypts, all decrypt (see connectors/crypto.py).
FIELD_ENCRYPTION_KEYS: list[str] = env.list("FIELD_ENCRYPTION_KEYS", default=[])

# Back-office defaults (used from the back-office clients on).
BACKOFFICE_SERVICE_LOGIN: str = env.str("BACKOFFICE_SERVICE_LOGIN", default="")
BACKOFFICE_SERVICE_PASSWORD: str = env.str("BACKOFFICE_SERVICE_PASSWORD", default="")
ENTRA_AUTHORITY_HOST: str = env.str(
    "ENTRA_AUTHORITY_HOST", default="https://login.microsoftonline.com"
)
GRAPH_BASE_URL: str = env.str("GRAPH_BASE_URL", default="https://graph.microsoft.com/v1.0")
PUBLIC_BASE_URL: str = env.str("PUBLIC_BASE_URL", default="")
HTTP_CA_BUNDLE: str = env.str("HTTP_CA_BUNDLE", default="")

# Dispatch log retention (connectors/retention.py, `manage.py purge_dispatch_log`, run daily):
# succeeded and cancelled dispatches go after this many days, failed ones after the longer limit.
DISPATCH_LOG_RETENTION_DAYS: int = env.int("DISPATCH_LOG_RETENTION_DAYS", default=90)
DISPATCH_LOG_FAILED_RETENTION_DAYS: int = env.int(
    "DISPATCH_LOG_FAILED_RETENTION_DAYS", default=365
)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served locally (no CDN)
    "django_q",
    "dimeconnect",
    "connectors",
    "exchange_sync",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "dimeconnect.urls"

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

WSGI_APPLICATION = "dimeconnect.wsgi.application"

DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server read while the django-q2 cluster writes; IMMEDIATE transactions
    # take the write lock up front, so concurrent writers wait (busy timeout) instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
# Connections are reused across requests (a new one per request cost a PostgreSQL backend, or
# a SQLite file open and its PRAGMAs: ~10 % of an event post), checked before each reuse.
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL: str = env.str("REDIS_URL", default="")

# django-q2: the ORM broker by default, Redis when REDIS_URL is set. The broker only rings the
# doorbell; the database holds the work, so a lost message loses nothing.
Q_CLUSTER: dict[str, object] = {
    "name": "dimeconnect",
    "workers": env.int("Q_WORKERS", default=2),
    "timeout": 120,
    "retry": 180,
    "max_attempts": 1,
    "catch_up": False,
    "ack_failures": True,
    "label": "Background tasks",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
    Q_CLUSTER["poll"] = 0.5

# Write-back: a connector failing without a single success for this long, with at least this
# many failed attempts, is quarantined (its dispatches are held until someone resumes it).
QUARANTINE_AFTER_HOURS: float = env.float("QUARANTINE_AFTER_HOURS", default=120.0)
QUARANTINE_MIN_FAILURES: int = env.int("QUARANTINE_MIN_FAILURES", default=10)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=str(BASE_DIR / "staticfiles"))
# Hashed, compressed files need `collectstatic` (which `serve` runs); off in DEBUG and the tests.
STATICFILES_MANIFEST: bool = env.bool("STATICFILES_MANIFEST", default=not DEBUG)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if STATICFILES_MANIFEST
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# The HTTP API (connectors/api/, docs/API.md). Secure by default: a view that sets nothing needs
# an API key; every error answers the one JSON error shape.
REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["connectors.api.parsers.LimitedJSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": ["connectors.api.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "EXCEPTION_HANDLER": "connectors.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "DimeConnect API",
    "DESCRIPTION": "Appointment events in, write-back dispatches out. Errors always answer "
    '{"error": {"status", "code", "message", "fields"?}}. See docs/API.md.',
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "connectors.api.schema.events_array_bounds",
    ],
}

# Largest request body the API reads (bytes; default 2 MiB): larger answers 413. Django's own
# limit on request.body is raised to match, so this one is the limit that applies.
API_MAX_BODY_BYTES: int = env.int("API_MAX_BODY_BYTES", default=2 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = max(API_MAX_BODY_BYTES, 2_621_440)  # Django's default: 2.5 MiB
# Requests per API client (or logged-in user): "<n>/<s|min|h|day>"; empty turns the limit off.
API_RATE: str = env.str("API_RATE", default="600/min").strip()
if API_RATE and not re.fullmatch(r"\d+/(s|sec|second|m|min|minute|h|hour|d|day)", API_RATE):
    raise ImproperlyConfigured(f"API_RATE must look like 600/min, not {API_RATE!r}.")

# The `throttle` cache counts API requests: shared in Redis when REDIS_URL is set, else per
# process. The default cache stays Django's (process memory).
CACHES: dict[str, dict[str, object]] = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "throttle": (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "dimeconnect",
            # An unreachable Redis must not hang requests: the throttle then lets them through.
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "throttle"}
    ),
}

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
X_FRAME_OPTIONS = "DENY"

LOG_LEVEL: str = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # httpx logs every URL at INFO; a webhook URI may carry a key in its query string.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}
