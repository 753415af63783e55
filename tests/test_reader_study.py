"""The reader study end to end on a tiny real run (data, training, lesion GAN, fakes): the study file, the real
server under uvicorn over HTTP, the report's numbers, the CLI's errors and the leaderboard link."""
from __future__ import annotations

import csv
import io
import json
import sqlite3
import struct
from pathlib import Path

import numpy as np
import pytest
from conftest import load_benchmark_script
from reader_study_helpers import Server, make_study, tiny_gan_run

from benchmark.cli import main
from benchmark.execution.artifacts import read_data, read_fakes, read_score
from benchmark.execution.records import resolve_run
from benchmark.execution.store import Store
from benchmark.reader_study.agreement import fleiss_kappa
from benchmark.reader_study.mrmc import obuchowski_rockette


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny matrix with the gan attack, run once for every reader study test; its config file."""
    return tiny_gan_run(tmp_path_factory.mktemp("reader-run"))


@pytest.fixture
def study(tiny_run: Path, tmp_path: Path) -> Path:
    """A fresh study of 8 cases (16 images) and 3 readers."""
    return make_study(tiny_run, tmp_path / "study")


@pytest.fixture
def server(study: Path) -> Server:
    """The real server on the study."""
    s = Server(study)
    yield s
    s.close()


def _db(study: Path) -> sqlite3.Connection:
    return sqlite3.connect(str(study / "study.sqlite"))


def _chunks(png: bytes) -> list[str]:
    """The chunk types of a PNG file, in order."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    out, pos = [], 8
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        out.append(kind.decode())
        pos += 12 + length
    return out


def _decode(png: bytes) -> np.ndarray:
    from PIL import Image
    return np.asarray(Image.open(io.BytesIO(png)))


def test_study_pairs_real_originals_with_their_fakes_and_hides_ids(study: Path, tiny_run: Path) -> None:
    store = Store(tiny_run.parent / "runs")
    con = _db(study)
    meta = {k: json.loads(v) for k, v in con.execute("SELECT key, value FROM meta")}
    data = read_data(store.path(meta["data_key"]))
    fakes, _ = read_fakes(store.path(meta["fakes_key"]))
    items = con.execute("SELECT item, case_id, synthetic, truth, png FROM items").fetchall()
    assert len(items) == 16 and meta["fakes"] == "fakes vs resnet10t+none" and meta["cases"] == 8
    by_case = {}
    for _, case, synthetic, truth, png in items:
        by_case.setdefault(case, {})[synthetic] = (truth, bytes(png))
    assert len(by_case) == 8 and all(set(v) == {0, 1} for v in by_case.values())
    assert sorted(v[0][0] for v in by_case.values()) == [0, 0, 0, 0, 1, 1, 1, 1]
    # every PNG is a test image of the run, as stored (8-bit), and its fake is the fakes artifact's same row
    test = np.flatnonzero(data.splits == "test")
    originals = np.round(data.images[test, 0] * 255).astype(np.uint8)
    # the attacked model's outcome on each case is the run's GAN cell's, looked up by the run's image id
    manifest = json.loads((resolve_run(store.root, meta["run_id"]) / "manifest.json").read_text())
    score = next(s for s in manifest["stages"] if s["label"] == "score gan@0/255 vs resnet10t+none")
    assert meta["model_cell"] == score["label"]
    _, flags = read_score(store.path(score["key"]))
    outcome = {i: (int(c), int(f)) for i, c, f in zip(flags["ids"], flags["clean_correct"], flags["fooled"])}
    model = {case: (correct, fooled) for case, correct, fooled in con.execute("SELECT * FROM model")}
    assert len(model) == 8
    for case, truth_png in by_case.items():
        original, fake = _decode(truth_png[0][1]), _decode(truth_png[1][1])
        row = [k for k in range(len(test)) if np.array_equal(originals[k], original)]
        assert len(row) == 1 and data.labels[test[row[0]]] == truth_png[0][0]
        assert model[case] == outcome[str(data.ids[test[row[0]]])]
        assert np.array_equal(fake, np.round(fakes[test[row[0]], 0] * 255).astype(np.uint8))
        assert not np.array_equal(fake, original)
        assert _chunks(truth_png[0][1]) == _chunks(truth_png[1][1])  # same encoding, no text chunks
        assert set(_chunks(truth_png[1][1])) == {"IHDR", "IDAT", "IEND"}
    # the run's image ids appear nowhere in the study file
    raw = (study / "study.sqlite").read_bytes()
    assert not any(str(i).encode() in raw for i in data.ids)
    assert all(len(case) == 16 and case not in set(data.ids.astype(str)) for case in by_case)


