"""Shared fixtures: models load once per session; every test gets its own data dir (real Chroma, real SQLite).

With `--stores=servers` the same tests run against a PostgreSQL and a Chroma server (tests/servers.py starts
throwaway ones on loopback): each test gets its own database, copied from one migrated at the start, and its own
Chroma collection prefix, whose pointer starts at the one index generation ingested at the start.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers import ChromaServer, PostgresServer, ServerUnavailable, unavailable

ROOT = Path(__file__).resolve().parent.parent
KNOWLEDGE = ROOT / "knowledge"
TEMPLATE_DB = "clinicbot_template"
TEMPLATE_PREFIX = "template-"
os.environ["ANONYMIZED_TELEMETRY"] = "False"  # chromadb's clients in this process (and the CLI's) never phone home


def pytest_addoption(parser):
    parser.addoption(
        "--stores",
        choices=("embedded", "servers"),
        default="embedded",
        help="embedded: Chroma and SQLite under each test's data dir (default); "
        "servers: a throwaway PostgreSQL and Chroma server on loopback, as several app processes would share",
    )


def pytest_configure(config):
    config.addinivalue_line("markers", "servers_only: needs --stores=servers (it stops and starts its own servers)")
    config.addinivalue_line("markers", "embedded_only: about the embedded stores themselves (SQLite's files)")


def pytest_collection_modifyitems(config, items):
    servers = config.getoption("stores") == "servers"
    for item in items:
        if not servers and item.get_closest_marker("servers_only"):
            item.add_marker(pytest.mark.skip(reason="needs the servers: run with --stores=servers"))
        if servers and item.get_closest_marker("embedded_only"):
            item.add_marker(pytest.mark.skip(reason="about the embedded stores: run without --stores=servers"))


@dataclass
class SharedServers:
    """The session's PostgreSQL and Chroma servers, and the template database and index generation tests start from."""

    postgres: PostgresServer
    chroma: ChromaServer
    generation: str = ""  # the index generation ingested once; every test's pointer starts at it


@dataclass
class PerTestStores:
    """One test's share of the servers: its own database and collection prefix, made at first use."""

    shared: SharedServers
    name: str
    made: bool = False

    def settings(self) -> dict[str, str]:
        if not self.made:
            self.shared.postgres.create_database(self.name, template=TEMPLATE_DB)
            self.made = True  # before the pointer, so close() drops the database even if that fails
            point_at(self.shared.chroma.url, self.prefix, self.shared.generation)
        return {
            "chroma_url": self.shared.chroma.url,
            "chroma_prefix": self.prefix,
            "database_url": self.shared.postgres.url(self.name),
        }

    @property
    def prefix(self) -> str:
        return f"{self.name}-"

    def env(self) -> dict[str, str]:
        return {f"CLINICBOT_{key.upper()}": value for key, value in self.settings().items()}

    def close(self) -> None:
        if not self.made:
            return
        self.shared.postgres.drop_database(self.name)
        drop_collections(self.shared.chroma.url, self.prefix)


_stores: PerTestStores | None = None  # the running test's, under --stores=servers; read by make_settings and cli_env
_numbers = itertools.count(1)


def make_settings(data_dir: Path, knowledge_dir: Path = KNOWLEDGE, **extra: object):
    from bot.config import Settings

    extra.setdefault("llm_allow_network", False)  # any accidental real model call in tests fails loudly
    if _stores is not None:
        for key, value in _stores.settings().items():
            extra.setdefault(key, value)
    return Settings(_env_file=None, data_dir=data_dir, knowledge_dir=knowledge_dir, **extra)  # type: ignore[call-arg]


def chroma_client(url: str):
    import chromadb

    host, port = url.removeprefix("http://").split(":")
    return chromadb.HttpClient(host=host, port=int(port))  # the same settings as bot.index.connect: one shared client


def point_at(url: str, prefix: str, generation: str) -> None:
    """Make `prefix`'s pointer name an existing generation (shared, read-only: its ingests write their own)."""
    from bot.index import Index

    Index(chroma_client(url), embedder=None, prefix=prefix)._set_active(generation)  # type: ignore[arg-type]


def drop_collections(url: str, prefix: str) -> None:
    client = chroma_client(url)
    for collection in client.list_collections():
        name = collection if isinstance(collection, str) else collection.name
        if name.startswith(prefix):
            client.delete_collection(name)


@pytest.fixture(scope="session")
def stores(request) -> str:
    return request.config.getoption("stores")


