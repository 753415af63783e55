"""`python -m benchmark reader-study create | serve | report`: the subcommand group and its handler."""
from __future__ import annotations

import argparse
import socket
from pathlib import Path

from benchmark.errors import BenchmarkError

__all__ = ["add_parser", "run_command"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the `reader-study` command group to the CLI's subparsers."""
    p = sub.add_parser("reader-study", help="a reader study: radiologists read originals and the lesion GAN's fakes "
                                            "in a browser; MRMC report")
    p.set_defaults(handler=run_command)
    rs = p.add_subparsers(dest="reader_command", required=True)
    c = rs.add_parser("create", help="sample test cases of a recorded run and write a study folder")
    c.add_argument("--out", type=Path, required=True, help="new study folder (holds study.sqlite)")
    c.add_argument("--config", type=Path, default=None, help="config whose store holds the run (default: "
                                                             "configs/default.toml)")
    c.add_argument("--run", default="latest", help="run id, 'latest' or a run folder (default: latest)")
    c.add_argument("--model", default=None, help="fakes made against this model (default: the run's first)")
    c.add_argument("--defense", default=None, help="fakes made against this defense (default: the run's first)")
    c.add_argument("--cases", type=int, default=40, help="test cases, half positive; each is read as original "
                                                          "and as fake (default 40: 80 images per reader)")
    c.add_argument("--readers", type=int, default=5, help="reader links to make (default 5)")
    c.add_argument("--seed", type=int, default=0, help="seed of the case sample and the reading orders")
    s = rs.add_parser("serve", help="serve the study's reading pages (uvicorn)")
    s.add_argument("--study", type=Path, required=True, help="study folder")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for a "
                                                       "network)")
    s.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    r = rs.add_parser("report", help="analyse the answers: report.json, answers.csv, index.html")
    r.add_argument("--study", type=Path, required=True, help="study folder")
    r.add_argument("--out", type=Path, default=None, help="report folder (default: STUDY/report)")
    r.add_argument("--leaderboard", type=Path, default=None,
                   help="also publish into this leaderboard folder (its page links to it)")
    r.add_argument("--covariance", choices=("jackknife", "delong"), default="jackknife",
                   help="case-sampling covariances of the AUCs in the OR analysis (default: jackknife)")


def _create(args: argparse.Namespace) -> int:
    from benchmark.config import load_config
    from benchmark.execution.records import resolve_run
    from benchmark.execution.store import Store
    from benchmark.reader_study.build import create_study, find_fakes

    config = load_config(args.config)
    run_dir = resolve_run(config.run.store, args.run)
    store = Store(config.run.store)
    source = find_fakes(run_dir, store, args.model, args.defense)
    path = create_study(source, store, args.out, args.cases, args.readers, args.seed, config.dataset.name)
    print(f"study written: {path} ({args.cases} cases x original and fake, {args.readers} readers, "
          f"{source.label}, run {source.run_id})")
    print(f"serve it: python -m benchmark reader-study serve --study {args.out}")
    return 0


def _links(folder: Path, base: str) -> list[str]:
    from benchmark.reader_study.answers import progress
    from benchmark.reader_study.db import connect, read_meta, study_file

    con = connect(study_file(folder))
    try:
        lines = [f"{r['name']}: {base}/read/{r['token']}" for r in progress(con)]
        lines.append(f"organiser: {base}/admin/{read_meta(con)['admin_token']}")
    finally:
        con.close()
    return lines


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from benchmark.reader_study.server import create_app

    if not 0 < args.port < 65536:
        raise BenchmarkError(f"--port {args.port}: give a port from 1 to 65535")
    app = create_app(args.study)
    with socket.socket() as probe:
        if probe.connect_ex((args.host if args.host != "0.0.0.0" else "127.0.0.1", args.port)) == 0:
            raise BenchmarkError(f"--port {args.port}: something already listens there; pick another port")
    host = {"127.0.0.1": "localhost", "0.0.0.0": socket.gethostname()}.get(args.host, args.host)
    for line in _links(args.study, f"http://{host}:{args.port}"):
        print(line, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, access_log=False, log_level="warning")
    return 0


def _report(args: argparse.Namespace) -> int:
    from benchmark.reader_study.report import write_report

    path = write_report(args.study, args.out, args.leaderboard, args.covariance)
    print(f"report written: {path}")
    return 0


def run_command(args: argparse.Namespace) -> int:
    """Run `reader-study <command>`; returns the exit code."""
    return {"create": _create, "serve": _serve, "report": _report}[args.reader_command](args)
