"""Browser-test plumbing: the real app served by uvicorn on loopback, Debian's chromium driven by Playwright.

Chromium comes from `scripts/setup --dev` (apt); Playwright cannot download browsers here. axe-core comes
from the npm registry into .venv/axe. Without chromium the browser tests skip, unless
CLINICBOT_REQUIRE_BROWSER=1 (set by CI), when they fail.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
AXE = ROOT / ".venv" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_browser() -> None:
    if CHROMIUM.exists():
        return
    message = "Debian's chromium is not installed; run scripts/setup --dev as root"
    if os.environ.get("CLINICBOT_REQUIRE_BROWSER") == "1":
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def serving(app) -> Iterator[str]:
    """Run the FastAPI app on a loopback port in a thread; yield its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def copy_knowledge(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def axe_violations(page, exclude: list[str] | None = None) -> list[dict]:
    """WCAG 2 A and AA violations that axe-core finds on the page as it is now."""
    assert AXE.exists(), f"{AXE} is missing; run scripts/setup --dev"
    # Evaluated through the DevTools protocol, not added as an inline <script>: the widget's policy refuses those.
    page.evaluate(AXE.read_text(encoding="utf-8"))
    context = {"exclude": [[selector] for selector in exclude or []]}
    result = page.evaluate(
        """async (context) => {
            const found = await axe.run(context.exclude.length ? context : document,
                {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}});
            return found.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 3).map(n => n.target.join(' ') + ' :: ' + n.html.slice(0, 160))}));
        }""",
        context,
    )
    return list(result)
