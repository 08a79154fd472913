"""Django settings: the one place that reads the environment (see .env.example).

Temporal's connection options are the SDK's own (`temporalio.envconfig`): its
variables and TOML profiles are read here too, through the SDK.
"""

import datetime as dt
import os
from collections.abc import Mapping
from pathlib import Path

import environ
from csp.constants import NONCE, NONE, SELF
from temporalio.envconfig import ClientConfigProfile

from config.redis_cache import redis_caches

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# Databases, the Temporal dev server's file and logs (benchmarks point it elsewhere).
VAR_DIR = BASE_DIR / env.str("VAR_DIR", default="var")

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env.str(
    "SECRET_KEY", default="django-insecure-local-development-only-change-me" if DEBUG else None
)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "servestatic.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    # Accounts (config/accounts, docs/security.md): login throttling, second factor.
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "django_otp_webauthn",
    "config",
    "config.accounts",
    "chatapp",
    "reviews",
    "shop",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Content-Security-Policy with a per-request nonce (CONTENT_SECURITY_POLICY below).
    "csp.middleware.CSPMiddleware",
    # Async, like every middleware here: one sync middleware would run each request's
    # chain in Django's single database thread while the view awaits Temporal, and the
    # embedded worker's activities (which need that thread) would wait behind it.
    "servestatic.middleware.ServeStaticMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # request.user.is_verified(): whether this session passed the second factor.
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "config.errors.UserErrorMiddleware",
    # Sends a session that still owes its second factor to verification or enrolment.
    "config.accounts.middleware.SecondFactorMiddleware",
    # Last, as django-axes asks: turns a locked-out login into the page that says how long.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"

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
                "chatapp.context_processors.product",
                "config.preferences.page",
            ],
        },
    },
]

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The worker writes from its own threads while daphne serves: WAL and a
    # busy timeout keep SQLite from answering "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}
    # Persistent: the worker's activities and the websockets' queries share one ORM
    # thread, which opened (and registered its functions on) a new connection for every
    # call otherwise: 7% of the embedded process's CPU at 200 users (bench/load.py). A
    # file has no server to restart; each HTTP request still gets its own thread (ASGI).
    DATABASES["default"]["CONN_MAX_AGE"] = None
else:
    # Under ASGI every request runs in its own thread, where a kept connection is never
    # reused: each request connected anew (a PostgreSQL backend started for it), and the
    # worker after each activity. A pool per process hands out open connections instead:
    # connecting was 28% of a web process's CPU at 50 users (bench/load.py, py-spy).
    # Pooling requires CONN_MAX_AGE = 0; health checks make the pool test a connection
    # before handing it out, so a database restart costs a reconnect, not an error.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DB_POOL_MAX_SIZE = env.int("DB_POOL_MAX_SIZE", default=100)
    if DB_POOL_MAX_SIZE > 0:
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": min(2, DB_POOL_MAX_SIZE),
            "max_size": DB_POOL_MAX_SIZE,
            # A request that finds every connection busy this long gets an error page
            # rather than waiting on: the database is down or the pool too small.
            "timeout": env.float("DB_POOL_TIMEOUT", default=5.0),
        }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "config.channel_layer.ThrottledInMemoryChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "chat:home"
LOGOUT_REDIRECT_URL = "login"

