"""index.html in a real headless Chromium, driven over the DevTools protocol (a pipe; no extra Python package).

The browser is Debian's `chromium-headless-shell` (or `chromium`, or Chrome where that is what the machine has),
installed by `make test` through `.ci/install-browser`. Without any browser the test skips and says why.
"""
from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from leaderboard_rows import PROVENANCE, matrix

from benchmark.leaderboard.board import build_entries, write_leaderboard

BROWSERS = ("chromium-headless-shell", "chromium", "google-chrome", "google-chrome-stable", "chromium-browser")


def find_browser() -> str | None:
    """$BENCHMARK_BROWSER, else the first Chromium-family browser on PATH."""
    if os.environ.get("BENCHMARK_BROWSER"):
        return os.environ["BENCHMARK_BROWSER"]
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def _high_fd(fd: int) -> int:
    """fd moved to a number >= 10, so that it never collides with the child's fds 3 and 4."""
    if fd >= 10:
        return fd
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return new


class Chromium:
    """A headless Chromium on --remote-debugging-pipe: commands on its fd 3, replies and events on its fd 4."""

    def __init__(self, binary: str, profile: Path) -> None:
        cmd_r, self._cmd_w = (_high_fd(fd) for fd in os.pipe())
        self._res_r, res_w = (_high_fd(fd) for fd in os.pipe())
        # bash puts the pipe ends at the fds Chromium expects (3: commands in, 4: replies out), then execs it
        shell = f'exec "$@" 3<&{cmd_r} 4>&{res_w} {cmd_r}<&- {res_w}>&-'
        args = ["bash", "-c", shell, "chromium", binary, "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--no-first-run", "--hide-scrollbars", "--remote-debugging-pipe",
                f"--user-data-dir={profile}", "--window-size=1400,1000", "about:blank"]
        self.proc = subprocess.Popen(args, pass_fds=(cmd_r, res_w), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        os.close(cmd_r)
        os.close(res_w)
        self._buffer, self._next_id, self.events = b"", 0, []

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._res_r], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._res_r, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30) -> dict:
        """Send one command and return its result (events that arrive meanwhile are kept in self.events)."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._cmd_w, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, timeout: float = 30) -> dict:
        """The first event of this kind (already received or still to come)."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event.get("method") == method:
                    self.events.remove(event)
                    return event
            self.events.append(self._read_message(deadline))

    def close(self) -> None:
        """Close the browser (politely, then by force)."""
        try:
            self.send("Browser.close", timeout=5)
        except (OSError, RuntimeError, TimeoutError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self._cmd_w)
        os.close(self._res_r)


@pytest.fixture
def page(tmp_path: Path) -> Path:
    """A leaderboard folder with three entries (one unreliable), plots and galleries."""
    from matplotlib.figure import Figure

    cells = matrix("resnet10t", "none") + matrix("resnet18", "none", strength=-40) + \
        matrix("resnet10t", "jpeg", strength=30, adaptive=True)
    entries = build_entries(cells, "test-set", PROVENANCE)
    sources = {}
    for e in entries:
        for g in e["galleries"]:
            fig = Figure(figsize=(2, 1))
            fig.text(0.1, 0.5, g["cell"])
            sources[g["file"]] = tmp_path / "src" / Path(g["file"]).name
            sources[g["file"]].parent.mkdir(exist_ok=True)
            fig.savefig(sources[g["file"]])
    write_leaderboard(tmp_path / "board", entries, "test-set", sources)
    return tmp_path / "board"


def _rows(browser: Chromium, session: str, table: str, column: int) -> list[str]:
    expression = (f"Array.from(document.querySelectorAll('#{table} tbody tr'))"
                  f".map(r => r.cells[{column}].textContent)")
    reply = browser.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session)
    return reply["result"]["value"]


def _click(browser: Chromium, session: str, selector: str) -> None:
    """A real mouse click (press and release) at the middle of the element."""
    expression = (f"(() => {{const r = document.querySelector('{selector}').getBoundingClientRect();"
                  " return [r.x + r.width / 2, r.y + r.height / 2]})()")
    reply = browser.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session)
    box = reply["result"]["value"]
    for kind in ("mousePressed", "mouseReleased"):
        browser.send("Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1], "button": "left",
                                                  "clickCount": 1}, session)