def test_each_reader_reads_every_image_once_the_two_versions_in_different_halves(study: Path) -> None:
    con = _db(study)
    case_of = dict(con.execute("SELECT item, case_id FROM items"))
    orders = {}
    for reader, _seq, item in con.execute("SELECT reader, seq, item FROM sequence ORDER BY reader, seq"):
        orders.setdefault(reader, []).append(item)
    assert len(orders) == 3
    for order in orders.values():
        assert sorted(order) == sorted(case_of)
        first, second = {case_of[i] for i in order[:8]}, {case_of[i] for i in order[8:]}
        assert first == second == set(case_of.values())  # each case once per half
    assert len({tuple(o) for o in orders.values()}) == 3  # every reader has an own order


def _answer(server: Server, token: str, seq: int, item: str, **fields: int) -> tuple[int, dict]:
    body = {"seq": seq, "item": item, "cancer": 0, "cancer_confidence": 1, "manipulated": 0,
            "manipulated_confidence": 1, "ms": 1000, **fields}
    return server.post(f"/api/{token}/answers", body)


def test_server_takes_answers_in_order_only(server: Server, study: Path) -> None:
    token = server.readers["reader-1"]
    status = json.loads(server.get(f"/api/{token}/next")[1])
    assert set(status) == {"seq", "total", "item"} and status["seq"] == 0 and status["total"] == 16
    # the reading page carries no item and no word of which images are synthetic
    page = server.get(f"/read/{token}")[1].decode()
    tokens = [t for (t,) in _db(study).execute("SELECT token FROM items")]
    assert "synthetic" not in page.lower() and not any(t in page for t in tokens)
    # what the browser gets for an image says nothing about it
    code, png, headers = server.get(f"/image/{status['item']}.png")
    assert code == 200 and headers["content-type"] == "image/png" and set(_chunks(png)) == {"IHDR", "IDAT", "IEND"}
    # bad fields: 400, one line naming the field
    code, reply = _answer(server, token, 0, status["item"], cancer=2)
    assert code == 400 and reply["error"] == "field 'cancer': send 0 (no cancer) or 1 (cancer)"
    code, reply = _answer(server, token, 0, status["item"], manipulated_confidence=0)
    assert code == 400 and "field 'manipulated_confidence'" in reply["error"]
    assert server.post(f"/api/{token}/answers", b"not json")[0] == 400
    # out of order, or another item: 409
    code, reply = _answer(server, token, 1, status["item"])
    assert code == 409 and "answer 1" in reply["error"]
    other = _db(study).execute("SELECT token FROM items WHERE token != ? LIMIT 1", (status["item"],)).fetchone()[0]
    code, reply = _answer(server, token, 0, other)
    assert code == 409 and "not the one at that position" in reply["error"]
    # the right answer is taken and the next image comes with the reply; a repeat is accepted and stored once
    code, reply = _answer(server, token, 0, status["item"], cancer=1, cancer_confidence=3)
    assert code == 200 and reply["recorded"] is True and reply["next"]["seq"] == 1
    first = reply["next"]
    code, reply = _answer(server, token, 0, status["item"], cancer=1, cancer_confidence=3)
    assert code == 200 and reply["recorded"] is False and reply["next"] == first
    code, reply = _answer(server, token, 0, status["item"], cancer=0)
    assert code == 409 and "cannot be changed" in reply["error"]
    assert server.get("/api/nobody/next")[0] == 404 and server.get("/read/nobody")[0] == 404
    rows = _db(study).execute("SELECT reader, seq, cancer, cancer_confidence FROM answers").fetchall()
    assert rows == [(1, 0, 1, 3)]