# --- Accounts: login throttling and the second factor (docs/security.md) ------------
AUTHENTICATION_BACKENDS = [
    # Refuses a locked-out username or address before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# This many failed logins for one username, or from one address, lock both out...
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
# ...for this long after the failure that locked them. Attempts during a lockout neither
# count nor extend it, so an attacker cannot keep a reviewer out for longer than this
# at a time; an admin can end it at once (Axes > Access attempts, delete the row).
AXES_COOLOFF_TIME = dt.timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# Never reset by a success: one good login of an attacker's own account would otherwise
# wipe the failures counted against their address (and every username tried from it).
AXES_RESET_ON_SUCCESS = False
AXES_ENABLE_ACCESS_FAILURE_LOG = True
AXES_LOCKOUT_CALLABLE = "config.accounts.lockout.lockout_response"
# The client's address is REMOTE_ADDR only: behind the proxy, daphne's --proxy-headers
# sets it from X-Forwarded-For; a header a client sends itself is never believed.
AXES_IPWARE_META_PRECEDENCE_ORDER = ("REMOTE_ADDR",)

# Reviewers (reviews.review_approvals) and staff must pass a second factor. On by
# default in production (DEBUG=False); off locally so `make run` works in two commands,
# where anyone may still enrol and is then asked for it at every login.
REQUIRE_SECOND_FACTOR = env.bool("REQUIRE_SECOND_FACTOR", default=not DEBUG)
# Step-up (docs/security.md): how long a reviewer's fresh second factor (or password)
# counts for approvals that an approval policy guards with step-up.
STEP_UP_MAX_AGE_SECONDS = env.int("STEP_UP_MAX_AGE_SECONDS", default=300)
# Retention (docs/security.md): a conversation idle this long closes its workflow (the
# next message reopens it with its state); one not updated for this many days is deleted
# by a Temporal Schedule (0 = never), registered by `manage.py retention_schedule`.
CONVERSATION_IDLE_CLOSE_SECONDS = env.int("CONVERSATION_IDLE_CLOSE_SECONDS", default=7 * 24 * 3600)
CONVERSATION_RETENTION_DAYS = env.int("CONVERSATION_RETENTION_DAYS", default=0)
OTP_TOTP_ISSUER = "Agent chat"
# Admins may delete a lost device but never read a TOTP secret or a recovery code.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True
# A passkey is a second factor after the password (and its throttling), not a login.
OTP_WEBAUTHN_ALLOW_PASSWORDLESS_LOGIN = False
OTP_WEBAUTHN_RP_NAME = "Agent chat"
OTP_WEBAUTHN_HELPER_CLASS = "config.accounts.passkeys.PasskeyHelper"
# Passkeys belong to a domain (not an IP address). Unset: the host name and origin the
# request came to (ALLOWED_HOSTS already limits those); set both behind a proxy that
# rewrites Host, or to share passkeys with sibling subdomains.
PASSKEY_RP_ID = env.str("PASSKEY_RP_ID", default="")
PASSKEY_ORIGINS = env.list("PASSKEY_ORIGINS", default=[])
OTP_WEBAUTHN_RP_ID_CALLABLE = "config.accounts.passkeys.relying_party_id"
OTP_WEBAUTHN_ALLOWED_ORIGINS = PASSKEY_ORIGINS
# Without a fixed list the helper takes the request's own origin (see above).
SILENCED_SYSTEM_CHECKS = [] if PASSKEY_ORIGINS else ["otp_webauthn.E030"]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# `manage.py collectstatic` writes here; ServeStatic serves it when DEBUG=False.
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "servestatic.storage.CompressedManifestStaticFilesStorage"
    },
}

EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Shop support <support@shop.example>")
# With EMAIL_BACKEND=django.core.mail.backends.smtp.EmailBackend.
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", default=False)
# Seconds before a silent mail server fails the send (and the notify activity retries it).
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
# The public address of this site: the links in approval emails and Slack messages.
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")

# --- Production security (DEBUG=False); `manage.py check --deploy` passes ----------
if not DEBUG:
    # TLS ends at the proxy, which must set X-Forwarded-Proto (and strip it from clients).
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    # Load balancers probe /healthz over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# No inline script or style without the request's nonce; connect-src 'self' also
# covers the site's own ws:/wss: websockets (CSP Level 3, checked in Chromium by
# tests/e2e/test_csp_browser.py) and nothing else.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, NONCE],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

# --- Logging ----------------------------------------------------------------
# LOG_FORMAT=json: one JSON object per line (production); plain otherwise. Our code
# logs ids, never message bodies; libraries that log request bodies at DEBUG are held
# at WARNING; configured secrets are redacted from every line.
LOG_FORMAT = env.str("LOG_FORMAT", default="plain").strip().lower()
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").strip().upper()


