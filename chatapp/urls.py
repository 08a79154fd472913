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
    path("c/<uuid:conversation_id>/unarchive/", views.conversation_unarchive, name="unarchive"),
    path("archive/", views.archive_list, name="archive_list"),
    path("search/", views.conversation_search, name="search"),
    path("c/<uuid:conversation_id>/regenerate/", views.answer_regenerate, name="regenerate"),
    path("c/<uuid:conversation_id>/edit/", views.message_edit, name="edit"),
    path("c/<uuid:conversation_id>/delete/", views.conversation_delete, name="delete"),
]