def _policy(name: str, seq: int, synthetic: int, truth: int) -> dict:
    """Scripted readers: an expert who sees every fake, one fooled by every fake, one in between."""
    if name == "reader-1":
        return {"cancer": truth, "cancer_confidence": 3, "manipulated": synthetic, "manipulated_confidence": 3}
    if name == "reader-2":
        return {"cancer": truth if not synthetic else 1 - truth, "cancer_confidence": 2, "manipulated": 0,
                "manipulated_confidence": 1}
    return {"cancer": truth if seq % 3 else 1 - truth, "cancer_confidence": 1 + seq % 3, "manipulated": seq % 2,
            "manipulated_confidence": 2}


def _read_all(server: Server, study: Path, names: tuple[str, ...], policy: str | None = None) -> dict:
    """Every named reader answers every image through HTTP (as its own scripted reader, or all as `policy`);
    returns what was sent, per reader, in order."""
    con = _db(study)
    truth = {tok: (s, t) for tok, s, t in con.execute("SELECT token, synthetic, truth FROM items")}
    sent = {}
    for name in names:
        token = server.readers[name]
        step = json.loads(server.get(f"/api/{token}/next")[1])
        sent[name] = []
        while not step.get("done"):
            synthetic, label = truth[step["item"]]
            fields = _policy(policy or name, step["seq"], synthetic, label)
            code, reply = _answer(server, token, step["seq"], step["item"], **fields)
            assert code == 200, reply
            sent[name].append((synthetic, label, fields))
            step = reply["next"]
        assert step == {"seq": 16, "total": 16, "done": True}
    return sent


