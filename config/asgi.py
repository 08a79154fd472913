"""ASGI entry point: Django for HTTP, Channels for websockets (session auth, origin checked,
and the same second-factor standing as the pages)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from config.accounts.sockets import SecondFactorSocketMiddleware  # noqa: E402
from config.errors import ReaderTimezoneSocketMiddleware  # noqa: E402
from config.routing import websocket_urlpatterns  # noqa: E402
from config.telemetry import asgi_app  # noqa: E402

application = ProtocolTypeRouter(
    {
        # A server span per request when telemetry is on (the turn's trace starts here).
        "http": asgi_app(django_asgi_app),
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(
                SecondFactorSocketMiddleware(
                    ReaderTimezoneSocketMiddleware(URLRouter(websocket_urlpatterns))
                )
            )
        ),
    }
)
