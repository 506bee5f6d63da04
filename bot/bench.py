"""Benchmark: cold start, ingest time, per-message latency by step, and redaction alone.

Everything runs against a throwaway data dir: the explainers are ingested into it first, and the cold-start
process, the pipeline and its database all point there, so the user's index and database are never touched.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bot.chat import Pipeline
from bot.config import Settings
from bot.errors import ClinicbotError
from bot.evaluate import STEPS, load_jsonl, load_targets, percentiles
from bot.ingest import ingest
from bot.redact import Redactor

WARM_UP = 5
COLD_QUESTION = "what is botox"
DEFAULT_TARGETS = {"p50_ms": 30.0, "p95_ms": 60.0, "redact_p95_ms": 20.0}


def scratch_settings(settings: Settings, data_dir: Path) -> Settings:
    """The same settings with every piece of state (embedded Chroma, SQLite) under `data_dir`."""
    return settings.model_copy(update={"data_dir": data_dir, "chroma_url": "", "database_url": ""})


def time_ingest(settings: Settings) -> dict[str, Any]:
    """A fresh ingest, then a second one with nothing changed; each loads the embedding model itself."""
    start = time.perf_counter()
    fresh = ingest(settings)
    fresh_s = time.perf_counter() - start
    start = time.perf_counter()
    again = ingest(settings)
    again_s = time.perf_counter() - start
    return {
        "fresh_s": fresh_s,
        "chunks": len(fresh.added),
        "embedded": fresh.embedded,
        "again_s": again_s,
        "again_changed": again.changed,
    }


def cold_start(settings: Settings) -> dict[str, Any]:
    """Seconds from starting `python -m bot ask` to its answer line, with this environment and the scratch data."""
    env = dict(os.environ)
    env.update(
        CLINICBOT_DATA_DIR=str(settings.data_dir),
        CLINICBOT_KNOWLEDGE_DIR=str(settings.knowledge_dir.resolve()),
        CLINICBOT_CHROMA_URL="",
        CLINICBOT_DATABASE_URL="",
    )
    start = time.perf_counter()
    first_answer = None
    with subprocess.Popen(
        [sys.executable, "-m", "bot", "ask", COLD_QUESTION],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            if first_answer is None and line.startswith("["):
                first_answer = time.perf_counter() - start
        code = process.wait()
    return {"first_answer_s": first_answer, "exit_s": time.perf_counter() - start, "exit_code": code}


def pick(questions: list[str], limit: int) -> list[str]:
    """`limit` questions spread evenly over the file (so every kind is in the mix), cycling if it is shorter."""
    if limit <= len(questions):
        return [questions[index * len(questions) // limit] for index in range(limit)]
    return [questions[index % len(questions)] for index in range(limit)]


def time_messages(pipeline: Pipeline, questions: list[str], limit: int) -> dict[str, Any]:
    """Warm up, then `limit` questions from the file, each in a fresh session."""
    for index in range(WARM_UP):
        pipeline.ask(questions[-1 - index])
    totals: list[float] = []
    steps: dict[str, list[float]] = {step: [] for step in STEPS}
    kinds: Counter[str] = Counter()
    started = time.perf_counter()
    for question in pick(questions, limit):
        try:
            reply = pipeline.ask(question)
        except ClinicbotError:
            kinds["error"] += 1
            continue
        kinds[reply.kind] += 1
        totals.append(reply.latency_ms)
        for step, ms in reply.timings_ms.items():
            steps.setdefault(step, []).append(ms)
    wall = time.perf_counter() - started
    return {
        "n": len(totals),
        "kinds": dict(kinds),
        "per_second": len(totals) / wall if wall else 0.0,
        "total": {**percentiles(totals), "n": len(totals)},
        "steps": {step: {**percentiles(values), "n": len(values)} for step, values in steps.items()},
    }


def time_redaction(redactor: Redactor, texts: list[str]) -> dict[str, Any]:
    redactor.redact(texts[0])
    times = []
    for text in texts:
        start = time.perf_counter()
        redactor.redact(text)
        times.append((time.perf_counter() - start) * 1000)
    return {**percentiles(times, (50, 95, 99)), "n": len(times)}


def verdict(value: float | None, bound: float, label: str) -> str:
    if value is None:
        return f"{label} ≤ {bound:g} n/a"
    return f"{label} ≤ {bound:g} {'PASS' if value <= bound else 'MISS'}"


def ms(value: float | None) -> str:
    return f"{value:8.1f}" if value is not None else f"{'n/a':>8}"


def report(
    settings: Settings,
    ingest_times: dict[str, Any],
    cold: dict[str, Any],
    messages: dict[str, Any],
    redaction: dict[str, Any],
    targets: dict[str, float],
) -> str:
    answers = f"LLM {settings.llm}" if settings.llm else "extractive answers"
    first = cold["first_answer_s"]
    cold_line = f"{first:.2f} s" if first is not None else f"no answer (exit code {cold['exit_code']})"
    lines = [
        f"clinicbot bench — {answers}, {os.cpu_count()} CPUs, torch_threads={settings.torch_threads}, scratch data dir",
        "",
        "startup",
        f"  cold start: process start to first answer     {cold_line} (process exit {cold['exit_s']:.2f} s)",
        f"  ingest, fresh ({ingest_times['chunks']} chunks, {ingest_times['embedded']} rows embedded)"
        f"   {ingest_times['fresh_s']:.2f} s",
        f"  ingest, nothing changed                        {ingest_times['again_s']:.2f} s"
        f"{'' if not ingest_times['again_changed'] else '  (unexpected: it changed the index)'}",
        "",
        f"per message ({messages['n']} messages, fresh session each, after {WARM_UP} warm-up; ms)",
        f"  {'step':<10}{'n':>6}{'p50':>8}{'p95':>8}{'p99':>8}",
    ]
    total = messages["total"]
    lines.append(
        f"  {'total':<10}{total['n']:>6}{ms(total['p50'])}{ms(total['p95'])}{ms(total['p99'])}   "
        f"{verdict(total['p50'], targets['p50_ms'], 'p50')}   {verdict(total['p95'], targets['p95_ms'], 'p95')}"
    )
    for step, row in messages["steps"].items():
        lines.append(f"  {step:<10}{row['n']:>6}{ms(row['p50'])}{ms(row['p95'])}{ms(row['p99'])}")
    kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(messages["kinds"].items()))
    lines += [
        f"  throughput {messages['per_second']:.1f} messages/s (one process, one at a time); kinds: {kinds}",
        "",
        f"redaction alone ({redaction['n']} texts of evals/pii.jsonl; ms)",
        f"  {'redact':<10}{redaction['n']:>6}{ms(redaction['p50'])}{ms(redaction['p95'])}{ms(redaction['p99'])}   "
        f"{verdict(redaction['p95'], targets['redact_p95_ms'], 'p95')}",
    ]
    return "\n".join(lines)


def pii_path(questions: Path) -> Path:
    beside = questions.parent / "pii.jsonl"
    return beside if beside.is_file() else Path("evals/pii.jsonl")


def run_bench(settings: Settings, questions: Path, limit: int) -> str:
    """Run every measurement in a scratch data dir and return the printed report."""
    try:
        targets = {**DEFAULT_TARGETS, **(load_targets(questions).get("latency") or {})}
    except FileNotFoundError:
        targets = dict(DEFAULT_TARGETS)
    texts = [case["question"] for case in load_jsonl(questions)]
    pii_texts = [case["text"] for case in load_jsonl(pii_path(questions))]
    with tempfile.TemporaryDirectory(prefix="clinicbot-bench-", ignore_cleanup_errors=True) as scratch:
        bench_settings = scratch_settings(settings, Path(scratch))
        ingest_times = time_ingest(bench_settings)
        cold = cold_start(bench_settings)
        pipeline = Pipeline.build(bench_settings)
        messages = time_messages(pipeline, texts, limit)
        redaction = time_redaction(pipeline.redactor, pii_texts)
        if pipeline.store is not None:
            pipeline.store.engine.dispose()
    return report(settings, ingest_times, cold, messages, redaction, targets)
