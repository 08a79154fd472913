"""Websocket routes: the conversation page's socket and the reviewers' inbox socket."""

from chatapp.routing import websocket_urlpatterns as chat_websocket_urlpatterns
from reviews.routing import websocket_urlpatterns as reviews_websocket_urlpatterns

websocket_urlpatterns = [*chat_websocket_urlpatterns, *reviews_websocket_urlpatterns]