@pytest.fixture(scope="session")
def servers(stores) -> Iterator[SharedServers]:
    """One PostgreSQL and one Chroma server for the session (only under --stores=servers)."""
    if stores != "servers":
        pytest.skip("uses the servers: run with --stores=servers")
    started: list[PostgresServer | ChromaServer] = []
    missing = ""
    try:
        try:
            started.append(PostgresServer())
            started.append(ChromaServer())
        except ServerUnavailable as exc:
            missing = str(exc)
        if missing:
            unavailable(missing)
        for server in started:
            server.start()
        yield SharedServers(postgres=started[0], chroma=started[1])  # type: ignore[arg-type]
    finally:
        for server in started:
            server.close()


@pytest.fixture(scope="session")
def models():
    from bot.chat import Models

    return Models.load(make_settings(Path("/nonexistent")))


@pytest.fixture(scope="session")
def built_data(tmp_path_factory, models, stores, request) -> Path:
    """One real ingest of knowledge/ per session; tests copy it into their own data dir (or point at it on Chroma)."""
    from bot.ingest import ingest

    data = tmp_path_factory.mktemp("built") / "data"
    if stores == "embedded":
        ingest(make_settings(data), embedder=models.embedder)
        return data
    shared: SharedServers = request.getfixturevalue("servers")
    from bot.index import Index
    from bot.store import Store

    data.mkdir()
    url = shared.postgres.create_database(TEMPLATE_DB)
    settings = make_settings(data, chroma_url=shared.chroma.url, chroma_prefix=TEMPLATE_PREFIX, database_url=url)
    report = ingest(settings, embedder=models.embedder)
    shared.generation = report.generation
    assert Index(chroma_client(shared.chroma.url), None, TEMPLATE_PREFIX).active_generation() == report.generation  # type: ignore[arg-type]
    shared.postgres.end_sessions(TEMPLATE_DB)  # ingest's own connections (and any lock they still hold)
    store = Store(url)  # the schema every test's database starts with (ingest may not have needed it)
    store.engine.dispose()
    shared.postgres.freeze_template(TEMPLATE_DB)
    return data


@pytest.fixture(autouse=True)
def _test_stores(stores, request) -> Iterator[None]:
    """Under --stores=servers, every settings object the test makes points at its own database and collections."""
    global _stores
    if stores != "servers":
        yield
        return
    shared = request.getfixturevalue("servers")  # first: a machine without them skips before loading any model
    request.getfixturevalue("built_data")
    _stores = PerTestStores(shared, f"t{next(_numbers):04d}")
    try:
        yield
    finally:
        current, _stores = _stores, None
        current.close()


@pytest.fixture
def data_dir(tmp_path, built_data) -> Path:
    target = tmp_path / "data"
    shutil.copytree(built_data, target)
    return target


@pytest.fixture
def settings(data_dir):
    return make_settings(data_dir)


@pytest.fixture
def pipeline(settings, models):
    from bot.chat import Pipeline

    return Pipeline.build(settings, models=models)


@pytest.fixture
def chroma_dir(data_dir, stores, request) -> Path:
    """Where Chroma keeps its files: under the data dir, or the Chroma server's own directory."""
    if stores == "servers":
        return request.getfixturevalue("servers").chroma.path
    return data_dir / "chroma"


@pytest.fixture
def cli_env(data_dir) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINICBOT_")}
    env.update(CLINICBOT_DATA_DIR=str(data_dir), CLINICBOT_KNOWLEDGE_DIR=str(KNOWLEDGE))
    if _stores is not None:
        env.update(_stores.env())
    return env


def run_cli(args: list[str], env: dict[str, str], stdin: bytes | str | None = None, timeout: int = 180):
    data = stdin.encode() if isinstance(stdin, str) else stdin
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], input=data, env=env, cwd=ROOT, capture_output=True, timeout=timeout
    )


def files_containing(folder: Path, needles: list[str]) -> list[str]:
    """Every file under folder whose bytes contain any needle (case-insensitive)."""
    found = []
    lowered = [n.lower().encode() for n in needles]
    for path in folder.rglob("*"):
        if path.is_file():
            blob = path.read_bytes().lower()
            found += [f"{path}: {n.decode()}" for n in lowered if n in blob]
    return found


def database_text(url: str) -> str:
    """Every value in every table of the database at `url`, as one string: to look for text that must not be there."""
    from sqlalchemy import MetaData, create_engine, select

    engine = create_engine(url)
    try:
        tables = MetaData()
        tables.reflect(engine)
        with engine.connect() as conn:
            return "\n".join(
                " ".join(str(value) for value in row)
                for table in tables.sorted_tables
                for row in conn.execute(select(table))
            )
    finally:
        engine.dispose()


@pytest.fixture
def captured_logs(caplog):
    caplog.set_level(logging.DEBUG)
    return caplog
