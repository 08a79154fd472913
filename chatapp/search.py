"""Conversation search: the owner's conversations whose title or messages match, with
the matches marked. One selector over two engines: SQLite's FTS5 index and PostgreSQL's
full-text search (both kept by migration 0009_message_search).

Both engines mark matches with control characters that no message contains as text;
the snippet is escaped first and only then are they turned into <mark>, so nothing a
message says can become markup.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from chatapp.models import Conversation, Message

QUERY_MAX_CHARS = 200
RESULTS_MAX = 50
SNIPPET_WORDS = 16
_START, _STOP = "\x02", "\x03"
# Words only: the engines' query syntax (quotes, NEAR, column filters, "-") stays out
# of reach of what people type.
_TERM = re.compile(r"\w+", re.UNICODE)
# What search shows: what people and the agent wrote, not tool payloads.
SEARCHED_ROLES = (Message.Role.USER, Message.Role.ASSISTANT)
# PostgreSQL's document, as migration 0009 indexes it: typographic quotes become spaces
# (the C locale's parser takes them for letters: a quoted word would not match).
_PG_QUOTES = "\u201c\u201d\u2018\u2019\u00ab\u00bb\u201e\u201a\u2026"


def _pg_document(column: str) -> str:
    return f"translate({column}, '{_PG_QUOTES}', '{' ' * len(_PG_QUOTES)}')"


@dataclass(frozen=True)
class SearchHit:
    conversation_id: uuid.UUID
    title: SafeString
    # Empty when only the title matched.
    message_id: uuid.UUID | None
    snippet: SafeString
    role: str


def search_terms(query: str) -> list[str]:
    return _TERM.findall(query[:QUERY_MAX_CHARS])[:12]


def _marked(text: str) -> SafeString:
    return mark_safe(escape(text).replace(_START, "<mark>").replace(_STOP, "</mark>"))


def _mark_terms(text: str, terms: list[str]) -> SafeString:
    """A title with its matching words marked (titles are short: no engine needed)."""
    if not terms:
        return _marked(text)
    pattern = re.compile("|".join(re.escape(t) for t in terms), re.IGNORECASE)
    return _marked(pattern.sub(lambda m: f"{_START}{m.group(0)}{_STOP}", text))


async def conversation_search(*, user: AbstractBaseUser, query: str) -> list[SearchHit]:
    """The owner's matches, newest conversation first: conversations whose title
    matches, then each matching message (several per conversation)."""
    terms = search_terms(query)
    if not terms:
        return []
    return await sync_to_async(_search)(user.pk, terms)


def _search(owner_id: int, terms: list[str]) -> list[SearchHit]:
    titles = _title_matches(owner_id, terms)
    if connection.vendor == "postgresql":
        rows = _postgres_messages(owner_id, terms)
    else:
        rows = _sqlite_messages(owner_id, terms)
    hits = [
        SearchHit(c.id, _mark_terms(c.title or "Untitled", terms), None, mark_safe(""), "")
        for c in titles
    ]
    return (
        hits
        + [
            SearchHit(
                conversation_id=cid,
                title=_mark_terms(title or "Untitled", terms),
                message_id=mid,
                snippet=_marked(snippet),
                role=role,
            )
            for mid, cid, title, role, snippet in rows
        ][: RESULTS_MAX - len(hits)]
    )


def _title_matches(owner_id: int, terms: list[str]) -> list[Conversation]:
    qs = Conversation.objects.filter(owner_id=owner_id)
    if connection.vendor == "postgresql":
        return list(
            qs.extra(
                where=[
                    f"to_tsvector('simple'::regconfig, {_pg_document('title')}) "
                    "@@ to_tsquery('simple', %s)"
                ],
                params=[_postgres_query(terms)],
            ).order_by("-updated_at")[:RESULTS_MAX]
        )
    for term in terms:
        qs = qs.filter(title__icontains=term)
    return list(qs.order_by("-updated_at")[:RESULTS_MAX])


_Row = tuple[uuid.UUID, uuid.UUID, str, str, str]


def _sqlite_messages(owner_id: int, terms: list[str]) -> list[_Row]:
    # Each term quoted (a phrase of one word), the last one a prefix: "retur" finds
    # "returns" while the person is still typing.
    match = " ".join(f'"{t}"' for t in terms) + "*"
    sql = f"""
        SELECT m.id, c.id, c.title, m.role,
               snippet(chatapp_message_fts, 0, '{_START}', '{_STOP}', '…', {SNIPPET_WORDS})
        FROM chatapp_message_fts
        JOIN chatapp_message m ON m.rowid = chatapp_message_fts.rowid
        JOIN chatapp_conversation c ON c.id = m.conversation_id
        WHERE chatapp_message_fts MATCH %s AND c.owner_id = %s AND m.role IN (%s, %s)
        ORDER BY c.updated_at DESC, m.seq
        LIMIT {RESULTS_MAX}
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [match, owner_id, *SEARCHED_ROLES])
        return [
            (uuid.UUID(str(mid)), uuid.UUID(str(cid)), title, role, snippet)
            for mid, cid, title, role, snippet in cursor.fetchall()
        ]


def _postgres_query(terms: list[str]) -> str:
    # Terms are \w+ only, so they need no quoting inside to_tsquery; the last is a prefix.
    return " & ".join([*terms[:-1], f"{terms[-1]}:*"])


def _postgres_messages(owner_id: int, terms: list[str]) -> list[_Row]:
    sql = f"""
        SELECT m.id, c.id, c.title, m.role,
               ts_headline('simple', {_pg_document("m.content")}, q,
                 'StartSel={_START}, StopSel={_STOP}, MaxWords={SNIPPET_WORDS}, MinWords=4')
        FROM chatapp_message m
        JOIN chatapp_conversation c ON c.id = m.conversation_id,
             to_tsquery('simple', %s) q
        WHERE to_tsvector('simple'::regconfig, {_pg_document("m.content")}) @@ q
          AND c.owner_id = %s AND m.role IN (%s, %s)
        ORDER BY c.updated_at DESC, m.seq
        LIMIT {RESULTS_MAX}
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [_postgres_query(terms), owner_id, *SEARCHED_ROLES])
        return list(cursor.fetchall())
