from django.urls import path

from chatapp import converters, views  # noqa: F401 - converters registers "callid"

app_name = "chat"

urlpatterns = [
    path("", views.home, name="home"),
    path("c/send/", views.message_send, name="send"),
    path("c/<uuid:conversation_id>/", views.conversation_detail, name="conversation"),
    path("c/<uuid:conversation_id>/stop/", views.answer_stop, name="stop"),
    path("c/<uuid:conversation_id>/retry/<uuid:notice_id>/", views.turn_retry, name="retry"),
    path(
        "c/<uuid:conversation_id>/approvals/<callid:call_id>/withdraw/",
        views.approval_withdraw,
        name="withdraw",
    ),
    path("c/<uuid:conversation_id>/rename/", views.conversation_rename, name="rename"),
    path("c/<uuid:conversation_id>/archive/", views.conversation_archive, name="archive"),
]
