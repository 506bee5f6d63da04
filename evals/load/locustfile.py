"""Patients played against the widget's HTTP interface on loopback: questions from the evaluation set, sessions with
follow-ups, and feedback clicks. Run through `evals/load/run.py`, which starts the app and records the results.

Each simulated patient has an address of its own (sent as X-Forwarded-For; the run lists 127.0.0.1 as a trusted
proxy, as a clinic lists its load balancer), so the normal per-client limits apply to each, as in production.

Set LOAD_SHAPE=ramp for the ramp that shows where latency turns up (10 → 300 users in steps of 30 s).
"""

from __future__ import annotations

import itertools
import json
import os
import random
from pathlib import Path
from urllib.parse import urlparse

from locust import LoadTestShape, between, events, task
from locust.contrib.fasthttp import FastHttpUser

QUESTIONS = [
    json.loads(line)["question"]
    for line in (Path(__file__).resolve().parents[1] / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    if line.strip()
]
_ADDRESSES = (f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}" for n in itertools.count(1))
FOLLOW_UPS = ["how long does it last?", "does it hurt?", "how much downtime is there?", "what are the risks?"]


@events.test_start.add_listener
def loopback_only(environment, **_kwargs) -> None:
    host = urlparse(environment.host or "").hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"refusing to load-test {host!r}: this locust file only targets loopback")


class Patient(FastHttpUser):
    wait_time = between(4, 12)  # a person reads the reply, then types the next message

    def on_start(self) -> None:
        self.session: str | None = None
        self.address = {"X-Forwarded-For": next(_ADDRESSES)}  # this patient's own address

    def _ask(self, message: str) -> dict | None:
        body = {"message": message, "session": self.session}
        with self.client.post(
            "/api/chat", json=body, headers=self.address, name="/api/chat", catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}")
                return None
            reply = response.json()
            self.session = reply["session"]
            return reply

    @task(6)
    def ask_question(self) -> None:
        reply = self._ask(random.choice(QUESTIONS))
        if reply and random.random() < 0.2:
            self.client.post(
                "/api/feedback",
                json={"reply_id": reply["reply_id"], "helpful": random.random() < 0.7},
                headers=self.address,
                name="/api/feedback",
            )

    @task(2)
    def follow_up(self) -> None:
        if self.session is None:
            self._ask(random.choice(QUESTIONS))
        self._ask(random.choice(FOLLOW_UPS))

    @task(1)
    def new_visit(self) -> None:
        self.session = None
        self._ask(random.choice(QUESTIONS))


if os.environ.get("LOAD_SHAPE") == "ramp":

    class Ramp(LoadTestShape):
        """Hold each user count for 30 s: the report shows p95 at each step."""

        steps = (10, 25, 50, 100, 150, 200, 300)

        def tick(self):
            step = int(self.get_run_time() // 30)
            if step >= len(self.steps):
                return None
            return self.steps[step], 25
