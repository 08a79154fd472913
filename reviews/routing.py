from django.urls import path

from reviews.consumers import ReviewersConsumer

websocket_urlpatterns = [
    path("ws/reviews/", ReviewersConsumer.as_asgi()),
]