def test_report_numbers_follow_from_the_answers(server: Server, study: Path, tmp_path: Path) -> None:
    sent = _read_all(server, study, ("reader-1", "reader-2", "reader-3"))
    # the organiser's page and export say which images are synthetic
    code, page, _ = server.get(f"/admin/{server.admin}")
    assert code == 200 and b"8 original images and 8 <strong>synthetic</strong>" in page and b"48 / 16" not in page
    assert page.count(b"16 / 16") == 3 and server.get("/admin/wrong")[0] == 404
    rows = list(csv.DictReader(io.StringIO(server.get(f"/admin/{server.admin}/answers.csv")[1].decode())))
    assert len(rows) == 48 and sum(r["synthetic"] == "yes" for r in rows) == 24
    assert all(r["image"].startswith("synthetic: lesion GAN fake") == (r["synthetic"] == "yes") for r in rows)

    assert main(["reader-study", "report", "--study", str(study), "--leaderboard", str(tmp_path / "lb")]) == 0
    report = json.loads((study / "report" / "report.json").read_text())
    a = report["analysis"]
    assert report["answers"] == 48 and report["complete_readers"] == 3 and a["readers"] == ["reader-1", "reader-2",
                                                                                          "reader-3"]
    acc = {r["reader"]: (r["successes"], r["n"]) for r in a["real_vs_fake"]["accuracy"]}
    expected = {n: (sum(f["manipulated"] == s for s, _, f in v), 16) for n, v in sent.items()}
    assert acc == expected and acc["reader-1"] == (16, 16) and acc["reader-2"] == (8, 16)
    assert a["real_vs_fake"]["or"]["auc"][0][0] == 1.0 and a["real_vs_fake"]["or"]["auc"][0][1] == 0.5

    # the fooled rates by hand: per reader and case, original read right and fake read the other way
    per_case = {}
    con = _db(study)
    for name, _seq, case, synthetic, truth, cancer in con.execute(
            "SELECT r.name, a.seq, i.case_id, i.synthetic, i.truth, a.cancer FROM answers a JOIN readers r "
            "USING (reader) JOIN items i ON i.item = a.item"):
        per_case.setdefault((name, case), {})[synthetic] = (truth, cancer)
    for direction, label in (("pos_to_neg", 1), ("neg_to_pos", 0)):
        pairs = [v for v in per_case.values() if v[0][0] == label and v[0][1] == label]
        fooled = sum(v[1][1] != label for v in pairs)
        assert (a["fooled"][direction]["successes"], a["fooled"][direction]["n"]) == (fooled, len(pairs))
    model = {case: (correct, fooled, truth) for case, correct, fooled, truth in con.execute(
        "SELECT m.case_id, m.correct, m.fooled, i.truth FROM model m JOIN items i USING (case_id) "
        "WHERE i.synthetic = 0")}
    for direction, label in (("pos_to_neg", 1), ("neg_to_pos", 0)):
        right = [v for v in model.values() if v[2] == label and v[0]]
        assert (a["fooled"][direction]["model"]["successes"], a["fooled"][direction]["model"]["n"]) == \
            (sum(v[1] for v in right), len(right))
    assert "the attacked model (gan vs resnet10t+none)" in (study / "report" / "index.html").read_text()
    reader2 = [v for (n, _), v in per_case.items() if n == "reader-2"]
    assert a["fooled"]["pos_to_neg"]["per_reader"][1] == sum(v[0] == (1, 1) for v in reader2)  # fooled every time

    # the MRMC and kappa numbers are those of the answers laid out by hand
    items = con.execute("SELECT item, synthetic FROM items ORDER BY item").fetchall()
    calls = np.array([[dict(con.execute("SELECT item, manipulated FROM answers WHERE reader = ?", (r,)))[i]
                       for i, _ in items] for r in (1, 2, 3)])
    counts = np.stack([(calls == 0).sum(0), (calls == 1).sum(0)], axis=1)
    assert a["real_vs_fake"]["kappa"]["value"] == pytest.approx(fleiss_kappa(counts), abs=1e-12)
    cases = sorted({case for _, case in per_case})
    rating = {}
    for name, case, synthetic, value in con.execute(
            "SELECT r.name, i.case_id, i.synthetic, a.cancer_confidence * (2 * a.cancer - 1) "
            "FROM answers a JOIN readers r USING (reader) JOIN items i ON i.item = a.item"):
        rating[name, case, synthetic] = value  # -3..3 orders like the 6-point scale
    truth = np.array([per_case["reader-1", c][0][0] for c in cases])
    by_hand = np.array([[[rating[n, c, s] for c in cases] for n in a["readers"]] for s in (0, 1)])
    expected_or = obuchowski_rockette(by_hand, truth)
    got = a["cancer_reading"]["or"]
    assert np.allclose(got["auc"], expected_or.auc, atol=1e-12)
    assert got["f"] == pytest.approx(expected_or.f, rel=1e-9) and got["p"] == pytest.approx(expected_or.p, abs=1e-9)
    assert got["auc"][0][0] == got["auc"][1][0] == 1.0  # the expert reads every image right
    assert got["auc"][1][1] == 0.0  # reader-2 reads every fake the other way

    html = (study / "report" / "index.html").read_text()
    assert 'id="real-vs-fake"' in html and 'id="fooled"' in html and "synthetic" in html
    answers = list(csv.DictReader(io.StringIO((study / "report" / "answers.csv").read_text())))
    assert len(answers) == 48 and sum(r["synthetic"] == "yes" for r in answers) == 24
    assert (tmp_path / "lb" / "reader-study" / "index.html").read_text() == html


def test_report_before_enough_readers_says_why(server: Server, study: Path) -> None:
    _read_all(server, study, ("reader-1",))
    assert main(["reader-study", "report", "--study", str(study)]) == 0
    report = json.loads((study / "report" / "report.json").read_text())
    assert report["analysis"] is None and report["reason"].startswith("1 reader(s) answered every image")
    assert [r["answered"] for r in report["readers"]] == [16, 0, 0]
    assert 'id="no-analysis"' in (study / "report" / "index.html").read_text()


