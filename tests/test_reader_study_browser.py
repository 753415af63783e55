"""Three simulated readers read a 40-case study in a real headless Chromium against the real server, through the
page: real clicks on the answer buttons, real wheel/drag/right-drag on the viewer, a mark on the image, a stop and a
resume. The readers: always right (and marks the edit on every fake), a coin flip, always "real". The report's
numbers are checked against values computed here, independently: exact counts and Wilson intervals, Fleiss' kappa
from its definition, the Obuchowski-Rockette interval from the slow loop implementation of the statistics tests.
Set READER_STUDY_SCREENSHOTS=FOLDER to keep the two screenshots (the README's pictures)."""
from __future__ import annotations

import base64
import json
import math
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from reader_study_helpers import Server, make_study, tiny_gan_run
from test_leaderboard_html import Chromium, _click, find_browser
from test_reader_study_stats import _slow_or

from benchmark.cli import main

CASES = 40


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny matrix with the gan attack on 320 images (a test split of 32 positive and 32 negative images)."""
    return tiny_gan_run(tmp_path_factory.mktemp("browser-run"), count=320)


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


def _mouse(browser: Chromium, session: str, kind: str, x: float, y: float, button: str = "left", **extra: object
           ) -> None:
    buttons = {"left": 1, "right": 2}[button] if kind != "mouseReleased" else 0
    browser.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": button, "buttons": buttons,
                                              "clickCount": 1, **extra}, session)


def _screenshot(browser: Chromium, session: str, name: str, tmp_path: Path) -> bytes:
    png = base64.b64decode(browser.send("Page.captureScreenshot", {"format": "png"}, session)["data"])
    (tmp_path / name).write_bytes(png)
    if os.environ.get("READER_STUDY_SCREENSHOTS"):
        Path(os.environ["READER_STUDY_SCREENSHOTS"], name).write_bytes(png)
    return png


def _wilson(k: int, n: int) -> tuple[float, float]:
    """The 95% Wilson score interval, written out here from its formula."""
    z = 1.959963984540054
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half) if k else 0.0, min(1.0, centre + half) if k < n else 1.0


def _fleiss(calls: list[list[int]]) -> float:
    """Fleiss' kappa of calls[reader][image] in {0, 1}, from the definition with loops."""
    readers, images = len(calls), len(calls[0])
    agree, share = 0.0, [0.0, 0.0]
    for i in range(images):
        counts = [sum(calls[r][i] == c for r in range(readers)) for c in (0, 1)]
        agree += (sum(n * n for n in counts) - readers) / (readers * (readers - 1))
        for c in (0, 1):
            share[c] += counts[c] / (readers * images)
    p_bar, p_e = agree / images, share[0] ** 2 + share[1] ** 2
    return (p_bar - p_e) / (1 - p_e)


def _policy(name: str, synthetic: int, rng: np.random.Generator) -> tuple[int, int]:
    """(call, confidence) of the three simulated readers."""
    if name == "always-right":
        return synthetic, 5
    if name == "coin-flip":
        return int(rng.integers(0, 2)), int(rng.integers(1, 6))
    return 0, 3  # always "real"


