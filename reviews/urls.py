from django.urls import path

from reviews import email_views, views
from reviews.slack import views as slack_views

app_name = "reviews"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("more/", views.dashboard_more, name="more"),
    path("history/", views.approval_history, name="history"),
    path("bulk/", views.approvals_bulk_decide, name="bulk"),
    path("email/<str:token>/", email_views.email_decision, name="email_decision"),
    path("slack/interactivity/", slack_views.slack_interactivity, name="slack_interactivity"),
    path("<uuid:conversation_id>/<callid:call_id>/", views.approval_detail, name="detail"),
    path("<uuid:conversation_id>/<callid:call_id>/decide/", views.approval_decide, name="decide"),
    path("<uuid:conversation_id>/<callid:call_id>/claim/", views.approval_claim, name="claim"),
]
