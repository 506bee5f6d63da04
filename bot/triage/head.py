"""The learned head: a small linear classifier over the query embedding the pipeline computes anyway, plus the
context layer's flags. Trained by `evals/triage/train.py` on the train split (thresholds on dev), its weights
shipped in the package as `head.npz` and checked against the hash below before use. Inference is one matrix
product in numpy: no network, no training library at run time.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources

import numpy as np

from bot.triage.context import read_context

LABELS = ("emergency", "refer", "out_of_scope", "answer")
HEAD_FILE = "head.npz"


@dataclass(frozen=True)
class Thresholds:
    emergency: float  # at or above: the emergency reply
    unsure_emergency: float  # at or above (and below `emergency`): refer with the danger-sign line
    unsure: float  # the top class below this: refer with the danger-sign line, never an answer


class Head:
    def __init__(self, weights: np.ndarray, bias: np.ndarray, thresholds: Thresholds):
        self.weights, self.bias, self.thresholds = weights, bias, thresholds

    @classmethod
    def bundled(cls) -> Head | None:
        """The shipped head, or None if it is missing; a file that fails its hash check is refused loudly."""
        package = resources.files("bot.triage")
        if not package.joinpath(HEAD_FILE).is_file():
            return None
        data = package.joinpath(HEAD_FILE).read_bytes()
        expected = package.joinpath("head.sha256").read_text("utf-8").split()[0]
        if hashlib.sha256(data).hexdigest() != expected:
            raise RuntimeError(f"bot/triage/{HEAD_FILE} does not match head.sha256: retrain or reinstall")
        import io

        arrays = np.load(io.BytesIO(data), allow_pickle=False)
        thresholds = Thresholds(**json.loads(str(arrays["thresholds"])))
        return cls(arrays["weights"], arrays["bias"], thresholds)

    def probabilities(self, vector: list[float] | np.ndarray, text: str, named: bool = False) -> dict[str, float]:
        x = features(np.asarray(vector, dtype=np.float32), text, named)
        logits = x @ self.weights + self.bias
        exp = np.exp(logits - logits.max())
        p = exp / exp.sum()
        return {label: float(p[i]) for i, label in enumerate(LABELS)}


def features(vector: np.ndarray, text: str, named: bool) -> np.ndarray:
    """The embedding, the context flags, and whether the message names a treatment the clinic has an explainer
    for (by alias, brand or slang: the same matcher retrieval uses)."""
    extra = [*read_context(text).features(), float(named)]
    return np.concatenate([vector.astype(np.float32), np.asarray(extra, dtype=np.float32)])
