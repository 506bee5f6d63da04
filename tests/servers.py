"""Throwaway PostgreSQL and Chroma servers on loopback for tests: start, stop, and start again on the same port and data.

They listen on 127.0.0.1 only, keep every file in a temporary directory, and never call out (Chroma's telemetry is off).
Each is a child of the test process that also dies with it, so a killed test run leaves no server behind.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO, NoReturn

import pytest

REQUIRE = "CLINICBOT_REQUIRE_SERVERS"  # "1": a server that cannot run here fails the tests instead of skipping them
LOCK_TIMEOUT_S = 60  # PostgreSQL's lock_timeout in the test clusters (advisory locks included)
PG_USER = "postgres"  # the system user Debian's postgresql package makes; PostgreSQL refuses to run as root

_live: set[Server] = set()


class ServerUnavailable(Exception):
    """This machine cannot run the server (a binary or the user it needs is missing); the message says what to do."""


def unavailable(reason: str) -> NoReturn:
    """Skip the test, or fail it when CLINICBOT_REQUIRE_SERVERS=1 (CI, where the servers must run)."""
    if os.environ.get(REQUIRE) == "1":
        pytest.fail(f"{reason} ({REQUIRE}=1)", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Server:
    """One server process: start() waits until it serves, stop() ends it, start() again reuses its port and data."""

    name = "server"
    start_timeout_s = 60.0

    def __init__(self, prefix: str, port: int | None = None):
        self.root = Path(tempfile.mkdtemp(prefix=prefix))  # under /tmp, which a non-root server user can reach
        self.port = port or free_port()
        self.log_path = self.root / f"{self.name}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        _live.add(self)

    # ---- what a subclass supplies ----------------------------------------------------------
    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "TZ": "UTC"}

    def ready(self) -> bool:
        raise NotImplementedError

    def prepare(self) -> None:
        """Make the data directory on first start."""

    # ---- lifecycle ---------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        if self.running:
            return
        self.prepare()
        if _port_open(self.port):
            raise ServerUnavailable(
                f"port {self.port} on 127.0.0.1 is taken by another program; cannot start {self.name}"
            )
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the life of the process
        self._proc = subprocess.Popen(
            self.command(),
            cwd=self.root,
            env=self.environment(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches pytest, whose cleanup stops the server in order
        )
        self._wait(self.ready, f"{self.name} to accept connections on 127.0.0.1:{self.port}", self.start_timeout_s)

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> None:
        """End the server (SIGTERM by default; a subclass may name gentler or harsher signals) and wait for it."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None
        deadline = time.monotonic() + 10
        while _port_open(self.port) and time.monotonic() < deadline:  # the port must be free for a restart
            time.sleep(0.05)

    def restart(self) -> None:
        self.stop()
        self.start()

    def freeze(self) -> None:
        """Stop the server and every process it forked (SIGSTOP): connections stay open and nothing answers.
        PostgreSQL's backends each start a session of their own, so the tree is walked, not the process group."""
        for pid in self._tree():
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in reversed(self._tree()):
            os.kill(pid, signal.SIGCONT)

    def _tree(self) -> list[int]:
        if self._proc is None:
            return []
        tree, todo = [], [self._proc.pid]
        while todo:
            pid = todo.pop()
            tree.append(pid)
            children = Path(f"/proc/{pid}/task/{pid}/children")
            with contextlib.suppress(OSError):
                todo += [int(child) for child in children.read_text().split()]
        return tree

    def close(self) -> None:
        """Stop the server and delete its files."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            _live.discard(self)

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _wait(self, check: Callable[[], bool], what: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                code = None if self._proc is None else self._proc.returncode
                raise RuntimeError(f"{self.name} exited with {code} while starting; its log ends:\n{self.log_tail()}")
            if check():
                return
            time.sleep(0.1)
        self.stop(signal.SIGKILL)
        raise RuntimeError(f"gave up waiting {timeout_s:.0f} s for {what}; its log ends:\n{self.log_tail()}")


def _dies_with_us(command: list[str], user: str | None, sig: str) -> list[str]:
    """The command run as `user` (when we are root) and sent `sig` if the test process dies without cleaning up."""
    setpriv = shutil.which("setpriv")
    if setpriv:
        drop = [f"--reuid={user}", f"--regid={user}", "--init-groups"] if user else []
        # pdeathsig fires when the thread that started the child ends: servers are started from pytest's main thread
        return [setpriv, *drop, f"--pdeathsig={sig}", "--", *command]
    if user:
        return ["runuser", "-u", user, "--", *command]
    return command


class PostgresServer(Server):
    """A PostgreSQL cluster made by initdb: trust auth for 127.0.0.1 only, its socket inside its own directory."""

    name = "postgresql"

    def __init__(self, port: int | None = None):
        self.bindir = _pg_bindir()
        self.user = _pg_user()
        super().__init__("clinicbot-pg-", port)
        self.data = self.root / "data"
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)

    def url(self, database: str = "clinicbot") -> str:
        """The SQLAlchemy URL the app is given."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def prepare(self) -> None:
        if (self.data / "PG_VERSION").exists():
            return
        command = [
            str(self.bindir / "initdb"),
            *("-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"),
        ]
        done = subprocess.run(
            _dies_with_us(command, self.user, "KILL"),
            cwd=self.root,
            env=self.environment(),
            capture_output=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr.decode(errors='replace')[-800:]}")
        (self.data / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# throwaway test cluster: loopback only, durability traded for speed\n"
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{self.root}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\n"
                f"# a test waiting this long for a lock is stuck: fail it instead of hanging the run\n"
                f"lock_timeout = '{LOCK_TIMEOUT_S}s'\n"
            )

    def command(self) -> list[str]:
        # SIGINT is PostgreSQL's "fast" shutdown: it ends client sessions and exits cleanly
        return _dies_with_us([str(self.bindir / "postgres"), "-D", str(self.data)], self.user, "INT")

    def ready(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(
                host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", connect_timeout=2
            ):
                return True
        except psycopg.OperationalError:
            return False

    def stop(self, sig: int = signal.SIGINT, timeout_s: float = 30.0) -> None:
        """Fast shutdown by default; SIGQUIT is an immediate one (like a crash: no checkpoint)."""
        super().stop(sig, timeout_s)

    # ---- databases -----------------------------------------------------------------------------
    def sql(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True, connect_timeout=10
        ) as conn:
            conn.execute(statement)  # type: ignore[arg-type]

    def create_database(self, name: str, template: str | None = None) -> str:
        """A new database (a copy of `template`, which no one may be connected to); returns its URL."""
        self.sql(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # ends the sessions still open on it

    def end_sessions(self, name: str) -> None:
        """End every session on the database `name` and wait until they are gone."""
        import psycopg

        self.sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with psycopg.connect(
                host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", connect_timeout=10
            ) as conn:
                row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)).fetchone()
            if row is not None and row[0] == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"sessions on the database {name} did not end")

    def freeze_template(self, name: str) -> None:
        """Refuse new sessions on `name` and end the open ones, so create_database(template=name) can copy it."""
        self.sql(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        self.end_sessions(name)


class ChromaServer(Server):
    """`chroma run` from the installed chromadb package, persisting under its own directory."""

    name = "chroma"

    def __init__(self, port: int | None = None):
        self.executable = _chroma_executable()
        super().__init__("clinicbot-chroma-", port)
        self.path = self.root / "db"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        run = [self.executable, "run", "--path", str(self.path), "--host", "127.0.0.1", "--port", str(self.port)]
        return _dies_with_us(run, None, "KILL")

    def environment(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("CLINICBOT_", "CHROMA_", "OTEL_")) and k.upper() not in ("HTTP_PROXY", "HTTPS_PROXY")
        }
        # no product telemetry, no tracing exporter: the server talks to the tests and nothing else
        env.update(ANONYMIZED_TELEMETRY="False", NO_COLOR="1", RUST_LOG="warn")
        return env

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/api/v2/heartbeat", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False


