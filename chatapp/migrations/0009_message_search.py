"""Full-text search over messages: an FTS5 index kept by triggers on SQLite, a GIN
index on the text's tsvector on PostgreSQL (chatapp/search.py reads either)."""

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

# External content: the index holds no second copy of the text, only its terms; the
# triggers keep it in step with every insert, upsert, update and delete of a message.
SQLITE_CREATE = [
    "CREATE VIRTUAL TABLE chatapp_message_fts USING fts5("
    "content, content='chatapp_message', content_rowid='rowid', "
    "tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER chatapp_message_fts_ai AFTER INSERT ON chatapp_message BEGIN "
    "INSERT INTO chatapp_message_fts(rowid, content) VALUES (new.rowid, new.content); END",
    "CREATE TRIGGER chatapp_message_fts_ad AFTER DELETE ON chatapp_message BEGIN "
    "INSERT INTO chatapp_message_fts(chatapp_message_fts, rowid, content) "
    "VALUES ('delete', old.rowid, old.content); END",
    "CREATE TRIGGER chatapp_message_fts_au AFTER UPDATE OF content ON chatapp_message BEGIN "
    "INSERT INTO chatapp_message_fts(chatapp_message_fts, rowid, content) "
    "VALUES ('delete', old.rowid, old.content); "
    "INSERT INTO chatapp_message_fts(rowid, content) VALUES (new.rowid, new.content); END",
    # Messages written before this migration.
    "INSERT INTO chatapp_message_fts(chatapp_message_fts) VALUES ('rebuild')",
]
SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS chatapp_message_fts_au",
    "DROP TRIGGER IF EXISTS chatapp_message_fts_ad",
    "DROP TRIGGER IF EXISTS chatapp_message_fts_ai",
    "DROP TABLE IF EXISTS chatapp_message_fts",
]
# The same expressions chatapp/search.py queries (PG_DOCUMENT), so PostgreSQL uses the
# indexes. Typographic quotes become spaces first: under the C locale the parser takes
# them for letters: a quoted word would not match. Kept literal: a migration is frozen.
POSTGRES_CREATE = [
    "CREATE INDEX chatapp_message_search ON chatapp_message USING GIN "
    "(to_tsvector('simple'::regconfig, translate(content, '\u201c\u201d\u2018\u2019\u00ab\u00bb\u201e\u201a\u2026', '         ')))",
    "CREATE INDEX chatapp_conversation_search ON chatapp_conversation USING GIN "
    "(to_tsvector('simple'::regconfig, translate(title, '\u201c\u201d\u2018\u2019\u00ab\u00bb\u201e\u201a\u2026', '         ')))",
]
POSTGRES_DROP = [
    "DROP INDEX IF EXISTS chatapp_message_search",
    "DROP INDEX IF EXISTS chatapp_conversation_search",
]


def _run(schema_editor: BaseDatabaseSchemaEditor, by_vendor: dict[str, list[str]]) -> None:
    for statement in by_vendor.get(schema_editor.connection.vendor, []):
        schema_editor.execute(statement)


def create(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    _run(schema_editor, {"sqlite": SQLITE_CREATE, "postgresql": POSTGRES_CREATE})


def drop(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    _run(schema_editor, {"sqlite": SQLITE_DROP, "postgresql": POSTGRES_DROP})


class Migration(migrations.Migration):
    dependencies = [("chatapp", "0008_usage_and_budgets")]

    operations = [migrations.RunPython(create, drop)]
