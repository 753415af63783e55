"""Reader study server under load: many readers answering at once against one real server.

    python benchmarks/bench_reader_load.py                          # 20 readers x 100 answers, writes
                                                                    # results/reader_load.json
    python benchmarks/bench_reader_load.py --readers 3 --answers 10 --out /tmp/x.json   # a smoke run
    python benchmarks/bench_reader_load.py --readers 5 --answers 80 --out /tmp/x.json --keep /tmp/demo  # a demo

A study is made from a recorded run's GAN fakes (default: the latest run of configs/default.toml; `make run` first)
with `answers` cases, each shown once as its original or its fake, so that each reader has exactly `answers` images
(no detector scoring: it does not touch the server); readers are added as `add-reader` does. Then `python -m benchmark
reader-study serve` runs as its own process (uvicorn, one worker, SQLite in WAL mode, synced on every commit), and one
thread per reader does what the reading page does, as fast as it can: fetch the image, post the answer (a real/fake
call, a confidence 1-5, on every other image a mark; the reply carries the next image), on one keep-alive HTTP
connection per reader. All readers start together at a barrier.

Measured: answers per second over the whole load (first request to last reply), and the latency of each answer's
POST and each image's GET (p50, p90, p99, max). Checked afterwards in the study file: the number of answer rows, and
for every reader that its rows are positions 0..answers-1, each naming the item the reader's order has there, with
the values the reader sent.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmark.config import load_config  # noqa: E402
from benchmark.execution.records import resolve_run  # noqa: E402
from benchmark.execution.store import Store  # noqa: E402
from benchmark.reader_study.build import create_study  # noqa: E402
from benchmark.reader_study.readers import add_reader, hash_token  # noqa: E402
from benchmark.reader_study.sources import find_fakes  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "reader_load.json"
FIELDS = ("call", "confidence", "x", "y")


def _start_server(study: Path) -> tuple[subprocess.Popen, int]:
    """The real server on a free port; (process, port)."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "benchmark", "reader-study", "serve", "--study", str(study),
                             "--port", str(port)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    print(proc.stdout.readline().strip())  # where it listens
    # keep reading what the server prints, so that its pipe never fills and blocks it
    threading.Thread(target=lambda: sys.stdout.writelines(proc.stdout), daemon=True).start()
    deadline = time.monotonic() + 60
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/")
            conn.getresponse().read()
            conn.close()
            return proc, port
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                sys.exit("the server did not start")
            time.sleep(0.1)


