"""Score triage as the pipeline runs it (rules, then the head over the folded message's embedding) on a split.

    .venv/bin/python evals/triage/score.py --split dev       # while tuning
    .venv/bin/python evals/triage/score.py --split test      # once, at the end; writes report-test.md

Also scores the rules alone, the step as it was before the head, on the same messages.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from bot.chat import serving_knowledge  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.embed import Embedder  # noqa: E402
from bot.fold import fold  # noqa: E402
from bot.retrieve import AliasMatcher  # noqa: E402
from bot.triage import Triage  # noqa: E402

AFTER_TREATMENT = "aes_"  # subtypes of danger signs after a treatment in the written set


def figures(rows: list[dict], got: list[str]) -> dict[str, tuple[int, int]]:
    """target → (hits, cases)."""

    def rate(select, ok) -> tuple[int, int]:
        chosen = [g for r, g in zip(rows, got, strict=True) if select(r)]
        return sum(ok(g) for g in chosen), len(chosen)

    emergency = lambda r: r["label"] == "emergency"  # noqa: E731
    return {
        "emergency recall, after treatments": rate(
            lambda r: emergency(r) and r["subtype"].startswith(AFTER_TREATMENT), lambda g: g == "emergency"
        ),
        "emergency recall, general medical": rate(
            lambda r: emergency(r) and not r["subtype"].startswith(AFTER_TREATMENT), lambda g: g == "emergency"
        ),
        "emergency recall, all": rate(emergency, lambda g: g == "emergency"),
        "emergencies sent on to an answer": rate(emergency, lambda g: g == "pass"),
        "false emergencies, in-scope questions": rate(lambda r: r["label"] == "answer", lambda g: g == "emergency"),
        "false emergencies, non-urgent medicine": rate(
            lambda r: r["subtype"] == "other_medicine", lambda g: g == "emergency"
        ),
        "refer recall": rate(lambda r: r["label"] == "refer", lambda g: g == "refer"),
        "injections and off-topic refused": rate(
            lambda r: r["subtype"] in ("injection", "off_topic", "harmful"), lambda g: g != "pass"
        ),
        "non-urgent medicine kept from answers": rate(
            lambda r: r["subtype"] == "other_medicine", lambda g: g != "pass"
        ),
        "in-scope questions passed to retrieval": rate(lambda r: r["label"] == "answer", lambda g: g == "pass"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=("train", "dev", "test"), default="dev")
    parser.add_argument("--misses", action="store_true", help="print the messages decided wrongly (not for test)")
    args = parser.parse_args()
    rows = [json.loads(line) for line in (HERE / f"{args.split}.jsonl").read_text(encoding="utf-8").splitlines()]
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    embedder = Embedder(settings.embedding_model_path, settings.embedding_model_sha256, settings.torch_threads)
    triage, rules_only = Triage(), Triage(head=False)
    texts = [fold(r["text"]) for r in rows]
    vectors = [embedder.embed_query(t) for t in texts]
    names = AliasMatcher(serving_knowledge(settings).aliases)
    started = time.perf_counter()
    named = [bool(names.find(t)) for t in texts]
    decisions = [triage.classify(t, v, embedder.encode, n) for t, v, n in zip(texts, vectors, named, strict=True)]
    head_ms = (time.perf_counter() - started) * 1000 / len(rows)
    started = time.perf_counter()
    ruled = [rules_only.classify(t) for t in texts]
    rules_ms = (time.perf_counter() - started) * 1000 / len(rows)
    now, before = figures(rows, [d.kind for d in decisions]), figures(rows, [d.kind for d in ruled])
    lines = [
        f"## Triage on the {args.split} split ({len(rows)} messages)",
        "",
        f"Labels: {dict(sorted(Counter(r['label'] for r in rows).items()))}; "
        f"sources: {dict(sorted(Counter(r['source'] for r in rows).items()))}.",
        "",
        "| target | rules and head | rules alone (before) |",
        "|---|---|---|",
    ]
    for name, (hits, cases) in now.items():
        old_hits, _ = before[name]
        lines.append(f"| {name} | {hits / max(cases, 1):.3f} ({hits}/{cases}) | {old_hits / max(cases, 1):.3f} |")
    fired = Counter(d.rule if d.rule.startswith("model.") else d.rule.split(".")[0] for d in decisions)
    lines += [
        "",
        f"Decided by: {dict(sorted(fired.items()))}.",
        f"Time per message, the embedding already made: {head_ms:.2f} ms with the head, {rules_ms:.2f} ms rules alone.",
    ]
    report = "\n".join(lines)
    print(report)
    if args.split == "test":
        (HERE / "report-test.md").write_text(report + "\n", encoding="utf-8")
    if args.misses and args.split != "test":
        for row, decision in zip(rows, decisions, strict=True):
            expected = {"answer": "pass"}.get(row["label"], row["label"])
            if decision.kind != expected:
                print(f"{row['label']:>12} → {decision.kind:<12} {decision.rule:<28} {row['text'][:110]}")


if __name__ == "__main__":
    main()
