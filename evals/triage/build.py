"""Build the triage data set: public sources and cases written without sight of the rules, split train/dev/test.

    .venv/bin/python evals/triage/build.py --mirrors /work/.mirror

The public sources are read from local git mirrors (`fetch` brought them here; CI never needs them): the built
files in `evals/triage/{train,dev,test}.jsonl` are committed, with `SOURCES.md` saying where each line came from.
Splits are made by a hash of the normalised text, so a message and its near-copy with other spacing or case land
in the same split, and a rebuild gives the same splits. Nothing here reads the reserved sources of issue 12.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import subprocess
import xml.etree.ElementTree as ElementTree
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
LABELS = ("emergency", "refer", "out_of_scope", "answer")
SPLIT = (("train", 60), ("dev", 20), ("test", 20))  # percent
# Words that make a public medical question about the clinic's own treatments: left out of the public negatives
# (their label would be `answer` or `refer`, which the public sets do not tell us).
CLINIC_WORDS = re.compile(
    r"botox|botulinum|filler|hyaluron|collagen|laser|peel|tattoo|vein|sclero|cosmetic|wrinkle|skin|acne|hair|scar"
    r"|cellulite|fat|liposuc|face|facial|lip|pregnan|breastfe|isotretinoin|accutane|retin",
    re.IGNORECASE,
)


def git_show(repo: Path, path: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "show", f"HEAD:{path}"], capture_output=True, check=True
    ).stdout.decode()


def git_files(repo: Path, folder: str) -> list[str]:
    out = subprocess.run(["git", "-C", str(repo), "ls-tree", "-r", "--name-only", "HEAD", folder], capture_output=True)
    return sorted(out.stdout.decode().split())


def medquad(repo: Path, per_folder: int = 30) -> list[dict]:
    """Consumer-health questions of NIH sites (CC BY 4.0): general medicine, not urgent, not about our treatments."""
    rows: list[dict] = []
    rng = random.Random(12)
    folders = [f for f in git_files(repo, ".") if "/" in f]
    for folder in sorted({f.split("/")[0] for f in folders if f.endswith(".xml")}):
        files = [f for f in folders if f.startswith(folder + "/")]
        rng.shuffle(files)
        taken = 0
        for name in files:
            if taken >= per_folder:
                break
            try:
                root = ElementTree.fromstring(git_show(repo, name))
            except ElementTree.ParseError:
                continue
            questions = [q.text.strip() for q in root.iter("Question") if q.text and q.text.strip()]
            if not questions:
                continue
            question = rng.choice(questions)
            if CLINIC_WORDS.search(question):
                continue
            rows.append(_row(question, "out_of_scope", "other_medicine", "medquad", f"MedQuAD {name}"))
            taken += 1
    return rows


def liveqa(repo: Path) -> list[dict]:
    """Consumer questions sent to the US National Library of Medicine (TREC 2017 LiveQA medical test set)."""
    root = ElementTree.fromstring(git_show(repo, "TestDataset/TREC-2017-LiveQA-Medical-Test.xml"))
    rows = []
    for question in root.iter("NLM-QUESTION"):
        message = " ".join((question.findtext("Original-Question/MESSAGE") or "").split())
        if not message or len(message.split()) > 120 or CLINIC_WORDS.search(message):
            continue
        rows.append(_row(message, "out_of_scope", "other_medicine", "liveqa", f"LiveQA {question.get('qid')}"))
    return rows


def promptmap(repo: Path) -> list[dict]:
    """The attack prompts of utkusen/promptmap's rule files (GPL-3.0): injections, jailbreaks, prompt stealing."""
    import yaml

    rows = []
    for name in git_files(repo, "rules"):
        if not name.endswith(".yaml"):
            continue
        rule = yaml.safe_load(git_show(repo, name)) or {}
        prompt = " ".join(str(rule.get("prompt", "")).split())
        if prompt:
            rows.append(_row(prompt, "out_of_scope", "injection", "promptmap", f"promptmap {name}"))
    return rows


def written() -> list[dict]:
    """Cases written for this set by writers who never saw the bot's rules (evals/triage/written/*.jsonl)."""
    rows = []
    for path in sorted((HERE / "written").glob("*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                case = json.loads(line)
                origin = f"written/{path.name}:{number}"
                rows.append(_row(case["text"], case["label"], case.get("subtype", ""), "written", origin, case))
    return rows


def own_eval() -> list[dict]:
    """The repository's own evaluation questions (the old rules were fitted to them): train only."""
    kinds = {"answer": "answer", "unknown": "answer", "emergency": "emergency", "refer": "refer"}
    rows = []
    for line in (HERE.parent / "questions.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            case = json.loads(line)
            label = kinds.get(case["expect"], "out_of_scope")
            rows.append(_row(case["question"], label, case.get("note", "")[:40], "own-eval", f"questions {case['id']}"))
    return rows


def _row(text: str, label: str, subtype: str, source: str, origin: str, case: dict | None = None) -> dict:
    assert label in LABELS, (label, origin)
    case = case or {}
    return {
        "text": text,
        "label": label,
        "subtype": subtype,
        "register": case.get("register", "plain"),
        "lang": case.get("lang", "en"),
        "source": source,
        "origin": origin,
    }


def split_of(text: str) -> str:
    key = re.sub(r"\W+", " ", text.lower()).strip()
    bucket = int(hashlib.sha256(key.encode()).hexdigest(), 16) % 100
    for name, share in SPLIT:
        if bucket < share:
            return name
        bucket -= share
    return SPLIT[-1][0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mirrors", type=Path, default=Path("/work/.mirror"))
    args = parser.parse_args()
    rows = written()
    rows += medquad(args.mirrors / "abachaa+MedQuAD" / "repo")
    rows += liveqa(args.mirrors / "abachaa+LiveQA_MedicalTask_TREC2017" / "repo")
    rows += promptmap(args.mirrors / "utkusen+promptmap" / "repo")
    seen: set[str] = set()
    splits: dict[str, list[dict]] = {name: [] for name, _ in SPLIT}
    for row in rows:
        key = re.sub(r"\W+", " ", row["text"].lower()).strip()
        if key in seen:
            continue
        seen.add(key)
        splits[split_of(row["text"])].append(row)
    for row in own_eval():  # fitted-to data never scores the new step: train only
        key = re.sub(r"\W+", " ", row["text"].lower()).strip()
        if key not in seen:
            seen.add(key)
            splits["train"].append(row)
    for name, items in splits.items():
        with open(HERE / f"{name}.jsonl", "w", encoding="utf-8") as out:
            for row in items:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
        counts = Counter(r["label"] for r in items)
        print(name, len(items), dict(sorted(counts.items())), dict(Counter(r["source"] for r in items)))


if __name__ == "__main__":
    main()