def _reader(port: int, token: str, answers: int, seed: int, barrier: threading.Barrier, out: dict) -> None:
    """One reader: next, then (image, answer) per position; latencies in seconds and what was sent."""
    rng = np.random.default_rng(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    post_s, image_s, sent, errors = [], [], [], []
    barrier.wait()
    conn.request("GET", f"/api/{token}/next")
    step = json.loads(conn.getresponse().read())
    for _ in range(answers):
        t0 = time.perf_counter()
        conn.request("GET", f"/read/{token}/image/{step['item']}.png")
        reply = conn.getresponse()
        reply.read()
        image_s.append(time.perf_counter() - t0)
        mark = step["seq"] % 2 == 0
        body = {"seq": step["seq"], "item": step["item"], "ms": int(rng.integers(500, 5000)),
                "call": int(rng.integers(0, 2)), "confidence": int(rng.integers(1, 6)),
                "x": round(float(rng.uniform(0, step["width"])), 2) if mark else None,
                "y": round(float(rng.uniform(0, step["height"])), 2) if mark else None}
        t0 = time.perf_counter()
        conn.request("POST", f"/api/{token}/answers", json.dumps(body), {"Content-Type": "application/json"})
        reply = conn.getresponse()
        data = json.loads(reply.read())
        post_s.append(time.perf_counter() - t0)
        if reply.status != 200:
            errors.append(f"{reply.status}: {data.get('error')}")
            break
        sent.append(body)
        step = data["next"]
    conn.close()
    out[token] = {"post_s": post_s, "image_s": image_s, "sent": sent, "errors": errors, "end": time.perf_counter()}


def _quantiles(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1000
    return {"p50": round(float(np.percentile(ms, 50)), 2), "p90": round(float(np.percentile(ms, 90)), 2),
            "p99": round(float(np.percentile(ms, 99)), 2), "max": round(float(ms.max()), 2), "n": int(ms.size)}


def _check(study: Path, tokens: dict[str, str], results: dict, answers: int) -> dict:
    """Rows in the study file against what each reader sent and the reader's order."""
    con = sqlite3.connect(str(study / "study.sqlite"))
    rows = con.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
    sequence_ok = values_ok = True
    for token in tokens.values():
        reader = con.execute("SELECT reader FROM readers WHERE token_hash = ?", (hash_token(token),)).fetchone()[0]
        stored = con.execute("SELECT a.seq, i.token, s.item = a.item, a.call, a.confidence, a.x, a.y, a.ms "
                             "FROM answers a JOIN items i ON i.item = a.item JOIN "
                             "sequence s ON s.reader = a.reader AND s.seq = a.seq WHERE a.reader = ? ORDER BY a.seq",
                             (reader,)).fetchall()
        sequence_ok &= [r[0] for r in stored] == list(range(answers)) and all(r[2] == 1 for r in stored)
        sent = results[token]["sent"]
        values_ok &= [(b["seq"], b["item"], *(b[f] for f in FIELDS), b["ms"]) for b in sent] == \
            [(r[0], r[1], *r[3:]) for r in stored]
    con.close()
    return {"rows": int(rows), "expected_rows": len(tokens) * answers, "sequence_ok": bool(sequence_ok),
            "values_ok": bool(values_ok)}


def main(argv: list[str] | None = None) -> int:
    """Run the load, check the study file, print and write the numbers."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=None, help="config whose store holds the run (default: "
                                                             "configs/default.toml)")
    p.add_argument("--run", default="latest")
    p.add_argument("--readers", type=int, default=20)
    p.add_argument("--answers", type=int, default=100, help="answers per reader (the study has as many cases)")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--keep", type=Path, default=None, help="write the study here and keep it (answered at random by "
                                                           "scripted readers: a demo for `reader-study report`)")
    args = p.parse_args(argv)
    load_before = round(os.getloadavg()[0], 2)  # other work on the cores slows the server: say how much there was
    config = load_config(args.config)
    store = Store(config.run.store)
    source = find_fakes(resolve_run(config.run.store, args.run), store)
    cases = args.answers
    with tempfile.TemporaryDirectory(prefix="reader-load-") as tmp:
        study = args.keep or Path(tmp) / "load-study"
        create_study(source, store, study, cases, seed=0, dataset=config.dataset.name, detector=False)
        tokens = {f"reader-{k + 1:02d}": add_reader(study, f"reader-{k + 1:02d}") for k in range(args.readers)}
        proc, port = _start_server(study)
        try:
            barrier = threading.Barrier(len(tokens) + 1)
            results: dict = {}
            threads = [threading.Thread(target=_reader, args=(port, t, args.answers, k, barrier, results))
                       for k, t in enumerate(tokens.values())]
            for t in threads:
                t.start()
            barrier.wait()
            start = time.perf_counter()
            for t in threads:
                t.join()
            seconds = max(r["end"] for r in results.values()) - start
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        checks = _check(study, tokens, results, args.answers)
    errors = [e for r in results.values() for e in r["errors"]]
    total = sum(len(r["sent"]) for r in results.values())
    report = {
        "readers": args.readers, "answers_per_reader": args.answers, "answers": total, "seconds": round(seconds, 3),
        "answers_per_s": round(total / seconds, 1),
        "answer_post_ms": _quantiles([s for r in results.values() for s in r["post_s"]]),
        "image_get_ms": _quantiles([s for r in results.values() for s in r["image_s"]]),
        "checks": {**checks, "errors": errors},
        "server": "python -m benchmark reader-study serve: uvicorn, 1 process, Starlette, SQLite (WAL, "
                  "synchronous=FULL)",
        "study": {"run_id": source.run_id, "fakes": source.label, "cases": cases,
                  "image_size": config.dataset.image_size},
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_average_1min_before": load_before, "clients": "threads of this process, same machine"},
        "date": time.strftime("%Y-%m-%d"),
    }
    print(f"{total} answers from {args.readers} readers in {seconds:.2f} s: {report['answers_per_s']} answers/s; "
          f"answer POST p50 {report['answer_post_ms']['p50']} ms, p99 {report['answer_post_ms']['p99']} ms; image "
          f"GET p99 {report['image_get_ms']['p99']} ms")
    print(f"checks: {checks['rows']} rows of {checks['expected_rows']}, order ok: {checks['sequence_ok']}, values "
          f"ok: {checks['values_ok']}, errors: {len(errors)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    ok = not errors and checks["rows"] == checks["expected_rows"] and checks["sequence_ok"] and checks["values_ok"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
