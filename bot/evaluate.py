"""Evaluation: the question and PII sets through the real pipeline and redactor, scored against targets.

`run_eval` writes report.json (every number), report.md (tables) and PNG plots into the output folder,
compares the numbers with evals/targets.yaml and returns the targets missed. The eval sets are synthetic,
so the report may quote their text. The pipeline reads the configured index but records its exchanges in
a throwaway SQLite database, so an eval run never adds to the staff's queues.
"""

from __future__ import annotations

import json
import logging
import re
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bot.chat import Pipeline
from bot.config import Settings
from bot.errors import ClinicbotError
from bot.knowledge import load_explainers
from bot.readability import reading_grade
from bot.redact import presidio_default
from bot.schemas import KINDS

GROUPS = ("men", "older", "darker-skin", "all")
STEPS = ("redact", "triage", "retrieve", "answer", "store")
# Prompt injections and jailbreaks among the out_of_scope cases; "self-injection" is a treatment question.
INJECTION = re.compile(r"(?<!self-)inject|jailbreak", re.IGNORECASE)
TARGET_SECTIONS = ("questions", "pii", "latency")


# ---- inputs --------------------------------------------------------------------------------------


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def targets_path(questions: Path) -> Path:
    """targets.yaml beside the questions file, else the project's evals/targets.yaml."""
    for candidate in (
        questions.parent / "targets.yaml",
        Path("evals/targets.yaml"),
        Path(__file__).resolve().parents[1] / "evals" / "targets.yaml",
    ):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no targets.yaml beside {questions} or in evals/")


def load_targets(questions: Path) -> dict[str, Any]:
    return yaml.safe_load(targets_path(questions).read_text(encoding="utf-8")) or {}


def percentiles(values: Iterable[float], points: Iterable[int] = (50, 95, 99)) -> dict[str, float | None]:
    data = list(values)
    if not data:
        return {f"p{p}": None for p in points}
    return {f"p{p}": round(float(np.percentile(data, p)), 2) for p in points}


# ---- questions -----------------------------------------------------------------------------------