def test_cli_errors_are_one_line_and_write_nothing(tiny_run: Path, study: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    capsys.readouterr()
    cases = [(["--out", str(tmp_path / "a"), "--cases", "80"], "--cases 80: the test split has"),
             (["--out", str(study)], "a study already exists there"),
             (["--out", str(tmp_path / "b"), "--model", "vgg99"], "has no stored GAN fakes against vgg99+*"),
             (["--out", str(tmp_path / "c"), "--readers", "0"], "--readers 0: give 1 to 500 readers")]
    for args, message in cases:
        assert main(["reader-study", "create", "--config", str(tiny_run), *args]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert main(["reader-study", "report", "--study", str(tmp_path / "nothing")]) == 2
    assert "no study.sqlite there" in capsys.readouterr().err


def test_leaderboard_page_links_a_published_study(tiny_run: Path, study: Path) -> None:
    board = tiny_run.parent / "leaderboards" / "tiny-blobs"
    assert main(["leaderboard", "--config", str(tiny_run)]) == 0
    assert 'id="reader-study"' not in (board / "index.html").read_text()
    assert main(["reader-study", "report", "--study", str(study), "--leaderboard", str(board)]) == 0
    assert main(["leaderboard", "--config", str(tiny_run)]) == 0  # rewritten: the study survives and is linked
    page = (board / "index.html").read_text()
    assert '<a href="reader-study/index.html">Reader study</a>' in page
    assert (board / "reader-study" / "report.json").is_file()


def test_report_of_readers_who_agree_on_everything_shows_undefined_numbers(server: Server, study: Path) -> None:
    _read_all(server, study, ("reader-1", "reader-2"), policy="reader-1")
    assert main(["reader-study", "report", "--study", str(study)]) == 0
    a = json.loads((study / "report" / "report.json").read_text())["analysis"]
    # identical readers: no reader variance, so Hillis' df is infinite (stored as null) and kappa is 1
    assert a["cancer_reading"]["or"]["ddf"] is None and a["real_vs_fake"]["kappa"]["value"] == 1.0
    assert a["real_vs_fake"]["or"]["modality_auc"] == [1.0]
    assert "F(1, n/a)" in (study / "report" / "index.html").read_text()


def test_load_benchmark_checks_rows_and_order_on_a_small_load(tiny_run: Path, tmp_path: Path) -> None:
    bench = load_benchmark_script("bench_reader_load")
    out = tmp_path / "load.json"
    assert bench.main(["--config", str(tiny_run), "--readers", "4", "--answers", "12", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["answers"] == 48 and report["study"]["cases"] == 6
    assert report["checks"] == {"rows": 48, "expected_rows": 48, "sequence_ok": True, "values_ok": True,
                                "errors": []}
    assert report["answer_post_ms"]["n"] == 48 and report["answers_per_s"] > 0
    assert report["answer_post_ms"]["p50"] <= report["answer_post_ms"]["p99"] <= report["answer_post_ms"]["max"]


def test_the_same_answer_sent_at_once_from_many_tabs_is_stored_once(server: Server, study: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    token = server.readers["reader-3"]
    item = json.loads(server.get(f"/api/{token}/next")[1])["item"]
    with ThreadPoolExecutor(8) as pool:
        same = list(pool.map(lambda _: _answer(server, token, 0, item, cancer=1), range(8)))
    assert [code for code, _ in same] == [200] * 8
    assert sorted(reply["recorded"] for _, reply in same) == [False] * 7 + [True]
    # different values for the next position at once: exactly one is kept, the others are refused
    item = same[0][1]["next"]["item"]
    with ThreadPoolExecutor(6) as pool:
        mixed = list(pool.map(lambda k: _answer(server, token, 1, item, cancer_confidence=1 + k % 3), range(6)))
    recorded = [reply for code, reply in mixed if code == 200 and reply["recorded"]]
    assert len(recorded) == 1
    kept = _db(study).execute("SELECT cancer_confidence FROM answers WHERE reader = 3 AND seq = 1").fetchone()[0]
    assert all(code == 200 if 1 + k % 3 == kept else code == 409 for k, (code, _) in enumerate(mixed))
    assert _db(study).execute("SELECT COUNT(*) FROM answers WHERE reader = 3").fetchone()[0] == 2


def test_report_with_delong_covariances(server: Server, study: Path) -> None:
    _read_all(server, study, ("reader-1", "reader-2", "reader-3"))
    assert main(["reader-study", "report", "--study", str(study), "--covariance", "delong"]) == 0
    a = json.loads((study / "report" / "report.json").read_text())["analysis"]
    assert a["real_vs_fake"]["or"]["covariance"] == "delong" and a["cancer_reading"]["or"]["covariance"] == "delong"
    assert "delong covariances" in (study / "report" / "index.html").read_text()


def test_serve_refuses_a_port_in_use(server: Server, study: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["reader-study", "serve", "--study", str(study), "--port", str(server.port)]) == 2
    assert f"--port {server.port}: something already listens there" in capsys.readouterr().err
