"""Signed, single-use email links: Approve and Reject, bound to one reviewer, one approval
and the argument fingerprint the email showed, expiring with the deadline.

A token is Django's signature (SECRET_KEY, this module's salt) over the link row's id,
its secret nonce, the reviewer, the fingerprint, the deadline and the action: a changed
character is refused before the database is read. The row says whether the link was
used; a decision uses it up atomically and gives it back if the decision did not happen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core import signing
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from reviews.models import Approval, ApprovalLink
from temporal_worker.contracts.errors import Refused, UserError

LINK_SALT = "reviews.approval-email-link"
# Far above a real token (about 200 characters): anything longer is not ours.
TOKEN_MAX_CHARS = 600
ACTIONS = ("approve", "reject")

LINK_INVALID = "LinkInvalid"
LINK_OTHER_REVIEWER = "LinkOtherReviewer"
LINK_USED = "LinkUsed"
LINK_EXPIRED = "LinkExpired"


class LinkInvalid(UserError):
    http_status: ClassVar[int] = 400


class LinkForbidden(UserError):
    http_status: ClassVar[int] = 403


class LinkGone(UserError):
    http_status: ClassVar[int] = 410


def _invalid() -> LinkInvalid:
    return LinkInvalid(
        "This link is not valid. Open the latest email about the request, or decide on "
        "the dashboard.",
        code=LINK_INVALID,
    )


def link_for(*, approval: Approval, reviewer_id: int) -> ApprovalLink:
    """The reviewer's link row for this approval (one per pair: a reminder's email
    carries the same links as the request's)."""
    link, _ = ApprovalLink.objects.get_or_create(
        approval=approval,
        reviewer_id=reviewer_id,
        defaults={"arguments_hash": approval.arguments_hash, "expires_at": approval.deadline},
    )
    return link


def _payload(link: ApprovalLink, action: str) -> dict[str, Any]:
    return {
        "l": link.pk,
        "n": link.nonce,
        "r": link.reviewer_id,
        "h": link.arguments_hash,
        "e": int(link.expires_at.timestamp()),
        "a": action,
    }


def link_token(link: ApprovalLink, action: str) -> str:
    assert action in ACTIONS
    return signing.dumps(_payload(link, action), salt=LINK_SALT)


def link_url(link: ApprovalLink, action: str) -> str:
    """The absolute link (SITE_URL: never the Host a request happened to carry)."""
    path = reverse("reviews:email_decision", args=[link_token(link, action)])
    return f"{settings.SITE_URL}{path}"


@dataclass
class LinkUse:
    link: ApprovalLink
    action: str

    @property
    def approval(self) -> Approval:
        return self.link.approval


async def link_open(*, token: str, reviewer: AbstractBaseUser) -> LinkUse:
    """The link `token` names, if `reviewer` may decide with it now; else the reason."""
    if len(token) > TOKEN_MAX_CHARS:
        raise _invalid()
    try:
        payload = signing.loads(token, salt=LINK_SALT)
    except signing.BadSignature as err:
        raise _invalid() from err
    if (
        not isinstance(payload, dict)
        or payload.get("a") not in ACTIONS
        or not isinstance(payload.get("l"), int)
    ):
        raise _invalid()
    link = (
        await ApprovalLink.objects.select_related(
            "approval", "approval__requester", "approval__decided_by"
        )
        .filter(pk=payload["l"])
        .afirst()
    )
    if link is None or not constant_time_compare(link.nonce, str(payload.get("n"))):
        raise _invalid()
    # A row that no longer matches what was signed (another fingerprint or deadline) is
    # a link that was never sent.
    if _payload(link, payload["a"]) != payload:
        raise _invalid()
    if link.reviewer_id != reviewer.pk:
        raise LinkForbidden(
            "This link was sent to another reviewer: it decides only for them. Log out and "
            "sign in as the reviewer it was sent to, or decide on the dashboard.",
            code=LINK_OTHER_REVIEWER,
        )
    if link.used_at is not None:
        raise Refused(
            "This link was already used, at {at}: each link decides once.",
            code=LINK_USED,
            at=link.used_at,
        )
    if timezone.now() >= link.expires_at:
        raise LinkGone(
            "This link expired at {at}, with the request's deadline.",
            code=LINK_EXPIRED,
            at=link.expires_at,
        )
    return LinkUse(link=link, action=payload["a"])


async def link_consume(use: LinkUse) -> bool:
    """Use the link up; False when another request used it first."""
    now = timezone.now()
    taken = await ApprovalLink.objects.filter(pk=use.link.pk, used_at__isnull=True).aupdate(
        used_at=now, used_action=use.action
    )
    use.link.used_at = now
    return taken == 1


async def link_release(use: LinkUse) -> None:
    """Give the link back: the decision it was used for did not happen."""
    await ApprovalLink.objects.filter(pk=use.link.pk).aupdate(used_at=None, used_action="")
    use.link.used_at = None
