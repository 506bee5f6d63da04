"""The load test: the app with several workers on loopback, locust playing patients, memory sampled per process.

    .venv/bin/python evals/load/run.py [--users 50] [--seconds 120] [--workers 2] [--no-ramp]

Prints a Markdown summary and writes it, with locust's CSV files, to evals/load/report/. Every loop is bounded
in time; traffic goes to 127.0.0.1 only. The normal limits stay on: each simulated patient sends its own address
through the loopback "proxy" the run trusts, so every limit is counted per patient, as in a clinic's deployment.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_healthy(url: str, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
                if json.load(response)["status"] == "ok":
                    return
        except OSError:
            pass
        time.sleep(1)
    raise SystemExit(f"the app at {url} did not become healthy in {timeout_s:.0f} s")


class MemorySampler(threading.Thread):
    """Peak resident memory of each app process (the supervisor and its workers), sampled every second."""

    def __init__(self, root_pid: int):
        super().__init__(daemon=True)
        self.root = psutil.Process(root_pid)
        self.peak: dict[int, int] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(1.0):
            try:
                processes = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                return
            for process in processes:
                try:
                    self.peak[process.pid] = max(self.peak.get(process.pid, 0), process.memory_info().rss)
                except psutil.Error:
                    continue


def locust(url: str, users: int, seconds: int, prefix: Path, ramp: bool) -> None:
    command = [
        str(BIN / "locust"),
        "-f",
        str(HERE / "locustfile.py"),
        "--headless",
        "--host",
        url,
        "--csv",
        str(prefix),
        "--csv-full-history",
        "--only-summary",
        "--loglevel",
        "WARNING",
    ]
    if not ramp:
        command += ["-u", str(users), "-r", "10", "-t", f"{seconds}s"]
    env = {**os.environ, "LOAD_SHAPE": "ramp" if ramp else ""}
    subprocess.run(command, env=env, check=False, timeout=seconds + 120, cwd=ROOT)


def aggregated(prefix: Path) -> dict[str, float]:
    with open(f"{prefix}_stats.csv", newline="") as handle:
        rows = {row["Name"]: row for row in csv.DictReader(handle)}
    total = rows["Aggregated"]
    chat = rows.get("/api/chat", total)
    return {
        "requests": int(total["Request Count"]),
        "failures": int(total["Failure Count"]),
        "rps": float(total["Requests/s"]),
        "p50": float(total["50%"]),
        "p95": float(total["95%"]),
        "p99": float(total["99%"]),
        "chat_p50": float(chat["50%"]),
        "chat_p95": float(chat["95%"]),
        "chat_p99": float(chat["99%"]),
    }


def ramp_steps(prefix: Path) -> list[tuple[int, float, float]]:
    """(users, p95 ms, requests/s) near the end of each 30-second step, from locust's history file."""
    by_users: dict[int, tuple[float, float]] = {}
    with open(f"{prefix}_stats_history.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["Name"] != "Aggregated" or row["95%"] in ("N/A", ""):
                continue
            by_users[int(row["User Count"])] = (float(row["95%"]), float(row["Requests/s"]))
    return [(users, p95, rps) for users, (p95, rps) in sorted(by_users.items())]


def warm_up(url: str, requests: int = 40) -> None:
    """First requests in each worker build caches (keyword index, vocabulary); keep them out of the figures."""

    def ask(number: int) -> None:
        body = json.dumps({"message": f"how long does botox last? ({number})"}).encode()
        headers = {"Content-Type": "application/json", "X-Forwarded-For": f"10.255.0.{number % 250 + 1}"}
        request = urllib.request.Request(f"{url}/api/chat", body, headers)
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=120)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-ramp", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE / "report")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    data = Path(tempfile.mkdtemp(prefix="clinicbot-load-"))
    env = {
        **os.environ,
        "CLINICBOT_DATA_DIR": str(data),
        "CLINICBOT_TRUSTED_PROXIES": '["127.0.0.1"]',
        "CLINICBOT_KNOWLEDGE_DIR": str(ROOT / "knowledge"),
    }
    subprocess.run([str(BIN / "clinicbot"), "ingest"], env=env, check=True, capture_output=True, timeout=600)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [str(BIN / "clinicbot"), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(args.workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(args.out / "server.log", "w"),  # noqa: SIM115 - closed with the process
        start_new_session=True,
    )
    try:
        wait_healthy(url)
        warm_up(url)
        sampler = MemorySampler(server.pid)
        sampler.start()
        locust(url, args.users, args.seconds, args.out / "steady", ramp=False)
        steady = aggregated(args.out / "steady")
        sampler.stopped.set()
        steps = []
        if not args.no_ramp:
            locust(url, 0, 7 * 30, args.out / "ramp", ramp=True)
            steps = ramp_steps(args.out / "ramp")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)

    memory = sorted(round(rss / 2**20) for rss in sampler.peak.values())
    lines = [
        f"## Load: {args.users} users for {args.seconds} s, {args.workers} workers, 127.0.0.1, {os.cpu_count()} cores",
        "",
        "| requests | failures | req/s | p50 ms | p95 ms | p99 ms | /api/chat p50 / p95 / p99 ms |",
        "|---|---|---|---|---|---|---|",
        f"| {steady['requests']} | {steady['failures']} | {steady['rps']:.1f} | {steady['p50']:.0f} | {steady['p95']:.0f} "
        f"| {steady['p99']:.0f} | {steady['chat_p50']:.0f} / {steady['chat_p95']:.0f} / {steady['chat_p99']:.0f} |",
        "",
        f"Peak memory per process (MiB, supervisor and workers): {', '.join(map(str, memory))}",
    ]
    if steps:
        lines += ["", "| users | p95 ms | req/s |", "|---|---|---|"]
        lines += [f"| {users} | {p95:.0f} | {rps:.1f} |" for users, p95, rps in steps]
    summary = "\n".join(lines)
    (args.out / "summary.md").write_text(summary + "\n")
    (args.out / "summary.json").write_text(json.dumps({"steady": steady, "memory_mib": memory, "ramp": steps}))
    print(summary)


if __name__ == "__main__":
    main()
