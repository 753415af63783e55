"""A reader reads a whole study in a real headless Chromium against the real server: real clicks on the page's
buttons, every answer stored in order with the values clicked, the page says when the study is done, and the
report page renders. Set READER_STUDY_SCREENSHOTS=FOLDER to keep the two screenshots (the README's pictures)."""
from __future__ import annotations

import base64
import json
import os
import sqlite3
from pathlib import Path

import pytest
from reader_study_helpers import Server, make_study, tiny_gan_run
from test_leaderboard_html import Chromium, _click, find_browser

from benchmark.cli import main


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny matrix with the gan attack (shared by this module's test)."""
    return tiny_gan_run(tmp_path_factory.mktemp("browser-run"))


def _eval(browser: Chromium, session: str, expression: str) -> object:
    reply = browser.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True},
                         session)
    if "exceptionDetails" in reply:
        raise AssertionError(reply["exceptionDetails"])
    return reply["result"].get("value")


def _until(browser: Chromium, session: str, condition: str) -> None:
    """Wait in the page until a JS condition holds (the page's own timers; the DevTools call fails after 30 s)."""
    _eval(browser, session, f"new Promise(ok => {{const f = () => ({condition}) ? ok(true) : setTimeout(f, 20); "
                            "f();})")


def _screenshot(browser: Chromium, session: str, name: str, tmp_path: Path) -> bytes:
    png = base64.b64decode(browser.send("Page.captureScreenshot", {"format": "png"}, session)["data"])
    (tmp_path / name).write_bytes(png)
    if os.environ.get("READER_STUDY_SCREENSHOTS"):
        Path(os.environ["READER_STUDY_SCREENSHOTS"], name).write_bytes(png)
    return png


def test_a_reader_reads_the_study_in_chromium(tiny_run: Path, tmp_path: Path) -> None:
    binary = find_browser()
    if binary is None:
        pytest.skip("no Chromium-family browser found (make test installs Debian's chromium-headless-shell; set "
                    "BENCHMARK_BROWSER to use another)")
    study = make_study(tiny_run, tmp_path / "study", cases=6, readers=2)
    server = Server(study)
    browser = Chromium(binary, tmp_path / "profile")
    clicked = []
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            browser.send(f"{domain}.enable", session=session)
        browser.send("Emulation.setDeviceMetricsOverride", {"width": 1200, "height": 760, "deviceScaleFactor": 1,
                                                            "mobile": False}, session)
        browser.send("Page.navigate", {"url": f"{server.base}/read/{server.readers['reader-2']}"}, session)
        browser.wait_event("Page.loadEventFired")
        for seq in range(12):
            _until(browser, session, f"document.querySelector('main').dataset.ready === '{seq}'")
            assert _eval(browser, session, "document.querySelector('#progress').textContent") == \
                f"Image {seq + 1} of 12"
            assert _eval(browser, session, "document.querySelector('#submit').disabled") is True
            answer = {"cancer": seq % 2, "cancer_confidence": 1 + seq % 3, "manipulated": (seq // 2) % 2,
                      "manipulated_confidence": 3 - seq % 3}
            for field, value in answer.items():
                _click(browser, session, f'button[data-field="{field}"][data-value="{value}"]')
            # a change of mind before saving: the last click counts
            if seq == 0:
                _click(browser, session, 'button[data-field="cancer"][data-value="1"]')
                answer["cancer"] = 1
            assert _eval(browser, session, "document.querySelector('#submit').disabled") is False
            if seq == 3:
                _screenshot(browser, session, "reader_study_page.png", tmp_path)
            _click(browser, session, "#submit")
            clicked.append(answer)
        _until(browser, session, "!document.querySelector('#finished').hidden")
        image_ok = _eval(browser, session, "[document.images[0].complete, document.images[0].naturalWidth]")
        assert image_ok == [True, 32]
        errors = [e for e in browser.events if e.get("method") == "Runtime.exceptionThrown"
                  or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] == "error")
                  or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")]
        assert errors == []

        con = sqlite3.connect(str(study / "study.sqlite"))
        rows = con.execute("SELECT a.seq, a.item, s.item, a.cancer, a.cancer_confidence, a.manipulated, "
                           "a.manipulated_confidence, a.ms FROM answers a JOIN sequence s ON s.reader = a.reader "
                           "AND s.seq = a.seq WHERE a.reader = 2 ORDER BY a.seq").fetchall()
        assert [r[0] for r in rows] == list(range(12)) and all(r[1] == r[2] for r in rows)
        assert [dict(zip(answer, r[3:7])) for r, answer in zip(rows, clicked)] == clicked
        assert all(r[7] >= 0 for r in rows)
        assert con.execute("SELECT COUNT(*) FROM answers WHERE reader = 1").fetchone()[0] == 0

        # reader-1 answers through the API, so that the report has two complete readers; then the report page
        step = json.loads(server.get(f"/api/{server.readers['reader-1']}/next")[1])
        while not step.get("done"):
            code, reply = server.post(f"/api/{server.readers['reader-1']}/answers",
                                      {"seq": step["seq"], "item": step["item"], "cancer": 1, "cancer_confidence": 2,
                                       "manipulated": step["seq"] % 2, "manipulated_confidence": 1})
            assert code == 200
            step = reply["next"]
        assert main(["reader-study", "report", "--study", str(study)]) == 0
        browser.send("Page.navigate", {"url": (study / "report" / "index.html").as_uri()}, session)
        browser.wait_event("Page.loadEventFired")
        cells = _eval(browser, session, "Array.from(document.querySelectorAll('#per-reader tbody tr'))"
                                        ".map(r => r.cells[0].textContent)")
        assert cells == ["reader-1", "reader-2"]
        assert len(_screenshot(browser, session, "reader_study_report.png", tmp_path)) > 10_000
    finally:
        browser.close()
        server.close()
