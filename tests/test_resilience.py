"""Holding up on the embedded configuration: a database that is down, schema migrations, one ingest at a time.

The same faults against real PostgreSQL and Chroma servers are in test_faults.py (--stores=servers).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import sqlalchemy as sa

from bot.store import Base, Store
from tests.conftest import ROOT, make_settings, run_cli

SENTINEL = "my name is Zebulon Quimby, call 0161 496 0000. how long does botox last?"
NOWHERE = "postgresql+psycopg://clinicbot@127.0.0.1:9/clinicbot"  # nothing listens on port 9


def test_a_database_that_is_down_spools_redacted_exchanges_and_writes_them_when_back(data_dir, models, caplog):
    from bot.chat import Pipeline

    pipeline = Pipeline.build(make_settings(data_dir, database_url=NOWHERE), models=models)
    reply = pipeline.ask(SENTINEL)
    assert reply.kind == "answer" and reply.text  # the patient still gets the answer
    assert reply.stored is False and reply.spooled is True
    spooled = "".join(p.read_text() for p in (data_dir / "spool").glob("*.jsonl"))
    assert "<PERSON>" in spooled and "Zebulon" not in spooled and "496 0000" not in spooled
    assert "Zebulon" not in caplog.text
    assert pipeline.health()["status"] == "degraded"

    pipeline.store = Store(make_settings(data_dir).database_url_resolved)  # the database is back
    later = pipeline.ask("and does it hurt?", session=reply.session)
    assert later.stored is True
    pipeline.finish_writes()  # the spool drains in the background, off the reply's path
    exchanges = pipeline.store.export(reply.session, actor="test")["exchanges"]
    assert [e["reply_id"] for e in exchanges] == [reply.reply_id, later.reply_id]
    assert "Zebulon" not in json.dumps(exchanges)
    assert not list((data_dir / "spool").glob("*"))


def test_a_spool_flushed_twice_does_not_duplicate(data_dir, models):
    from bot.chat import Pipeline

    pipeline = Pipeline.build(make_settings(data_dir, database_url=NOWHERE), models=models)
    reply = pipeline.ask("what is a chemical peel?")
    spool_file = next((data_dir / "spool").glob("*.jsonl"))
    copy = spool_file.read_text()
    pipeline.store = Store(make_settings(data_dir).database_url_resolved)
    pipeline.ask("what is microneedling?")
    pipeline.finish_writes()
    (data_dir / "spool" / "999.jsonl").write_text(copy)  # as if a flusher died after writing, before deleting
    pipeline.ask("what is a hydrafacial?")
    pipeline.finish_writes()
    assert [e["reply_id"] for e in pipeline.store.export(reply.session, actor="t")["exchanges"]] == [reply.reply_id]


def test_migrations_build_the_schema_the_models_describe(tmp_path):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    store = Store(f"sqlite:///{tmp_path / 'fresh.sqlite3'}")
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection)
        assert context.get_current_revision() == store.upgrade()
        assert compare_metadata(context, Base.metadata) == []


def test_a_database_from_before_migrations_is_upgraded_in_place(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    engine = sa.create_engine(url)
    old_tables = [Base.metadata.tables[name] for name in ("exchanges", "feedback", "audit", "users")]
    Base.metadata.create_all(engine, tables=old_tables)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO audit (at, actor, action, count, target) VALUES (CURRENT_TIMESTAMP, 'x', 'purge', 3, '')"
            )
        )
    store = Store(url)
    assert [a.count for a in store.audit_log()] == [3]  # nothing lost
    store.add_review_note("prp", "dr@clinic.test", "approved", 2)  # a table the old schema did not have


def test_db_upgrade_command(cli_env):
    result = run_cli(["db", "upgrade"], cli_env)
    assert result.returncode == 0 and "database schema at revision 0003" in result.stdout.decode()
    down = run_cli(["db", "upgrade"], {**cli_env, "CLINICBOT_DATABASE_URL": NOWHERE})
    assert down.returncode == 1 and "check the URL and that the server is up" in down.stderr.decode()
    assert "Traceback" not in down.stderr.decode()


def test_only_one_ingest_writes_at_a_time(cli_env, data_dir):
    store = Store(make_settings(data_dir).database_url_resolved)
    with store.exclusive("ingest"):
        waiting = subprocess.Popen(
            [sys.executable, "-m", "bot", "ingest"],
            env=cli_env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        time.sleep(12)  # long enough to load the model and reach the lock
        assert waiting.poll() is None, "a second ingest ran while another held the lock"
    out, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, err.decode()
    assert "holding the ingest lock" in err.decode()


def test_conversation_text_can_be_encrypted_at_rest(data_dir, models):
    from cryptography.fernet import Fernet

    from bot.chat import Pipeline
    from bot.store import use_encryption_key
    from tests.conftest import database_text, files_containing

    key = Fernet.generate_key().decode()
    try:
        pipeline = Pipeline.build(make_settings(data_dir, encryption_key=key), models=models)
        reply = pipeline.ask("is microneedling ok for acne scars on darker skin")
        pipeline.feedback(reply.reply_id, False, "wanted more on hyperpigmentation")
        assert files_containing(data_dir, ["acne scars on darker", "more on hyperpigmentation"]) == []
        at_rest = database_text(pipeline.settings.database_url_resolved)  # PostgreSQL's rows too, with servers
        assert "acne scars on darker" not in at_rest and "more on hyperpigmentation" not in at_rest
        in_files = files_containing(data_dir, [reply.text[:40]])  # the reply quotes explainers, which Chroma holds
        assert [f for f in in_files if "chroma" not in f] == []  # but not the database, its WAL or anything else
        exported = pipeline.store.export(reply.session, actor="test")
        assert exported["exchanges"][0]["question_redacted"] == "is microneedling ok for acne scars on darker skin"
        assert exported["feedback"][0]["comment"] == "wanted more on hyperpigmentation"
        without_key = Store(make_settings(data_dir).database_url_resolved)
        assert "CLINICBOT_ENCRYPTION_KEY" in without_key.export(reply.session, actor="test")["exchanges"][0]["reply"]
    finally:
        use_encryption_key("")
