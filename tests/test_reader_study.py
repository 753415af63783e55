"""The reader study end to end on a tiny real run (data, training, lesion GAN, fakes): the study file, the real
server under uvicorn over HTTP (in-order answers, bad input, what a reader token can reach, a SIGKILL mid-study), the
report's numbers, the CLI's errors and the leaderboard link."""
from __future__ import annotations

import csv
import io
import json
import sqlite3
import struct
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import load_benchmark_script
from reader_study_helpers import Server, Study, make_study, tiny_gan_run

from benchmark.cli import main
from benchmark.execution.artifacts import read_data, read_fakes, read_score
from benchmark.execution.records import resolve_run
from benchmark.execution.store import Store
from benchmark.reader_study.images import study_window, to_png


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny matrix with the gan attack, run once for every reader study test; its config file."""
    return tiny_gan_run(tmp_path_factory.mktemp("reader-run"))


@pytest.fixture
def study(tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> Study:
    """A fresh study of 8 cases (8 images: 4 real, 4 fake) and 3 readers, without detector scores."""
    return make_study(tiny_run, tmp_path / "study", capsys, extra=("--no-detector",))


@pytest.fixture
def server(study: Study) -> Server:
    """The real server on the study."""
    s = Server(study)
    yield s
    s.close()


def _db(study: Study) -> sqlite3.Connection:
    return sqlite3.connect(str(study.folder / "study.sqlite"))


def _chunks(png: bytes) -> list[str]:
    """The chunk types of a PNG file, in order."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    out, pos = [], 8
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        out.append(kind.decode())
        pos += 12 + length
    return out


def _answer(server: Server, token: str, seq: int, item: str, **fields: object) -> tuple[int, dict]:
    body = {"seq": seq, "item": item, "call": 0, "confidence": 3, **fields}
    return server.post(f"/api/{token}/answers", {k: v for k, v in body.items() if v is not None})


def test_study_shows_each_case_once_balanced_windowed_and_hides_ids(tiny_run: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture) -> None:
    study = make_study(tiny_run, tmp_path / "study", capsys, cases=8, readers=2)
    store = Store(tiny_run.parent / "runs")
    con = _db(study)
    meta = {k: json.loads(v) for k, v in con.execute("SELECT key, value FROM meta")}
    data = read_data(store.path(meta["data_key"]))
    fakes, _ = read_fakes(store.path(meta["fakes_key"]))
    items = con.execute("SELECT case_id, synthetic, truth, png, width, height, edited, detector FROM items").fetchall()
    assert len(items) == 8 and meta["fakes"] == "fakes vs resnet10t+none" and meta["layout"] == "crossed"
    # each case once; 4 real and 4 fake, and within each label half and half
    assert len({i[0] for i in items}) == 8
    assert sorted((i[2], i[1]) for i in items) == [(0, 0), (0, 0), (0, 1), (0, 1), (1, 0), (1, 0), (1, 1), (1, 1)]
    test = np.flatnonzero(data.splits == "test")
    rows = {}  # case -> run row: found by rendering every test image as the study does
    window = tuple(meta["window"])
    rendered = {(to_png(data.images[r], window, 512), 0): r for r in test}
    rendered.update({(to_png(fakes[r], window, 512), 1): r for r in test})
    for case, synthetic, truth, png, width, height, edited, detector in items:
        row = rendered[bytes(png), synthetic]
        rows[case] = row
        assert data.labels[row] == truth and (width, height) == (32, 32)
        assert set(_chunks(bytes(png))) == {"IHDR", "IDAT", "IEND"}
        assert 0.0 <= detector <= 1.0  # the detector scored every image
        if synthetic:  # the edited region: where the fake moved a pixel by more than 0.02
            mask = np.unpackbits(np.frombuffer(edited, np.uint8))[:1024].reshape(32, 32).astype(bool)
            assert np.array_equal(mask, np.abs(fakes[row, 0] - data.images[row, 0]) > 0.02) and mask.any()
        else:
            assert edited is None
    from PIL import Image
    assert Image.open(io.BytesIO(bytes(items[0][3]))).size == (512, 512)
    assert window == study_window(data.images[sorted(rows.values())])
    assert meta["detector"]["model"] == "resnet10t" and meta["detector"]["seed"] == 0
    # the attacked model's outcome on each case is the run's GAN cell's, looked up by the run's image id
    manifest = json.loads((resolve_run(store.root, meta["run_id"]) / "manifest.json").read_text())
    score = next(s for s in manifest["stages"] if s["label"] == "score gan@0/255 vs resnet10t+none")
    _, flags = read_score(store.path(score["key"]))
    outcome = {i: (int(c), int(f)) for i, c, f in zip(flags["ids"], flags["clean_correct"], flags["fooled"])}
    model = {case: (correct, fooled) for case, correct, fooled in con.execute("SELECT * FROM model")}
    assert model == {case: outcome[str(data.ids[row])] for case, row in rows.items()}
    # neither the run's image ids nor any token appear in the study file (tokens are stored as hashes only)
    raw = (study.folder / "study.sqlite").read_bytes()
    assert not any(str(i).encode() in raw for i in data.ids)
    assert not any(t.encode() in raw for t in (study.admin, *study.readers.values()))
    # every reader reads every image once, in an order of their own
    orders = {}
    for reader, _seq, item in con.execute("SELECT reader, seq, item FROM sequence ORDER BY reader, seq"):
        orders.setdefault(reader, []).append(item)
    assert len(orders) == 2 and all(sorted(o) == list(range(1, 9)) for o in orders.values())