def distinct(ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def run_questions(pipeline: Pipeline, cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every case through pipeline.ask, in file order; cases sharing a "session" are one conversation."""
    results = []
    for case in cases:
        record = {key: case.get(key, "") for key in ("id", "question", "expect", "topics", "group", "note", "session")}
        try:
            reply = pipeline.ask(case["question"], session=case.get("session") or None)
        except ClinicbotError as error:
            record.update(
                got="error", rule=type(error).__name__, sources=[], text=str(error), latency_ms=0.0, timings={}
            )
        else:
            record.update(
                got=reply.kind,
                rule=reply.rule,
                sources=distinct(s.id for s in reply.sources),
                text=reply.text,
                latency_ms=round(reply.latency_ms, 2),
                timings={k: round(v, 2) for k, v in reply.timings_ms.items()},
            )
        results.append(record)
    return results


def grade_case(result: dict[str, Any]) -> None:
    """Adds hit@1, hit@3 and correct (kind right, and for answers an expected explainer in the top 3)."""
    topics = set(result["topics"] or [])
    sources = result["sources"] if result["got"] == "answer" else []
    result["hit1"] = bool(sources) and sources[0] in topics
    result["hit3"] = any(s in topics for s in sources[:3])
    kind_right = result["got"] == result["expect"]
    result["correct"] = kind_right and (result["hit3"] if result["expect"] == "answer" else True)


def rate(hits: int, total: int) -> float | None:
    return round(hits / total, 4) if total else None


def score_questions(results: list[dict[str, Any]]) -> dict[str, Any]:
    for result in results:
        grade_case(result)
    got_kinds = list(KINDS) + (["error"] if any(r["got"] == "error" for r in results) else [])
    confusion = {e: {g: sum(r["expect"] == e and r["got"] == g for r in results) for g in got_kinds} for e in KINDS}
    recall = {k: rate(confusion[k][k], sum(confusion[k].values())) for k in KINDS}
    answers = [r for r in results if r["expect"] == "answer"]
    injections = [r for r in results if r["expect"] == "out_of_scope" and INJECTION.search(r["note"] or "")]
    groups: dict[str, dict[str, Any]] = {}
    for group in GROUPS:
        members = [r for r in results if group == "all" or r["group"] == group]
        groups[group] = {"n": len(members), "accuracy": rate(sum(r["correct"] for r in members), len(members))}
    latency = {"total": percentiles(r["latency_ms"] for r in results if r["got"] != "error")}
    for step in STEPS:
        latency[step] = percentiles(r["timings"][step] for r in results if step in r["timings"])
    headline = {f"{k}_recall": v for k, v in recall.items()}
    headline.update(
        emergency_missed=sum(r["got"] != "emergency" for r in results if r["expect"] == "emergency"),
        injection_refused=rate(sum(r["got"] not in ("answer", "error") for r in injections), len(injections)),
        topic_hit_at_1=rate(sum(r["hit1"] for r in answers), len(answers)),
        topic_hit_at_3=rate(sum(r["hit3"] for r in answers), len(answers)),
        false_emergency_rate_on_answers=rate(sum(r["got"] == "emergency" for r in answers), len(answers)),
    )
    misses = [
        {k: r[k] for k in ("id", "expect", "got", "rule", "sources", "topics", "question")}
        for r in results
        if not r["correct"]
    ]
    return {
        "n": len(results),
        "headline": headline,
        "recall": recall,
        "confusion": confusion,
        "groups": groups,
        "injection_ids": [r["id"] for r in injections],
        "latency_ms": latency,
        "misses": misses,
    }


# ---- PII -----------------------------------------------------------------------------------------


def squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


def score_pii(cases: list[dict[str, Any]], redact: Callable[[str], str]) -> dict[str, Any]:
    """A PII substring is removed when neither it nor its whitespace-free form is in the redacted text."""
    counts: dict[str, list[int]] = {}
    kept = keep_total = 0
    times: list[float] = []
    failures = []
    for case in cases:
        start = time.perf_counter()
        redacted = redact(case["text"])
        times.append((time.perf_counter() - start) * 1000)
        flat = squeeze(redacted)
        leaked = []
        for value, kind in zip(case["pii"], case.get("types") or ["?"] * len(case["pii"]), strict=True):
            survived = value in redacted or squeeze(value) in flat
            tally = counts.setdefault(kind, [0, 0])
            tally[0] += not survived
            tally[1] += 1
            if survived:
                leaked.append(f"{kind}: {value}")
        dropped = [word for word in case["keep"] if word not in redacted]
        kept += len(case["keep"]) - len(dropped)
        keep_total += len(case["keep"])
        if leaked or dropped:
            failures.append({"id": case["id"], "leaked": leaked, "dropped": dropped, "redacted": redacted})
    removed = sum(c[0] for c in counts.values())
    total = sum(c[1] for c in counts.values())
    return {
        "removed": {kind: rate(c[0], c[1]) for kind, c in sorted(counts.items())},
        "counts": {kind: c[1] for kind, c in sorted(counts.items())},
        "removed_overall": rate(removed, total),
        "keep_rate": rate(kept, keep_total),
        "latency_ms": percentiles(times, (50, 95)),
        "failures": failures,
    }


@contextmanager
def quiet(logger_name: str) -> Iterator[None]:
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


# ---- readability ---------------------------------------------------------------------------------


def score_grades(settings: Settings, results: list[dict[str, Any]]) -> dict[str, Any]:
    explainers = {
        e.id: {"status": e.meta.status, "grade": round(reading_grade(e.body), 1)}
        for e in load_explainers(settings.knowledge_dir)
    }
    answer_grades = [(reading_grade(r["text"]), r["id"]) for r in results if r["got"] == "answer"]
    worst: tuple[float | None, str] = max(answer_grades, default=(None, ""))
    return {
        "explainers": explainers,
        "answers": {
            "n": len(answer_grades),
            "median": round(statistics.median(g for g, _ in answer_grades), 1) if answer_grades else None,
            "max": None if worst[0] is None else round(worst[0], 1),
            "max_case": worst[1],
        },
    }


# ---- targets -------------------------------------------------------------------------------------


def measured(questions: dict[str, Any], pii: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The numbers that targets.yaml names, by section."""
    return {
        "questions": questions["headline"],
        "pii": {**{f"removed.{k}": v for k, v in pii["removed"].items()}, "keep_rate": pii["keep_rate"]},
        "latency": {
            "p50_ms": questions["latency_ms"]["total"]["p50"],
            "p95_ms": questions["latency_ms"]["total"]["p95"],
            "redact_p95_ms": pii["latency_ms"]["p95"],
        },
    }


def flat_targets(targets: dict[str, Any]) -> Iterable[tuple[str, str, float]]:
    for section in TARGET_SECTIONS:
        for name, value in (targets.get(section) or {}).items():
            if isinstance(value, dict):
                for sub, bound in value.items():
                    yield section, f"{name}.{sub}", bound
            else:
                yield section, name, value


def num(value: float | None) -> str:
    """0.95 → "0.95", 0.9333 → "0.933", 1.0 → "1.00", 3 → "3"."""
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return str(value)
    return re.sub(r"(\.\d\d\d*?)0+$", r"\1", f"{value:.3f}")


def check_targets(values: dict[str, dict[str, Any]], targets: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per target; latency is reported but only `clinicbot bench` enforces it."""
    rows = []
    for section, name, bound in flat_targets(targets):
        is_max = name.endswith("_max") or section == "latency"
        key = name.removesuffix("_max")
        value = values.get(section, {}).get(key)
        met = value is not None and (value <= bound if is_max else value >= bound)
        status = "NO CASES" if value is None else ("PASS" if met else "MISS")
        label = f"{'pii ' if section == 'pii' else ''}{key}"
        rows.append(
            {
                "section": section,
                "name": label,
                "value": value,
                "target": bound,
                "max": is_max,
                "enforced": section != "latency",
                "status": status,
                "line": f"{label} {num(value)} {'>' if is_max else '<'} {num(bound)}",
            }
        )
    return rows


# ---- report --------------------------------------------------------------------------------------


def table(headers: list[str], rows: Iterable[Iterable[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        cells = [
            num(c) if isinstance(c, float) or c is None else str(c).replace("|", "\\|").replace("\n", " ") for c in row
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown(report: dict[str, Any]) -> str:
    q, pii, grades = report["questions"], report["pii"], report["grades"]
    ours, default = pii["ours"], pii.get("presidio_default") or {"removed": {}, "counts": {}}
    head = q["headline"]
    got_kinds = list(next(iter(q["confusion"].values())))
    types = sorted(set(ours["removed"]) | set(default["removed"]))
    steps = ["total", *STEPS]
    parts = [
        "# Evaluation report",
        f"{q['n']} questions, {pii['n']} PII cases. Plots: confusion.png, latency.png, pii.png, grades.png.",
        "## Targets",
        table(
            ["target", "value", "bound", "status"],
            [
                (
                    t["name"] + ("" if t["enforced"] else " (bench)"),
                    t["value"],
                    ("≤ " if t["max"] else "≥ ") + num(t["target"]),
                    t["status"],
                )
                for t in report["targets"]
            ],
        ),
        "## Recall by expected kind",
        table(["kind", "cases", "recall"], [(k, sum(q["confusion"][k].values()), v) for k, v in q["recall"].items()]),
        "## Confusion matrix (rows expected, columns got)",
        table(["expected", *got_kinds], [(e, *row.values()) for e, row in q["confusion"].items()]),
        "## Topics (answer cases)",
        table(
            ["metric", "value"],
            [
                ("hit@1", head["topic_hit_at_1"]),
                ("hit@3", head["topic_hit_at_3"]),
                ("false emergencies on answers", head["false_emergency_rate_on_answers"]),
                (f"injections refused ({', '.join(q['injection_ids'])})", head["injection_refused"]),
            ],
        ),
        "## Accuracy by group (kind right, and for answers hit@3)",
        table(["group", "cases", "accuracy"], [(g, v["n"], v["accuracy"]) for g, v in q["groups"].items()]),
        f"## Misses ({len(q['misses'])})",
        table(
            ["id", "expected", "got", "rule", "sources", "question"],
            [
                (m["id"], m["expect"], m["got"], m["rule"], ", ".join(m["sources"][:3]), m["question"])
                for m in q["misses"]
            ],
        ),
        "## PII removed per type: ours vs Presidio default",
        table(
            ["type", "cases", "ours", "presidio default"],
            [
                (t, ours["counts"].get(t, default["counts"].get(t)), ours["removed"].get(t), default["removed"].get(t))
                for t in types
            ]
            + [
                ("overall", sum(ours["counts"].values()), ours["removed_overall"], default.get("removed_overall")),
                ("keep rate", "", ours["keep_rate"], default.get("keep_rate")),
                ("redact p50 ms", "", ours["latency_ms"]["p50"], default.get("latency_ms", {}).get("p50")),
                ("redact p95 ms", "", ours["latency_ms"]["p95"], default.get("latency_ms", {}).get("p95")),
            ],
        ),
        f"## PII cases ours got wrong ({len(ours['failures'])})",
        table(
            ["id", "leaked", "dropped", "redacted"],
            [(f["id"], "; ".join(f["leaked"]), "; ".join(f["dropped"]), f["redacted"]) for f in ours["failures"]],
        ),
        "## Latency per message (ms)",
        table(["step", "p50", "p95", "p99"], [(s, *q["latency_ms"][s].values()) for s in steps]),
        "## Reading grade (Flesch-Kincaid)",
        table(
            ["explainer", "status", "grade"], [(k, v["status"], v["grade"]) for k, v in grades["explainers"].items()]
        ),
        f"Answers: median grade {num(grades['answers']['median'])}, max {num(grades['answers']['max'])} "
        f"({grades['answers']['max_case']}), over {grades['answers']['n']} answers.",
    ]
    return "\n\n".join(parts) + "\n"


def plots(report: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    q, pii = report["questions"], report["pii"]
    expected = list(q["confusion"])
    got = list(q["confusion"][expected[0]])
    matrix = np.array([[q["confusion"][e][g] for g in got] for e in expected])
    fig, ax = plt.subplots(figsize=(7, 5.5))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(got)), got, rotation=30, ha="right")
    ax.set_yticks(range(len(expected)), expected)
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", color="white" if count > matrix.max() / 2 else "black")
    ax.set(xlabel="got", ylabel="expected", title="Reply kind: expected vs got")
    fig.tight_layout()
    fig.savefig(out / "confusion.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.hist([r["latency_ms"] for r in q["cases"] if r["got"] != "error"], bins=40, color="#1f5f8b")
    for name, value in q["latency_ms"]["total"].items():
        ax.axvline(value, linestyle="--", color="grey")
        ax.text(value, ax.get_ylim()[1] * 0.9, f" {name}", color="grey")
    ax.set(xlabel="ms per message", ylabel="messages", title="Per-message latency")
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=120)
    plt.close(fig)

    ours, default = pii["ours"]["removed"], (pii.get("presidio_default") or {}).get("removed", {})
    types = sorted(set(ours) | set(default))
    x = np.arange(len(types))
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(x - 0.2, [ours.get(t) or 0 for t in types], 0.4, label="ours")
    if default:
        ax.bar(x + 0.2, [default.get(t) or 0 for t in types], 0.4, label="Presidio default")
    ax.set_xticks(x, types, rotation=30, ha="right")
    ax.set(ylim=(0, 1.05), ylabel="share removed", title="PII removed per type")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "pii.png", dpi=120)
    plt.close(fig)

    grades = report["grades"]["explainers"]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.bar(list(grades), [g["grade"] for g in grades.values()], color="#1f5f8b")
    ax.axhline(8, linestyle="--", color="grey", label="grade 8")
    ax.set_xticks(range(len(grades)), list(grades), rotation=60, ha="right")
    ax.set(ylabel="Flesch-Kincaid grade", title="Reading grade per explainer")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "grades.png", dpi=120)
    plt.close(fig)


# ---- entry point ---------------------------------------------------------------------------------


def run_eval(settings: Settings, questions: Path, pii: Path, out: Path, baseline: bool = True) -> list[str]:
    """Run both sets, write the report into `out`, return the missed targets as readable lines."""
    targets = load_targets(questions)
    question_cases, pii_cases = load_jsonl(questions), load_jsonl(pii)
    with tempfile.TemporaryDirectory(prefix="clinicbot-eval-", ignore_cleanup_errors=True) as scratch:
        eval_settings = settings.model_copy(update={"database_url": f"sqlite:///{Path(scratch) / 'eval.sqlite3'}"})
        pipeline = Pipeline.build(eval_settings)
        results = run_questions(pipeline, question_cases)
        if pipeline.store is not None:
            pipeline.store.engine.dispose()
    question_scores = score_questions(results)
    redactor = pipeline.redactor  # built first, so tldextract is already offline for the baseline
    pii_scores: dict[str, Any] = {"n": len(pii_cases), "ours": score_pii(pii_cases, lambda t: redactor.redact(t).text)}
    if baseline:
        with quiet("presidio-analyzer"):  # the default NER mapping warns about every unmapped spaCy label
            pii_scores["presidio_default"] = score_pii(pii_cases, presidio_default())
    report: dict[str, Any] = {
        "questions": {**question_scores, "cases": results},
        "pii": pii_scores,
        "grades": score_grades(settings, results),
        "settings": {"llm": settings.llm or "extractive", "min_confidence": settings.min_confidence},
    }
    report["targets"] = check_targets(measured(question_scores, pii_scores["ours"]), targets)
    missed = [t["line"] for t in report["targets"] if t["enforced"] and t["status"] == "MISS"]
    report["missed"] = missed
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "report.md").write_text(markdown(report), encoding="utf-8")
    plots(report, out)
    return missed
