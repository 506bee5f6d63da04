"""Ingest is incremental by content hash and crash-safe: the previous index serves until the new one is whole."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from bot.index import Index, connect
from bot.ingest import ingest
from tests.conftest import KNOWLEDGE, ROOT, make_settings, run_cli


@pytest.fixture
def knowledge(tmp_path):
    target = tmp_path / "knowledge"
    shutil.copytree(KNOWLEDGE, target)
    return target


def test_only_changed_chunks_are_embedded_again(data_dir, knowledge, models):
    path = knowledge / "explainers" / "hydrafacial.md"
    path.write_text(
        path.read_text().replace("## Downtime\n", "## Downtime\n\nA HydraFacial has no downtime for most people.\n", 1)
    )
    report = ingest(make_settings(data_dir, knowledge), embedder=models.embedder)
    assert report.updated == ["hydrafacial#downtime"]
    assert report.added == [] and report.removed == []
    assert 1 <= report.embedded <= 12  # the section and its sentences, not the whole knowledge base


def test_drafts_are_not_served(data_dir, knowledge, models, pipeline):
    path = knowledge / "explainers" / "tattoo-removal.md"
    path.write_text(path.read_text().replace("status: sample", "status: draft"))
    report = ingest(make_settings(data_dir, knowledge), embedder=models.embedder)
    assert report.removed and all(c.startswith("tattoo-removal#") for c in report.removed)
    snapshot = pipeline.search.index.snapshot(max_age_s=0)
    assert not any(r.explainer_id == "tattoo-removal" for r in snapshot.sections)


def _edit_every_paragraph(knowledge):
    for path in (knowledge / "explainers").glob("*.md"):
        text = path.read_text()
        front, body = text.split("\n---\n", 1)
        # every line of prose or list; not headings, the notice, or a bold line standing alone (a question, a tier)
        body = re.sub(r"(?m)^(?!#|>|\*\*[^*]*\*\*\s*$|\s*$)(.+)$", r"\1 Ask the clinic if unsure.", body)
        path.write_text(front + "\n---\n" + body)


def test_an_ingest_killed_half_way_leaves_the_previous_index_serving(data_dir, knowledge, cli_env):
    settings = make_settings(data_dir)
    before = Index(connect(settings), None, settings.chroma_prefix).active_generation()  # type: ignore[arg-type]
    assert before is not None  # the index this test expects to keep serving
    _edit_every_paragraph(knowledge)
    env = dict(cli_env, CLINICBOT_KNOWLEDGE_DIR=str(knowledge))
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "ingest"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 240
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("written ") or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    assert Index(connect(settings), None, settings.chroma_prefix).active_generation() == before  # type: ignore[arg-type]
    answer = run_cli(["ask", "how long does a hydrafacial take"], cli_env)
    assert answer.returncode == 0
    text = answer.stdout.decode()
    assert text.startswith("[answer]") and "Ask the clinic if unsure." not in text

    finished = run_cli(["ingest"], env, timeout=400)
    assert finished.returncode == 0, finished.stderr.decode()[-400:]
    index = Index(connect(settings), None, settings.chroma_prefix)  # type: ignore[arg-type]
    assert index.active_generation() != before
    assert all("Ask the clinic if unsure." in row.text for row in index.snapshot().sections if "faq" not in row.id)


def test_a_running_pipeline_follows_when_other_ingests_retire_its_generation(data_dir, knowledge, models, pipeline):
    assert pipeline.ask("what is ipl").kind == "answer"
    path = knowledge / "explainers" / "ipl-photofacial.md"
    for marker in ("First edit.", "Second edit."):  # the generation the pipeline read is deleted by the second
        path.write_text(path.read_text().replace("## Downtime\n", f"## Downtime\n\n{marker}\n", 1))
        ingest(make_settings(data_dir, knowledge), embedder=models.embedder)
    pipeline.search.index._checked_at = time.monotonic()  # as if it had checked the pointer a moment before
    reply = pipeline.ask("what is the downtime after ipl")
    assert reply.kind == "answer" and reply.rule == "answer.extractive"
