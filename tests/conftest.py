"""Shared fixtures: models load once per session; every test gets its own data dir (real Chroma, real SQLite)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
KNOWLEDGE = ROOT / "knowledge"


def make_settings(data_dir: Path, knowledge_dir: Path = KNOWLEDGE, **extra: object):
    from bot.config import Settings

    extra.setdefault("llm_allow_network", False)  # any accidental real model call in tests fails loudly
    return Settings(_env_file=None, data_dir=data_dir, knowledge_dir=knowledge_dir, **extra)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def models():
    from bot.chat import Models

    return Models.load(make_settings(Path("/nonexistent")))


@pytest.fixture(scope="session")
def built_data(tmp_path_factory, models) -> Path:
    """One real ingest of knowledge/ per session; tests copy it into their own data dir."""
    from bot.ingest import ingest

    data = tmp_path_factory.mktemp("built") / "data"
    ingest(make_settings(data), embedder=models.embedder)
    return data


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
def cli_env(data_dir) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINICBOT_")}
    env.update(CLINICBOT_DATA_DIR=str(data_dir), CLINICBOT_KNOWLEDGE_DIR=str(KNOWLEDGE))
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


@pytest.fixture
def captured_logs(caplog):
    caplog.set_level(logging.DEBUG)
    return caplog
