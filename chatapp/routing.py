from django.urls import path

from chatapp.consumers import ConversationConsumer
from reviews.routing import websocket_urlpatterns as reviews_websocket_urlpatterns

websocket_urlpatterns = [
    path("ws/c/<uuid:conversation_id>/", ConversationConsumer.as_asgi()),
    *reviews_websocket_urlpatterns,
]
