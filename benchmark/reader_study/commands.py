"""`python -m benchmark reader-study create | add-reader | serve | report`: the subcommand group and its handler."""
from __future__ import annotations

import argparse
import socket
from pathlib import Path

from benchmark.errors import BenchmarkError

__all__ = ["add_parser", "run_command"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the `reader-study` command group to the CLI's subparsers."""
    p = sub.add_parser("reader-study", help="a reader study: readers tell real images from the lesion GAN's fakes "
                                            "in a browser; report next to the detector and the attacked model")
    p.set_defaults(handler=run_command)
    rs = p.add_subparsers(dest="reader_command", required=True)
    c = rs.add_parser("create", help="sample test cases of a recorded run and write a study folder")
    c.add_argument("--out", type=Path, default=None, help="new study folder (default: STORE/studies/NAME)")
    c.add_argument("--name", default=None, help="study name (default: RUN-MODEL-DEFENSE-sSEED)")
    c.add_argument("--config", type=Path, default=None, help="config whose store holds the run (default: "
                                                             "configs/default.toml)")
    c.add_argument("--run", default="latest", help="run id, 'latest' or a run folder (default: latest)")
    c.add_argument("--attack", default="gan", help="the attack whose images are read (only gan: whole fakes)")
    c.add_argument("--model", default=None, help="fakes made against this model (default: the run's first)")
    c.add_argument("--defense", default=None, help="fakes made against this defense (default: the run's first)")
    c.add_argument("--cases", type=int, default=60, help="test cases, half positive; each shown once, as its "
                                                          "original or its fake, half and half (default 60)")
    layout = c.add_mutually_exclusive_group()
    layout.add_argument("--pairs", action="store_true", help="show every case twice, as original and as fake, to "
                                                             "every reader (off: never an image and its own fake)")
    layout.add_argument("--counterbalance", action="store_true",
                        help="every other reader sees the other version of each case (readers then read different "
                             "images: per-reader numbers only, no pooled MRMC interval or kappa)")
    c.add_argument("--seed", type=int, default=0, help="seed of the case sample, the fakes shown and the orders")
    c.add_argument("--display-size", type=int, default=512, help="enlarge images to this many pixels on the longer "
                                                                 "side (default 512; 0: as stored)")
    c.add_argument("--base-url", default="http://localhost:8000", help="the server's address as the organiser "
                                                                       "reaches it (for the printed link)")
    c.add_argument("--no-detector", action="store_true", help="skip scoring the images with the real-vs-fake "
                                                              "detector (trained on the run's train split, ~minutes)")
    a = rs.add_parser("add-reader", help="add a reader; prints their personal link (shown once)")
    a.add_argument("name", help="a pseudonym for the reader (1-40 letters, digits, . _ - or spaces)")
    a.add_argument("--study", type=Path, required=True, help="study folder")
    a.add_argument("--base-url", default="http://localhost:8000", help="the server's address as readers reach it "
                                                                       "(default http://localhost:8000)")
    s = rs.add_parser("serve", help="serve the study's reading pages (uvicorn)")
    s.add_argument("--study", type=Path, required=True, help="study folder")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only; "
                                                       "0.0.0.0 for a network)")
    s.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    r = rs.add_parser("report", help="analyse the answers: report.json, report.md, answers.csv, index.html")
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
    from benchmark.reader_study.build import create_study
    from benchmark.reader_study.sources import find_fakes

    config = load_config(args.config)
    run_dir = resolve_run(config.run.store, args.run)
    store = Store(config.run.store)
    source = find_fakes(run_dir, store, args.model, args.defense, args.attack)
    target = source.label.removeprefix("fakes vs ").replace("+", "-")
    out = args.out or Path(config.run.store) / "studies" / (args.name or f"{source.run_id}-{target}-s{args.seed}")
    layout = "pairs" if args.pairs else "counterbalanced" if args.counterbalance else "crossed"
    path, admin = create_study(source, store, out, args.cases, args.seed, config.dataset.name, layout,
                               not args.no_detector, args.display_size)
    shown = "original and fake of each" if args.pairs else "each as its original or its fake"
    print(f"study written: {path} ({args.cases} cases, {shown}, {source.label}, run {source.run_id})")
    print(f"organiser link (shown once, keep it): {args.base_url.rstrip('/')}/admin/{admin}")
    print(f"add readers: python -m benchmark reader-study add-reader NAME --study {out}")
    print(f"serve it: python -m benchmark reader-study serve --study {out}")
    return 0


def _add_reader(args: argparse.Namespace) -> int:
    from benchmark.reader_study.readers import add_reader

    token = add_reader(args.study, args.name)
    print(f"{args.name}: {args.base_url.rstrip('/')}/read/{token}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from benchmark.reader_study.server import create_app

    if not 0 < args.port < 65536:
        raise BenchmarkError(f"--port {args.port}: give a port from 1 to 65535")
    app = create_app(args.study)
    with socket.socket() as probe:
        if probe.connect_ex((args.host if args.host != "0.0.0.0" else "127.0.0.1", args.port)) == 0:
            raise BenchmarkError(f"--port {args.port}: something already listens there; pick another port")
    where = ("this machine only (--host 0.0.0.0 to serve a network)" if args.host in ("127.0.0.1", "localhost", "::1")
             else "reachable from other machines")
    print(f"serving {args.study} on http://{args.host}:{args.port}, bound to {args.host}: {where}", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, access_log=False, log_level="warning")
    return 0


def _report(args: argparse.Namespace) -> int:
    from benchmark.reader_study.report import write_report

    path = write_report(args.study, args.out, args.leaderboard, args.covariance)
    print(f"report written: {path} (and report.md, report.json, answers.csv beside it)")
    return 0


def run_command(args: argparse.Namespace) -> int:
    """Run `reader-study <command>`; returns the exit code."""
    return {"create": _create, "add-reader": _add_reader, "serve": _serve,
            "report": _report}[args.reader_command](args)