def _log_secrets() -> list[str]:
    """Values no log line may show: they are replaced by "[redacted]"."""
    from urllib.parse import urlsplit

    secrets = [
        SECRET_KEY or "",
        env.str("OPENAI_API_KEY", default=""),
        env.str("TEMPORAL_API_KEY", default=""),
        env.str("EMAIL_HOST_PASSWORD", default=""),
        env.str("SLACK_BOT_TOKEN", default=""),
        env.str("SLACK_SIGNING_SECRET", default=""),
        str(DATABASES["default"].get("PASSWORD") or ""),
        # Provider keys and MCP servers' secrets (AGENT_SECRET_*; settings below).
        *(
            value
            for name, value in os.environ.items()
            if name.startswith("AGENT_SECRET_") and value
        ),
    ]
    try:
        secrets.append(urlsplit(REDIS_URL).password or "")
    except ValueError:
        pass
    return [s for s in secrets if s]


LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {
            "()": "config.logging.PlainFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "redact": _log_secrets(),
        },
        "json": {"()": "config.logging.JsonFormatter", "redact": _log_secrets()},
    },
    "filters": {"expected_outcomes": {"()": "config.logging.ExpectedOutcomes"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
            "filters": ["expected_outcomes"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's default configuration gives "django" a console handler of its own;
        # with the root's, every line would be written twice.
        "django": {"handlers": [], "level": LOG_LEVEL, "propagate": True},
        "temporalio": {"level": "WARNING"},
        # Failed logins and lockouts are warnings; "AXES: BEGIN" and each success are not.
        "axes": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
        # These log whole requests (chat messages included) at DEBUG.
        "openai": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},
    },
}

# --- Temporal -------------------------------------------------------------
# The SDK's configuration: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY,
# TEMPORAL_TLS, TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH,
# TEMPORAL_TLS_SERVER_CA_CERT_PATH, TEMPORAL_TLS_SERVER_NAME, or a profile from a TOML
# file (TEMPORAL_PROFILE, TEMPORAL_CONFIG_FILE). The names this product used before
# the SDK had them (TEMPORAL_TLS_CLIENT_CERT, ..._KEY, ..._SERVER_CA) still work.
_TEMPORAL_ENV_ALIASES = {
    "TEMPORAL_TLS_CLIENT_CERT": "TEMPORAL_TLS_CLIENT_CERT_PATH",
    "TEMPORAL_TLS_CLIENT_KEY": "TEMPORAL_TLS_CLIENT_KEY_PATH",
    "TEMPORAL_TLS_SERVER_CA": "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
}


def temporal_client_profile(environ: Mapping[str, str]) -> ClientConfigProfile:
    """The SDK's profile from these variables (and its TOML file, if one is set up)."""
    return ClientConfigProfile.load(
        override_env_vars={
            **{new: environ[old] for old, new in _TEMPORAL_ENV_ALIASES.items() if environ.get(old)},
            # An empty value means unset (.env.example lists TEMPORAL_API_KEY= ): passed on,
            # the SDK would take an empty API key as "use TLS".
            **{
                name: value
                for name, value in environ.items()
                if name.startswith("TEMPORAL_") and value
            },
        }
    )


TEMPORAL_CLIENT_PROFILE = temporal_client_profile(os.environ)
TEMPORAL_ADDRESS = TEMPORAL_CLIENT_PROFILE.address or "127.0.0.1:7233"
TEMPORAL_NAMESPACE = TEMPORAL_CLIENT_PROFILE.namespace or "default"
TEMPORAL_TASK_QUEUE = env.str("TEMPORAL_TASK_QUEUE", default="agent-chat")
TEMPORAL_UI_URL = env.str("TEMPORAL_UI_URL", default="http://127.0.0.1:8233")
# Embedded mode: the worker runs inside the web process (in-memory channel layer).
EMBEDDED_WORKER = env.bool("EMBEDDED_WORKER", default=not REDIS_URL)
# `manage.py serve` starts a Temporal dev server on a loopback TEMPORAL_ADDRESS unless 0.
TEMPORAL_EMBEDDED = env.bool("TEMPORAL_EMBEDDED", default=True)