def test_index_html_in_headless_chromium(page: Path, tmp_path: Path) -> None:
    binary = find_browser()
    if binary is None:
        pytest.skip("no Chromium-family browser found (make test installs Debian's chromium-headless-shell with "
                    "apt-get through .ci/install-browser; set BENCHMARK_BROWSER to use another)")
    browser = Chromium(binary, tmp_path / "profile")
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            browser.send(f"{domain}.enable", session=session)
        browser.send("Page.navigate", {"url": (page / "index.html").as_uri()}, session)
        browser.wait_event("Page.loadEventFired")
        errors = [e for e in browser.events if e.get("method") == "Runtime.exceptionThrown"
                  or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] == "error")
                  or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")]
        assert errors == []

        # the overall table renders every entry, ranked by robust balanced accuracy; worst case is column 4
        assert _rows(browser, session, "board-overall", 1) == ["resnet10t", "resnet10t", "resnet18"]
        worst = [float(v.split()[0]) for v in _rows(browser, session, "board-overall", 4)]
        assert worst == sorted(worst, reverse=True) and len(set(worst)) == 3
        # clicking "model" sorts by name, clicking "worst case" sorts ascending, then descending
        _click(browser, session, "#board-overall thead th:nth-child(2)")
        assert _rows(browser, session, "board-overall", 1) == ["resnet10t", "resnet10t", "resnet18"]
        _click(browser, session, "#board-overall thead th:nth-child(5)")
        assert [float(v.split()[0]) for v in _rows(browser, session, "board-overall", 4)] == sorted(worst)
        _click(browser, session, "#board-overall thead th:nth-child(5)")
        assert [float(v.split()[0]) for v in _rows(browser, session, "board-overall", 4)] == sorted(worst,
                                                                                                 reverse=True)
        # the study row stays on top of the GAN table
        assert _rows(browser, session, "gan-table", 0)[0].startswith("Zhou et al. 2021")

        images = browser.send("Runtime.evaluate", {
            "expression": "Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])",
            "returnByValue": True}, session)["result"]["value"]
        plots = sorted(p.name for p in (page / "plots").iterdir())
        galleries = sorted(p.name for p in (page / "galleries").iterdir())
        assert sorted(Path(src).name for src, _, _ in images) == sorted(plots + galleries)
        assert len(galleries) == 6 and len(plots) == 3  # 2 per entry; linf curves, 2 heatmaps
        assert all(complete and width > 0 for _, complete, width in images), images

        shot = browser.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session)
        png = base64.b64decode(shot["data"])
        assert png.startswith(b"\x89PNG") and len(png) > 10_000
        (tmp_path / "index.png").write_bytes(png)
        if os.environ.get("LEADERBOARD_SCREENSHOT"):
            Path(os.environ["LEADERBOARD_SCREENSHOT"]).write_bytes(png)
    finally:
        browser.close()


def test_page_shows_the_frontier_once_one_is_drawn(page: Path) -> None:
    from matplotlib.figure import Figure

    from benchmark.leaderboard.board import FRONTIER_PLOT, load_entries

    before = (page / "index.html").read_text()
    assert 'id="frontier"' not in before and FRONTIER_PLOT not in before
    (page / "frontier").mkdir()
    Figure(figsize=(2, 1)).savefig(page / FRONTIER_PLOT)
    entries = load_entries(page)
    write_leaderboard(page, entries, "test-set")  # what `benchmark frontier` does to the board it drew in
    after = (page / "index.html").read_text()
    assert after.count('id="frontier"') == 1 and f'<img src="{FRONTIER_PLOT}"' in after
    assert 'href="frontier/frontier.md"' in after
    assert (page / FRONTIER_PLOT).is_file()  # re-rendering the board keeps the frontier folder
    assert after.replace(after[after.index('<h2 id="frontier">'):after.index("</figure>", after.index(
        '<h2 id="frontier">')) + len("</figure>")] + "\n", "") == before  # nothing else on the page moved