def test_three_readers_read_a_40_case_study_in_chromium(tiny_run: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    binary = find_browser()
    if binary is None:
        pytest.skip("no Chromium-family browser found (make test installs Debian's chromium-headless-shell; set "
                    "BENCHMARK_BROWSER to use another)")
    study = make_study(tiny_run, tmp_path / "study", capsys, cases=CASES, readers=0)
    names = ("always-right", "coin-flip", "always-real")
    for name in names:
        assert main(["reader-study", "add-reader", name, "--study", str(study.folder)]) == 0
        study.readers[name] = capsys.readouterr().out.strip().rsplit("/", 1)[1]
    con = sqlite3.connect(str(study.folder / "study.sqlite"))
    truth = {tok: (s, e) for tok, s, e in con.execute("SELECT token, synthetic, edited FROM items")}
    assert len(truth) == CASES and sum(s for s, _ in truth.values()) == CASES // 2
    server = Server(study)
    browser = Chromium(binary, tmp_path / "profile")
    clicked: dict[str, dict[str, tuple[int, int]]] = {n: {} for n in names}  # reader -> item -> (call, confidence)
    marks = 0
    rng = np.random.default_rng(7)
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            browser.send(f"{domain}.enable", session=session)
        browser.send("Emulation.setDeviceMetricsOverride", {"width": 1280, "height": 860, "deviceScaleFactor": 1,
                                                            "mobile": False}, session)
        for name in names:
            browser.send("Page.navigate", {"url": f"{server.base}/read/{study.readers[name]}"}, session)
            browser.wait_event("Page.loadEventFired")
            seq = 0
            while seq < CASES:
                _until(browser, session, f"document.querySelector('main').dataset.ready === '{seq}'")
                assert _eval(browser, session, "document.querySelector('#progress').textContent") == \
                    f"Image {seq + 1} of {CASES}"
                item = _eval(browser, session, "current.item")
                synthetic, edited = truth[item]
                if name == "always-right" and seq == 0:  # the viewer: wheel zoom, drag pan, right-drag window/level
                    cx, cy = _eval(browser, session, "viewer.toClient(16, 16)")
                    fit = _eval(browser, session, "viewer.state().scale")
                    _mouse(browser, session, "mouseWheel", cx, cy, deltaX=0, deltaY=-400)
                    assert _eval(browser, session, "viewer.state().scale") == pytest.approx(fit * math.exp(0.6))
                    zoomed = _eval(browser, session, "viewer.toClient(16, 16)")
                    assert zoomed == pytest.approx([cx, cy], abs=1)  # zoomed about the pointer
                    _mouse(browser, session, "mousePressed", cx, cy)
                    _mouse(browser, session, "mouseMoved", cx + 40, cy + 25)
                    _mouse(browser, session, "mouseReleased", cx + 40, cy + 25)
                    _mouse(browser, session, "mousePressed", cx, cy, "right")
                    _mouse(browser, session, "mouseMoved", cx - 60, cy + 10, "right")
                    _mouse(browser, session, "mouseReleased", cx - 60, cy + 10, "right")
                    state = _eval(browser, session, "viewer.state()")
                    assert state["ox"] != pytest.approx(cx) and state["win"] == 195 and state["lev"] == 137.5
                    moved = _eval(browser, session, "viewer.toClient(16, 16)")
                    assert moved == pytest.approx([zoomed[0] + 40, zoomed[1] + 25], abs=0.01)
                    assert state["mark"] is None  # a drag is not a mark
                    _click(browser, session, "#reset")
                    state = _eval(browser, session, "viewer.state()")
                    assert (state["scale"], state["win"], state["lev"]) == (pytest.approx(fit), 255, 127.5)
                call, confidence = _policy(name, synthetic, rng)
                _click(browser, session, f'button[data-field="call"][data-value="{call}"]')
                _click(browser, session, f'button[data-field="confidence"][data-value="{confidence}"]')
                if name == "always-right" and synthetic:  # a real click on a pixel the GAN edited
                    mask = np.unpackbits(np.frombuffer(edited, np.uint8))[:1024].reshape(32, 32).astype(bool)
                    ys, xs = np.nonzero(mask)
                    x, y = float(xs[len(xs) // 2]) + 0.5, float(ys[len(ys) // 2]) + 0.5
                    cx, cy = _eval(browser, session, f"viewer.toClient({x}, {y})")
                    _mouse(browser, session, "mousePressed", cx, cy)
                    _mouse(browser, session, "mouseReleased", cx, cy)
                    mark = _eval(browser, session, "viewer.state().mark")
                    assert mark["x"] == pytest.approx(x, abs=0.1) and mark["y"] == pytest.approx(y, abs=0.1)
                    marks += 1
                if name == "always-right" and seq == 1:
                    _screenshot(browser, session, "reader_study_page.png", tmp_path)
                assert _eval(browser, session, "document.querySelector('#submit').disabled") is False
                _click(browser, session, "#submit")
                clicked[name][item] = (call, confidence)
                seq += 1
                if name == "coin-flip" and seq == 10:  # stop, come back later: the page resumes at image 11
                    _until(browser, session, "document.querySelector('main').dataset.ready === '10'")
                    _click(browser, session, "#stop")
                    assert _eval(browser, session, "document.querySelector('#paused').hidden") is False
                    browser.send("Page.navigate", {"url": f"{server.base}/read/{study.readers[name]}"}, session)
                    browser.wait_event("Page.loadEventFired")
            _until(browser, session, "!document.querySelector('#finished').hidden")
        errors = [e for e in browser.events if e.get("method") == "Runtime.exceptionThrown"
                  or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] == "error")
                  or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")]
        assert errors == []

        # every click is stored, in each reader's order, once
        for r, name in enumerate(names, start=1):
            rows = con.execute("SELECT a.seq, i.token, a.call, a.confidence FROM answers a JOIN items i "
                               "ON i.item = a.item WHERE a.reader = ? ORDER BY a.seq", (r,)).fetchall()
            assert [s for s, *_ in rows] == list(range(CASES))
            assert {tok: (c, k) for _, tok, c, k in rows} == clicked[name]

        assert main(["reader-study", "report", "--study", str(study.folder)]) == 0
        report = json.loads((study.folder / "report" / "report.json").read_text())
        per = {r["name"]: r for r in report["per_reader"]}
        for name in names:
            right = sum(c == truth[i][0] for i, (c, _) in clicked[name].items())
            fakes_called = sum(c == 1 for i, (c, _) in clicked[name].items() if truth[i][0])
            reals_called = sum(c == 0 for i, (c, _) in clicked[name].items() if not truth[i][0])
            for key, k, n in (("accuracy", right, 40), ("sensitivity", fakes_called, 20),
                              ("specificity", reals_called, 20)):
                got = per[name][key]
                assert (got["successes"], got["n"]) == (k, n), (name, key)
                assert (got["lo"], got["hi"]) == pytest.approx(_wilson(k, n), abs=1e-12), (name, key)
        assert per["always-right"]["accuracy"]["successes"] == 40 and per["always-right"]["auc"] == 1.0
        assert 0.3 <= per["coin-flip"]["accuracy"]["value"] <= 0.7
        assert per["always-real"]["accuracy"]["successes"] == 20 and per["always-real"]["auc"] == 0.5
        assert per["always-real"]["sensitivity"]["successes"] == 0 and per["always-real"]["specificity"]["value"] == 1
        loc = per["always-right"]["localisation"]
        assert (loc["successes"], loc["n"]) == (marks, 20)  # every mark inside the edit

        items = sorted(truth)
        calls = [[clicked[n][i][0] for i in items] for n in names]
        ratings = np.array([[[5 + k if c else 6 - k for c, k in (clicked[n][i] for i in items)] for n in names]])
        pooled = report["pooled"]
        assert pooled["kappa"]["value"] == pytest.approx(_fleiss(calls), abs=1e-12)
        slow = _slow_or(ratings, np.array([truth[i][0] for i in items]))
        assert pooled["or"]["modality_auc"][0] == pytest.approx(slow["modality_auc"][0], abs=1e-12)
        assert (pooled["or"]["modality_lo"][0], pooled["or"]["modality_hi"][0]) == \
            pytest.approx(slow["modality_ci"][0], abs=1e-10)
        detector = report["detector"]
        assert detector["accuracy"]["n"] == 40 and detector["sensitivity"]["n"] == 20

        browser.send("Page.navigate", {"url": (study.folder / "report" / "index.html").as_uri()}, session)
        browser.wait_event("Page.loadEventFired")
        cells = _eval(browser, session, "Array.from(document.querySelectorAll('#per-reader tbody tr'))"
                                        ".map(r => r.cells[0].textContent)")
        assert cells[:4] == ["always-right (40/40)", "coin-flip (40/40)", "always-real (40/40)",
                             "readers pooled (3 complete)"]
        assert cells[4].startswith("the benchmark's real-vs-fake detector")
        assert len(_screenshot(browser, session, "reader_study_report.png", tmp_path)) > 10_000
    finally:
        browser.close()
        server.close()