# --- Standalone worker (`python -m temporal_worker`) -------------------------
WORKER_MAX_ACTIVITIES = env.int("WORKER_MAX_ACTIVITIES", default=100)
WORKER_MAX_WORKFLOW_TASKS = env.int("WORKER_MAX_WORKFLOW_TASKS", default=100)
# Activities start while the machine's CPU use is under this share (0 to 1; 0: always up to
# WORKER_MAX_ACTIVITIES), and memory use under WORKER_TARGET_MEMORY; at least
# WORKER_MIN_ACTIVITIES run regardless (temporal_worker.worker.worker_tuner).
WORKER_TARGET_CPU = env.float("WORKER_TARGET_CPU", default=0.9)
WORKER_TARGET_MEMORY = env.float("WORKER_TARGET_MEMORY", default=0.8)
WORKER_MIN_ACTIVITIES = env.int("WORKER_MIN_ACTIVITIES", default=8)
WORKER_SHUTDOWN_GRACE_SECONDS = env.int("WORKER_SHUTDOWN_GRACE_SECONDS", default=10)
WORKER_CONNECT_WAIT_SECONDS = env.int("WORKER_CONNECT_WAIT_SECONDS", default=60)

# --- LLM ------------------------------------------------------------------
OPENAI_API_KEY = env.str("OPENAI_API_KEY", default="")
SCRIPTED_MODEL_PORT = env.int("SCRIPTED_MODEL_PORT", default=8765)
# The scripted model's pace: a pause between streamed chunks and before the first one.
SCRIPTED_MODEL_CHUNK_DELAY_MS = env.int("SCRIPTED_MODEL_CHUNK_DELAY_MS", default=15)
SCRIPTED_MODEL_FIRST_TOKEN_DELAY_MS = env.int("SCRIPTED_MODEL_FIRST_TOKEN_DELAY_MS", default=0)
OPENAI_BASE_URL = env.str(
    "OPENAI_BASE_URL",
    default="" if OPENAI_API_KEY else f"http://127.0.0.1:{SCRIPTED_MODEL_PORT}/v1",
)
AGENT_MODEL = env.str("AGENT_MODEL", default="gpt-4o-mini" if OPENAI_API_KEY else "scripted")
SCRIPTED_MODEL = not OPENAI_API_KEY

# --- Usage, traces and metrics (docs/observability.md) ---------------------
# Show each conversation's cost (tokens and USD) to its user on the conversation page.
SHOW_CONVERSATION_COST = env.bool("SHOW_CONVERSATION_COST", default=False)
# Traces and metrics go over OTLP/HTTP to this collector (e.g. http://127.0.0.1:4318); empty:
# no tracer or meter provider, no interceptor, no cost. The exporter also reads the other
# standard OTEL_* variables (headers, timeouts) itself.
OTEL_EXPORTER_OTLP_ENDPOINT = env.str("OTEL_EXPORTER_OTLP_ENDPOINT", default="")
OTEL_SERVICE_NAME = env.str("OTEL_SERVICE_NAME", default="durable-agent-chat")
# How often metrics are exported (milliseconds).
OTEL_METRIC_EXPORT_INTERVAL = env.int("OTEL_METRIC_EXPORT_INTERVAL", default=60_000)
# A turn's trace in your tracing UI, linked from the conversation in the admin; {trace_id}
# is replaced (Jaeger: http://127.0.0.1:16686/trace/{trace_id}). Empty: the id is shown.
TRACE_URL_TEMPLATE = env.str("TRACE_URL_TEMPLATE", default="")

# --- Chat limits ----------------------------------------------------------
CHAT_MESSAGE_MAX_CHARS = env.int("CHAT_MESSAGE_MAX_CHARS", default=8000)

# --- Agent loop (fixed per workflow when the conversation starts) -----------
AGENT_MAX_STEPS_PER_TURN = env.int("AGENT_MAX_STEPS_PER_TURN", default=12)
AGENT_STEPS_PER_RUN = env.int("AGENT_STEPS_PER_RUN", default=200)
AGENT_CONTEXT_MAX_MESSAGES = env.int("AGENT_CONTEXT_MAX_MESSAGES", default=60)
AGENT_CONTEXT_MAX_TOKENS = env.int("AGENT_CONTEXT_MAX_TOKENS", default=24_000)
AGENT_TOOL_RESULT_MAX_CHARS = env.int("AGENT_TOOL_RESULT_MAX_CHARS", default=16_000)
# The dashboard needs these; only the time-skipping test server cannot register them.
AGENT_APPROVAL_SEARCH_ATTRIBUTES = env.bool("AGENT_APPROVAL_SEARCH_ATTRIBUTES", default=True)
# The dashboard shows this many pending requests, the oldest first, and the next as many
# at a click ("Show the next 100").
REVIEWS_DASHBOARD_PAGE_ROWS = env.int("REVIEWS_DASHBOARD_PAGE_ROWS", default=100)

