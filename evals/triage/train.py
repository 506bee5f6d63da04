"""Train triage's head on the train split and set its thresholds on dev; the test split is never read here.

    .venv/bin/python evals/triage/train.py

Writes bot/triage/head.npz and head.sha256, and prints the dev figures. Reproducible: fixed seed, the bundled
MiniLM, scikit-learn's logistic regression (a dev-time tool; the app only needs numpy to use the result).
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from bot.chat import serving_knowledge  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.embed import Embedder  # noqa: E402
from bot.fold import fold  # noqa: E402
from bot.retrieve import AliasMatcher  # noqa: E402
from bot.triage.head import LABELS, Thresholds, features  # noqa: E402

TARGET_EMERGENCY_RECALL = 0.97  # on dev; the rules floor and the sentence-by-sentence read add to it
MAX_FALSE_EMERGENCY = 0.02  # on dev messages that are not emergencies
MAX_UNSURE_ANSWERS = 0.03  # of dev's in-scope questions the unsure band may send to a clinician
UNSURE = 0.4  # the top class of four below this: not sure enough to answer or refuse


def load(split: str) -> list[dict]:
    return [json.loads(line) for line in (HERE / f"{split}.jsonl").read_text(encoding="utf-8").splitlines() if line]


def matcher() -> AliasMatcher:
    """The alias matcher retrieval builds, from the explainers patients may be shown."""
    return AliasMatcher(serving_knowledge(Settings(_env_file=None)).aliases)  # type: ignore[call-arg]


def matrix(embedder: Embedder, rows: list[dict]) -> np.ndarray:
    texts = [fold(r["text"]) for r in rows]
    vectors = embedder.encode(texts)
    names = matcher()
    return np.stack([features(v, t, bool(names.find(t))) for v, t in zip(vectors, texts, strict=True)])


def decide(p: np.ndarray, t: Thresholds) -> np.ndarray:
    """The head's part of bot.triage.Triage.classify, vectorised (no rules): label index per row."""
    e, r = LABELS.index("emergency"), LABELS.index("refer")
    rest = p.copy()
    rest[:, e] = -1
    out = rest.argmax(axis=1)
    out[rest.max(axis=1) < t.unsure] = r
    out[p[:, e] >= t.unsure_emergency] = r
    out[p[:, e] >= t.emergency] = e
    return out


def choose_thresholds(p: np.ndarray, y: np.ndarray) -> Thresholds:
    """Emergency: the lowest threshold within the false-emergency bound on dev. The unsure band below it: as wide
    as it can be while it sends at most MAX_UNSURE_ANSWERS of dev's in-scope questions to a clinician."""
    e, a = LABELS.index("emergency"), LABELS.index("answer")
    emergency = next(
        (float(t) for t in np.linspace(0.05, 0.9, 86) if (p[y != e, e] >= t).mean() <= MAX_FALSE_EMERGENCY), 0.5
    )
    unsure_emergency = emergency
    for t in np.linspace(emergency, 0.05, 40):
        if (p[y == a, e] >= t).mean() > MAX_UNSURE_ANSWERS:
            break
        unsure_emergency = float(t)
    return Thresholds(round(emergency, 3), round(unsure_emergency, 3), UNSURE)


def main() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    embedder = Embedder(settings.embedding_model_path, settings.embedding_model_sha256, settings.torch_threads)
    train, dev = load("train"), load("dev")
    x_train, x_dev = matrix(embedder, train), matrix(embedder, dev)
    y_train = np.array([LABELS.index(r["label"]) for r in train])
    y_dev = np.array([LABELS.index(r["label"]) for r in dev])
    best = None
    for c in (0.5, 1.0, 2.0, 4.0, 8.0, 16.0):
        model = LogisticRegression(C=c, class_weight="balanced", max_iter=4000, random_state=0)
        model.fit(x_train, y_train)
        accuracy = float((model.predict(x_dev) == y_dev).mean())  # C by dev accuracy
        print(f"C={c}: dev accuracy {accuracy:.3f}")
        if best is None or accuracy > best[0]:
            best = (accuracy, c, model)
    assert best is not None
    _, c, model = best
    weights = model.coef_.T.astype(np.float32)  # (features, classes), classes in LABELS order
    bias = model.intercept_.astype(np.float32)
    assert list(model.classes_) == list(range(len(LABELS)))
    p_dev = np.stack([_softmax(x @ weights + bias) for x in x_dev])
    thresholds = choose_thresholds(p_dev, y_dev)
    buffer = io.BytesIO()
    np.savez(buffer, weights=weights, bias=bias, thresholds=np.array(json.dumps(thresholds.__dict__)))
    data = buffer.getvalue()
    target = ROOT / "bot" / "triage" / "head.npz"
    target.write_bytes(data)
    (target.parent / "head.sha256").write_text(f"{hashlib.sha256(data).hexdigest()}  head.npz\n", encoding="utf-8")
    e = LABELS.index("emergency")
    recall = float((p_dev[y_dev == e, e] >= thresholds.emergency).mean())
    false = float((p_dev[y_dev != e, e] >= thresholds.emergency).mean())
    print(f"chose C={c}; thresholds {thresholds}")
    print(f"dev, head alone: emergency recall {recall:.3f}, false emergencies {false:.3f}")


def _softmax(z: np.ndarray) -> np.ndarray:
    exp = np.exp(z - z.max())
    return exp / exp.sum()


if __name__ == "__main__":
    main()