def test_pairs_shows_both_versions_in_different_halves(tiny_run: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    study = make_study(tiny_run, tmp_path / "pairs", capsys, cases=8, readers=2, extra=("--pairs", "--no-detector"))
    con = _db(study)
    case_of = dict(con.execute("SELECT item, case_id FROM items"))
    assert len(case_of) == 16 and len(set(case_of.values())) == 8
    for reader in (1, 2):
        order = [i for (i,) in con.execute("SELECT item FROM sequence WHERE reader = ? ORDER BY seq", (reader,))]
        assert sorted(order) == sorted(case_of)
        first, second = {case_of[i] for i in order[:8]}, {case_of[i] for i in order[8:]}
        assert first == second == set(case_of.values())  # each half holds one version of every case


def test_counterbalance_gives_every_other_reader_the_other_version(tiny_run: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    study = make_study(tiny_run, tmp_path / "cb", capsys, cases=8, readers=3,
                       extra=("--counterbalance", "--no-detector"))
    con = _db(study)
    version = {i: (c, s, t) for i, c, s, t in con.execute("SELECT item, case_id, synthetic, truth FROM items")}
    assert len(version) == 16
    seen = {}
    for reader in (1, 2, 3):
        order = [i for (i,) in con.execute("SELECT item FROM sequence WHERE reader = ? ORDER BY seq", (reader,))]
        assert sorted(version[i][0] for i in order) == sorted({c for c, _, _ in version.values()})  # each case once
        assert sorted((version[i][2], version[i][1]) for i in order) == [(0, 0), (0, 0), (0, 1), (0, 1), (1, 0),
                                                                         (1, 0), (1, 1), (1, 1)]
        seen[reader] = set(order)
    assert not seen[1] & seen[2] and seen[1] == seen[3]  # every case is seen both ways across readers
    server = Server(study)
    try:
        _read_all(server, study, ("reader-1", "reader-2", "reader-3"))
    finally:
        server.close()
    assert main(["reader-study", "report", "--study", str(study.folder)]) == 0
    report = json.loads((study.folder / "report" / "report.json").read_text())
    assert report["pooled"] is None and report["reason"].startswith("the counterbalanced design gives readers")
    assert [r["accuracy"]["successes"] for r in report["per_reader"]][:2] == [8, 4]


def test_answers_in_order_bad_input_and_repeats(server: Server, study: Study) -> None:
    token = server.readers["reader-1"]
    status = json.loads(server.get(f"/api/{token}/next")[1])
    assert set(status) == {"seq", "total", "item", "width", "height"} and status["seq"] == 0 and status["total"] == 8
    item = status["item"]
    code, png, headers = server.get(f"/read/{token}/image/{item}.png")
    assert code == 200 and headers["content-type"] == "image/png" and headers["cache-control"] == "no-store"
    bad = [({"confidence": 9}, 400, "field 'confidence': send an integer from 1 (a guess) to 5 (certain)"),
           ({"call": 2}, 400, "field 'call': send 0 (real) or 1 (fake)"),
           ({"call": True}, 400, "field 'call': send 0 (real) or 1 (fake)"),
           ({"x": 3.0}, 400, "field 'y': send both x and y of the mark, or neither"),
           ({"x": 40, "y": 2}, 400, "fields 'x', 'y': the mark must lie inside the image (0..32, 0..32)"),
           ({"truth": 1}, 400, "field 'truth' is not part of an answer"),
           ({"item": "no-such-image"}, 404, "field 'item': no image of this study has that token")]
    for fields, code_wanted, message in bad:
        code, reply = _answer(server, token, 0, **{"item": item, **fields})
        assert code == code_wanted and reply["error"].startswith(message), (fields, reply)
    assert server.post(f"/api/{token}/answers", b"not json") == (400, {"error": "the body is not JSON; send a JSON "
                                                                              "object"})
    code, reply = server.post(f"/api/{token}/answers", b'{"pad": "' + b"x" * 10_000 + b'"}')
    assert code == 413 and "over 4096 bytes" in reply["error"]
    # out of order, or another image: 409
    code, reply = _answer(server, token, 1, item)
    assert code == 409 and "answer 1" in reply["error"]
    other = _db(study).execute("SELECT token FROM items WHERE token != ? LIMIT 1", (item,)).fetchone()[0]
    code, reply = _answer(server, token, 0, other)
    assert code == 409 and "not the one at that position" in reply["error"]
    # the right answer is taken and the next image comes with the reply; a repeat is accepted and stored once
    code, reply = _answer(server, token, 0, item, call=1, confidence=4, x=10.5, y=3.25)
    assert code == 200 and reply["recorded"] is True and reply["next"]["seq"] == 1
    assert set(reply) == {"recorded", "next"}  # no truth, no score
    first = reply["next"]
    code, reply = _answer(server, token, 0, item, call=1, confidence=4, x=10.5, y=3.25)
    assert code == 200 and reply["recorded"] is False and reply["next"] == first
    code, reply = _answer(server, token, 0, item, call=0, confidence=4)
    assert code == 409 and "cannot be changed" in reply["error"]
    rows = _db(study).execute("SELECT reader, seq, call, confidence, x, y FROM answers").fetchall()
    assert rows == [(1, 0, 1, 4, 10.5, 3.25)]


def test_a_reader_token_reaches_nothing_but_its_own_reading(server: Server, study: Study) -> None:
    mine, other = server.readers["reader-1"], server.readers["reader-2"]
    item = json.loads(server.get(f"/api/{mine}/next")[1])["item"]
    assert _answer(server, other, 0, json.loads(server.get(f"/api/{other}/next")[1])["item"], call=1)[0] == 200
    for path in (f"/admin/{mine}", f"/admin/{mine}/answers.csv", f"/admin/{mine}/report.json", "/admin/",
                 f"/admin/{server.admin[:-1]}", f"/admin/{server.admin}x/answers.csv"):
        code, body, _ = server.get(path)
        assert code == 404 and b"call" not in body and b"synthetic" not in body, path
    # the organiser token is not a reader token, nor a made-up one; nothing lists answers to a reader
    for token in (server.admin, "x" * 43, mine[:-1]):
        assert server.get(f"/api/{token}/next")[0] == 404 and server.get(f"/read/{token}")[0] == 404
    assert server.get(f"/api/{mine}/answers")[0] == 405
    assert server.get(f"/read/x/image/{item}.png")[0] == 404
    # what a reader gets: no item tokens in the page, no word of which images are synthetic, no answer of another
    page = server.get(f"/read/{mine}")[1].decode()
    tokens = [t for (t,) in _db(study).execute("SELECT token FROM items")]
    assert "synthetic" not in page.lower() and not any(t in page for t in tokens) and other not in page
    step = json.loads(server.get(f"/api/{mine}/next")[1])
    assert step["seq"] == 0 and set(step) == {"seq", "total", "item", "width", "height"}
    # the organiser sees both: the CSV names reader-2's answer and marks synthetic images
    rows = list(csv.DictReader(io.StringIO(server.get(f"/admin/{server.admin}/answers.csv")[1].decode())))
    assert [(r["reader"], r["call"]) for r in rows] == [("reader-2", "fake")] and rows[0]["synthetic"] in ("yes", "no")


def test_answers_survive_a_sigkill_mid_study_and_the_reader_resumes(server: Server, study: Study) -> None:
    token = server.readers["reader-1"]
    acknowledged, stop = [], threading.Event()

    def read() -> None:  # a reader answering as fast as it can until the server dies under it
        step = json.loads(server.get(f"/api/{token}/next")[1])
        while not step.get("done") and not stop.is_set():
            try:
                code, reply = _answer(server, token, step["seq"], step["item"], call=step["seq"] % 2,
                                      confidence=1 + step["seq"] % 5)
            except OSError:
                return
            if code != 200:
                return
            acknowledged.append(step["seq"])
            step = reply["next"]
            if step["seq"] == 3:
                stop.set()  # the kill comes while answer 3 may be in flight

    reader = threading.Thread(target=read)
    reader.start()
    stop.wait(timeout=60)
    server.kill()
    reader.join(timeout=60)
    rows = _db(study).execute("SELECT seq, call, confidence FROM answers WHERE reader = 1 ORDER BY seq").fetchall()
    assert acknowledged and [s for s, _, _ in rows][: len(acknowledged)] == acknowledged  # every acknowledged answer
    assert [s for s, _, _ in rows] == list(range(len(rows)))  # and no hole
    assert rows == [(s, s % 2, 1 + s % 5) for s in range(len(rows))]
    server.restart()
    step = json.loads(server.get(f"/api/{token}/next")[1])
    assert step["seq"] == len(rows)  # resumes at the next unanswered image
    expected = _db(study).execute("SELECT i.token FROM sequence s JOIN items i ON i.item = s.item WHERE s.reader = 1 "
                                  "AND s.seq = ?", (len(rows),)).fetchone()[0]
    assert step["item"] == expected
    if rows:  # a retry of the last answer after the restart is stored once
        last = rows[-1]
        item = _db(study).execute("SELECT i.token FROM sequence s JOIN items i ON i.item = s.item WHERE s.reader = 1 "
                                  "AND s.seq = ?", (last[0],)).fetchone()[0]
        code, reply = _answer(server, token, last[0], item, call=last[1], confidence=last[2])
        assert code == 200 and reply["recorded"] is False
    assert _db(study).execute("SELECT COUNT(*) FROM answers").fetchone()[0] == len(rows)


def _policy(name: str, seq: int, synthetic: int) -> dict:
    """Scripted readers: right every time and certain; 'real' every time; right on every third image only."""
    if name == "reader-1":
        return {"call": synthetic, "confidence": 5}
    if name == "reader-2":
        return {"call": 0, "confidence": 3}
    return {"call": synthetic if seq % 3 == 0 else 1 - synthetic, "confidence": 1 + seq % 5}


def _read_all(server: Server, study: Study, names: tuple[str, ...], policy: str | None = None) -> dict:
    """Every named reader answers every image through HTTP (as its own scripted reader, or all as `policy`)."""
    con = _db(study)
    truth = dict(con.execute("SELECT token, synthetic FROM items"))
    sent = {}
    for name in names:
        token = server.readers[name]
        step = json.loads(server.get(f"/api/{token}/next")[1])
        sent[name] = []
        while not step.get("done"):
            fields = _policy(policy or name, step["seq"], truth[step["item"]])
            code, reply = _answer(server, token, step["seq"], step["item"], **fields)
            assert code == 200, reply
            sent[name].append((truth[step["item"]], fields))
            step = reply["next"]
        assert step == {"seq": 8, "total": 8, "done": True}
    return sent


def test_report_numbers_follow_from_the_answers(server: Server, study: Study, tmp_path: Path) -> None:
    sent = _read_all(server, study, ("reader-1", "reader-2", "reader-3"))
    code, page, _ = server.get(f"/admin/{server.admin}")
    assert code == 200 and b"4 original and 4 <strong>synthetic</strong>" in page
    assert page.count(b"8 / 8") == 3 and b'id="per-reader"' in page  # progress and results
    report = json.loads(server.get(f"/admin/{server.admin}/report.json")[1])
    assert report["complete_readers"] == ["reader-1", "reader-2", "reader-3"]
    rows = list(csv.DictReader(io.StringIO(server.get(f"/admin/{server.admin}/answers.csv")[1].decode())))
    assert len(rows) == 24 and sum(r["synthetic"] == "yes" for r in rows) == 12
    assert all(r["image"].startswith("synthetic: lesion GAN fake") == (r["synthetic"] == "yes") for r in rows)

    assert main(["reader-study", "report", "--study", str(study.folder), "--leaderboard", str(tmp_path / "lb")]) == 0
    out = study.folder / "report"
    report = json.loads((out / "report.json").read_text())
    per = {r["name"]: r for r in report["per_reader"]}
    for name, answers in sent.items():
        right = sum(f["call"] == s for s, f in answers)
        assert (per[name]["accuracy"]["successes"], per[name]["accuracy"]["n"]) == (right, 8)
        assert per[name]["sensitivity"]["successes"] == sum(f["call"] == 1 for s, f in answers if s)
        assert per[name]["specificity"]["successes"] == sum(f["call"] == 0 for s, f in answers if not s)
    assert per["reader-1"]["auc"] == 1.0 and per["reader-2"]["auc"] == 0.5
    assert per["reader-2"]["sensitivity"]["value"] == 0.0 and per["reader-2"]["specificity"]["value"] == 1.0
    model = _db(study).execute("SELECT m.correct, m.fooled FROM model m JOIN items i USING (case_id) "
                               "WHERE i.synthetic = 1").fetchall()
    fooled = report["model"]["fooled_by_fakes"]
    assert (fooled["successes"], fooled["n"]) == (sum(f for c, f in model if c), sum(c for c, _ in model))
    assert "detector" not in report  # made with --no-detector
    md = (out / "report.md").read_text()
    assert "| reader-1 (8/8) | 8/8 = 100.0% [67.6, 100.0] |" in md and "29% to 71%" in md
    html = (out / "index.html").read_text()
    assert 'id="per-reader"' in html and 'id="pooled"' in html and "Synthetic images are marked" in html
    assert (tmp_path / "lb" / "reader-study" / "index.html").read_text() == html
    assert (tmp_path / "lb" / "reader-study" / "report.md").read_text() == md


def test_marks_inside_the_edit_count_as_hits(server: Server, study: Study) -> None:
    con = _db(study)
    items = {tok: (s, e) for tok, s, e in con.execute("SELECT token, synthetic, edited FROM items")}
    token = server.readers["reader-1"]
    step = json.loads(server.get(f"/api/{token}/next")[1])
    hits = marked = 0
    while not step.get("done"):
        synthetic, edited = items[step["item"]]
        mark = {}
        if synthetic:  # inside the edit on even positions, outside on odd ones
            mask = np.unpackbits(np.frombuffer(edited, np.uint8))[:1024].reshape(32, 32).astype(bool)
            ys, xs = np.nonzero(mask if step["seq"] % 2 == 0 else ~mask)
            mark = {"x": float(xs[0]) + 0.5, "y": float(ys[0]) + 0.5}
            hits += step["seq"] % 2 == 0
            marked += 1
        code, reply = _answer(server, token, step["seq"], step["item"], call=1, confidence=2, **mark)
        assert code == 200
        step = reply["next"]
    assert main(["reader-study", "report", "--study", str(study.folder)]) == 0
    report = json.loads((study.folder / "report" / "report.json").read_text())
    loc = report["per_reader"][0]["localisation"]
    assert (loc["successes"], loc["n"]) == (hits, marked) and marked == 4


def test_report_before_enough_readers_says_why(server: Server, study: Study) -> None:
    _read_all(server, study, ("reader-1",))
    assert main(["reader-study", "report", "--study", str(study.folder)]) == 0
    report = json.loads((study.folder / "report" / "report.json").read_text())
    assert report["pooled"] is None and report["reason"].startswith("1 reader(s) answered every image")
    assert [r["answered"] for r in report["per_reader"]] == [8, 0, 0]
    assert report["per_reader"][0]["accuracy"]["value"] == 1.0
    assert "No pooled analysis yet" in (study.folder / "report" / "index.html").read_text()


def test_cli_errors_are_one_line_and_write_nothing(tiny_run: Path, study: Study, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    capsys.readouterr()
    cases = [(["--out", str(tmp_path / "a"), "--cases", "80"], "--cases 80: the test split has"),
             (["--out", str(study.folder)], "a study already exists there"),
             (["--out", str(tmp_path / "b"), "--model", "vgg99"], "has no stored GAN fakes against vgg99+*"),
             (["--out", str(tmp_path / "c"), "--attack", "fgsm"], "--attack fgsm: a reader study needs whole")]
    for args, message in cases:
        assert main(["reader-study", "create", "--config", str(tiny_run), "--no-detector", *args]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not any((tmp_path / x).exists() for x in "abc")
    assert main(["reader-study", "add-reader", "reader-1", "--study", str(study.folder)]) == 2
    assert "already has a reader of that name" in capsys.readouterr().err
    assert main(["reader-study", "add-reader", "<b>", "--study", str(study.folder)]) == 2
    assert "reader name '<b>': use 1-40 letters" in capsys.readouterr().err
    assert main(["reader-study", "report", "--study", str(tmp_path / "nothing")]) == 2
    assert "no study.sqlite there" in capsys.readouterr().err


def test_leaderboard_page_links_a_published_study(tiny_run: Path, study: Study) -> None:
    board = tiny_run.parent / "leaderboards" / "tiny-blobs"
    assert main(["leaderboard", "--config", str(tiny_run)]) == 0
    assert 'id="reader-study"' not in (board / "index.html").read_text()
    assert main(["reader-study", "report", "--study", str(study.folder), "--leaderboard", str(board)]) == 0
    assert main(["leaderboard", "--config", str(tiny_run)]) == 0  # rewritten: the study survives and is linked
    page = (board / "index.html").read_text()
    assert '<a href="reader-study/index.html">Reader study</a>' in page
    assert (board / "reader-study" / "report.json").is_file()


def test_report_of_readers_who_agree_on_everything_shows_undefined_numbers(server: Server, study: Study) -> None:
    _read_all(server, study, ("reader-1", "reader-2"), policy="reader-1")
    assert main(["reader-study", "report", "--study", str(study.folder)]) == 0
    pooled = json.loads((study.folder / "report" / "report.json").read_text())["pooled"]
    # identical readers: no reader variance, so Hillis' df is infinite (stored as null) and kappa is 1
    assert pooled["or"]["modality_df"] == [None] and pooled["kappa"]["value"] == 1.0 and pooled["auc"] == 1.0
    assert "its standard error, Hillis df" in (study.folder / "report" / "index.html").read_text()


def test_load_benchmark_checks_rows_and_order_on_a_small_load(tiny_run: Path, tmp_path: Path) -> None:
    bench = load_benchmark_script("bench_reader_load")
    out = tmp_path / "load.json"
    assert bench.main(["--config", str(tiny_run), "--readers", "4", "--answers", "12", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["answers"] == 48 and report["study"]["cases"] == 12
    assert report["checks"] == {"rows": 48, "expected_rows": 48, "sequence_ok": True, "values_ok": True,
                                "errors": []}
    assert report["answer_post_ms"]["n"] == 48 and report["answers_per_s"] > 0
    assert report["answer_post_ms"]["p50"] <= report["answer_post_ms"]["p99"] <= report["answer_post_ms"]["max"]


def test_the_same_answer_sent_at_once_from_many_tabs_is_stored_once(server: Server, study: Study) -> None:
    from concurrent.futures import ThreadPoolExecutor

    token = server.readers["reader-3"]
    item = json.loads(server.get(f"/api/{token}/next")[1])["item"]
    with ThreadPoolExecutor(8) as pool:
        same = list(pool.map(lambda _: _answer(server, token, 0, item, call=1), range(8)))
    assert [code for code, _ in same] == [200] * 8
    assert sorted(reply["recorded"] for _, reply in same) == [False] * 7 + [True]
    # different values for the next position at once: exactly one is kept, the others are refused
    item = same[0][1]["next"]["item"]
    with ThreadPoolExecutor(5) as pool:
        mixed = list(pool.map(lambda k: _answer(server, token, 1, item, confidence=1 + k), range(5)))
    assert sum(code == 200 and reply["recorded"] for code, reply in mixed) == 1
    kept = _db(study).execute("SELECT confidence FROM answers WHERE reader = 3 AND seq = 1").fetchone()[0]
    assert all(code == 200 if 1 + k == kept else code == 409 for k, (code, _) in enumerate(mixed))
    assert _db(study).execute("SELECT COUNT(*) FROM answers WHERE reader = 3").fetchone()[0] == 2


def test_report_with_delong_covariances(server: Server, study: Study) -> None:
    _read_all(server, study, ("reader-1", "reader-2", "reader-3"))
    assert main(["reader-study", "report", "--study", str(study.folder), "--covariance", "delong"]) == 0
    pooled = json.loads((study.folder / "report" / "report.json").read_text())["pooled"]
    assert pooled["or"]["covariance"] == "delong"
    assert "delong covariances" in (study.folder / "report" / "index.html").read_text()


def test_serve_binds_localhost_says_so_and_refuses_a_port_in_use(server: Server, study: Study,
                                                                 capsys: pytest.CaptureFixture) -> None:
    assert "bound to 127.0.0.1: this machine only" in server.banner
    assert main(["reader-study", "serve", "--study", str(study.folder), "--port", str(server.port)]) == 2
    assert f"--port {server.port}: something already listens there" in capsys.readouterr().err