def _pg_bindir() -> Path:
    """Where initdb and postgres are: CLINICBOT_PG_BINDIR, the newest /usr/lib/postgresql/*/bin, or the PATH."""
    candidates = [os.environ.get("CLINICBOT_PG_BINDIR", "")]
    candidates += sorted(
        (str(p) for p in Path("/usr/lib/postgresql").glob("*/bin")),
        key=lambda p: int(Path(p).parent.name),
        reverse=True,
    )
    found = shutil.which("initdb")
    candidates.append(str(Path(found).parent) if found else "")
    for folder in filter(None, candidates):
        if (Path(folder) / "initdb").is_file() and (Path(folder) / "postgres").is_file():
            return Path(folder)
    raise ServerUnavailable(
        "PostgreSQL's initdb and postgres were not found: install Debian's postgresql package "
        "or set CLINICBOT_PG_BINDIR to the folder holding them"
    )


def _pg_user() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        raise ServerUnavailable(
            f"running as root, but PostgreSQL refuses to run as root and there is no '{PG_USER}' user to run it as: "
            f"create one with `useradd --system {PG_USER}`"
        ) from None
    return PG_USER


def _chroma_executable() -> str:
    beside = Path(sys.executable).with_name("chroma")
    found = str(beside) if beside.is_file() else shutil.which("chroma")
    if not found:
        raise ServerUnavailable(
            "the `chroma` command (from the chromadb package) was not found beside the Python in use"
        )
    return found


@atexit.register
def _close_all() -> None:
    for server in list(_live):
        with contextlib.suppress(Exception):
            server.close()
