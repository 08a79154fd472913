"""Who is asked about an approval, and where: the policy's reviewer group (or every
reviewer), their profiles' addresses, Slack ids, tools and out-of-office, and the
policy's Slack channel and escalation group."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group
from django.utils import timezone

from reviews.models import ApprovalPolicy, ReviewerProfile

REVIEW_PERMISSION = "reviews.review_approvals"
# Permissions come from Django's model backend whatever else authenticates (with_perm
# needs a backend named once several are configured).
PERMISSION_BACKEND = "django.contrib.auth.backends.ModelBackend"


@dataclass(frozen=True)
class Reviewer:
    user_id: int
    username: str
    email: str  # "" = not asked by email
    slack_user_id: str  # "" = no direct messages on Slack
    time_zone: str


@dataclass
class Route:
    """Who a request goes to: reviewers by email and Slack direct message, or a Slack
    channel instead of the direct messages; `escalation` joins them at the reminder."""

    reviewers: list[Reviewer] = field(default_factory=list)
    slack_channel: str = ""
    escalation: list[Reviewer] = field(default_factory=list)


def _reviewer(user: AbstractUser, profile: ReviewerProfile | None) -> Reviewer:
    if profile is None:
        return Reviewer(user.pk, user.get_username(), user.email, "", settings.TIME_ZONE)
    return Reviewer(
        user_id=user.pk,
        username=user.get_username(),
        email=(profile.email or user.email) if profile.notify_by_email else "",
        slack_user_id=profile.slack_user_id if profile.notify_by_slack else "",
        time_zone=profile.time_zone,
    )


def reviewers_available(
    *, group: Group | None, tool: str, agent: str = "", exclude: Iterable[int] = ()
) -> list[Reviewer]:
    """Active users who may review, in `group` (None = all of them), who review this tool
    and agent and are not out of office; never those in `exclude` (the requester)."""
    users = get_user_model().objects.with_perm(
        REVIEW_PERMISSION, include_superusers=False, backend=PERMISSION_BACKEND
    )
    if group is not None:
        users = users.filter(groups=group)
    users = users.exclude(pk__in=list(exclude)).select_related("reviewer_profile")
    now = timezone.now()
    found = []
    for user in users.order_by("username"):
        profile: ReviewerProfile | None = getattr(user, "reviewer_profile", None)
        if profile is not None and (
            profile.away(now) or not profile.reviews(tool=tool, agent=agent)
        ):
            continue
        found.append(_reviewer(user, profile))
    return found


def route_for(*, tool: str, requester_id: int, agent: str = "") -> Route:
    """The route of a new request for `tool`. When nobody in the policy's group is
    available, the escalation group is asked at once, then every available reviewer."""
    policy = (
        ApprovalPolicy.objects.select_related("reviewer_group", "escalation_group")
        .filter(tool_name=tool)
        .first()
    )
    group = policy.reviewer_group if policy else None
    escalation_group = policy.escalation_group if policy else None
    exclude = [requester_id]
    reviewers = reviewers_available(group=group, tool=tool, agent=agent, exclude=exclude)
    if not reviewers and escalation_group is not None:
        reviewers = reviewers_available(
            group=escalation_group, tool=tool, agent=agent, exclude=exclude
        )
    if not reviewers and group is not None:
        reviewers = reviewers_available(group=None, tool=tool, agent=agent, exclude=exclude)
    escalation = (
        reviewers_available(group=escalation_group, tool=tool, agent=agent, exclude=exclude)
        if escalation_group is not None
        else []
    )
    channel = policy.slack_channel if policy else settings.SLACK_DEFAULT_CHANNEL
    return Route(reviewers=reviewers, slack_channel=channel, escalation=escalation)