# --- Tools ----------------------------------------------------------------
# Modules whose `@tool` functions the agent may call (every process loads the same list).
AGENT_TOOL_MODULES = env.list("AGENT_TOOL_MODULES", default=["shop.tools"])

# --- Agents and MCP servers (docs/agents-and-mcp.md) ----------------------------
# Secrets the admin refers to by name: AGENT_SECRET_<NAME>=value lets an LLM provider's
# API key, an MCP server's environment value or header be "<NAME>". The database keeps
# names only; the worker resolves them when it calls the model or opens a session.
AGENT_SECRETS = {
    name.removeprefix("AGENT_SECRET_"): value
    for name, value in os.environ.items()
    if name.startswith("AGENT_SECRET_") and len(name) > len("AGENT_SECRET_") and value
}
# Where every process reads the admin's MCP servers and their last listed tools.
AGENT_MCP_CATALOG = "chatapp.mcp_catalog.mcp_server_specs"
# The worker lists each server's tools this often, sooner after a failed listing, and
# checks this often whether a listing is due (or asked for from the admin).
MCP_REFRESH_SECONDS = env.int("MCP_REFRESH_SECONDS", default=300)
MCP_REFRESH_RETRY_SECONDS = env.int("MCP_REFRESH_RETRY_SECONDS", default=30)
MCP_REFRESH_POLL_SECONDS = env.float("MCP_REFRESH_POLL_SECONDS", default=2.0)
# Seconds to start a stdio server or open a Streamable HTTP session before giving up.
MCP_CONNECT_TIMEOUT_SECONDS = env.int("MCP_CONNECT_TIMEOUT_SECONDS", default=20)

# --- Reviews --------------------------------------------------------------
# Retired: approval policies name who is asked and reminded (reviewer groups). Read only
# so that `manage.py check` can say so to whoever still sets it (reviews/checks.py).
APPROVAL_REMINDER_EMAILS = env.list("APPROVAL_REMINDER_EMAILS", default=[])
# Sender of approval emails to reviewers.
APPROVAL_EMAIL_FROM = env.str("APPROVAL_EMAIL_FROM", default=DEFAULT_FROM_EMAIL)
# Slack approvals (docs/approval-channels.md): both set = on; either unset = off.
SLACK_BOT_TOKEN = env.str("SLACK_BOT_TOKEN", default="")
SLACK_SIGNING_SECRET = env.str("SLACK_SIGNING_SECRET", default="")
# The Web API's base URL (tests point it at a local stand-in).
SLACK_API_URL = env.str("SLACK_API_URL", default="https://slack.com/api/")
# Where requests whose tool has no approval policy are posted (empty = direct messages).
SLACK_DEFAULT_CHANNEL = env.str("SLACK_DEFAULT_CHANNEL", default="")
# Accept clicks from this workspace only (its id, T...); empty = the app's one workspace.
SLACK_TEAM_ID = env.str("SLACK_TEAM_ID", default="")

# --- Cache and rate limits --------------------------------------------------
# Redis when REDIS_URL is set, so every web process shares the rate-limit counters.
if REDIS_URL:
    CACHES = redis_caches(REDIS_URL)
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# At most this many chat messages per user in each window (0 = no limit).
CHAT_RATE_LIMIT_MESSAGES = env.int("CHAT_RATE_LIMIT_MESSAGES", default=20)
CHAT_RATE_LIMIT_WINDOW_SECONDS = env.int("CHAT_RATE_LIMIT_WINDOW_SECONDS", default=60)

# --- Demo ------------------------------------------------------------------
# Password `manage.py seed_demo` gives the demo accounts it creates.
DEMO_PASSWORD = env.str("DEMO_PASSWORD", default="demo-pass-123")
