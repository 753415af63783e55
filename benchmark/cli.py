"""Command line: run, list, show. User errors print one line and exit 2; failed cells exit 1."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmark.config import budget_label, load_config
from benchmark.errors import BenchmarkError
from benchmark.registry import KINDS, list_entries

__all__ = ["main"]

_console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)  # logs: no truncation


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmark",
                                description="Robustness benchmark for mammography AI: model x defense x attack.")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run a matrix (default) or one cell; cached stages are not recomputed")
    r.add_argument("--matrix", action="store_true", help="run every cell of the config (the default)")
    r.add_argument("--config", type=Path, default=None, help="matrix config TOML (default: configs/default.toml)")
    r.add_argument("--model", help="run one cell: this model (with --attack and --defense)")
    r.add_argument("--defense", help="run one cell: this defense")
    r.add_argument("--attack", help="run one cell: this attack")
    r.add_argument("--force", action="append", default=[], metavar="STAGE",
                   help="recompute this stage kind and what depends on it (data, train, attack, score)")
    r.add_argument("--device", choices=("auto", "cpu", "cuda"), help="override run.device")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    r.add_argument("--skip-bad", action=argparse.BooleanOptionalAction, default=None,
                   help="skip and list unreadable image files (default), or stop at the first (override "
                        "dataset.skip_bad)")
    lst = sub.add_parser("list", help="registered models, attacks, defenses and data sets")
    lst.add_argument("kind", nargs="?", choices=KINDS, help="only this kind")
    s = sub.add_parser("show", help="print a recorded run's results")
    s.add_argument("run", nargs="?", default="latest", help="run id, 'latest' or a run folder")
    s.add_argument("--config", type=Path, default=None, help="config whose store holds the run")
    return p


def _cmd_list(kind: str | None) -> int:
    for k in [kind] if kind else KINDS:
        table = Table(title=k, title_justify="left", show_lines=False)
        for col in ("name", "description", "registered from"):
            table.add_column(col)
        for e in list_entries(k):
            table.add_row(e.name, e.doc, e.source)
        _console.print(table)
    return 0


def _results_table(table: "object", title: str) -> Table:
    out = Table(title=title, title_justify="left")
    cols = [("model", "model"), ("defense", "defense"), ("attack", "attack"), ("budget", "budget"),
            ("clean_accuracy", "clean acc"), ("clean_auc", "AUC"),
            ("attack_outcome_robust_accuracy", "robust acc"), ("attack_outcome_pos_to_neg", "pos->neg"),
            ("attack_outcome_neg_to_pos", "neg->pos"), ("images_per_s", "img/s")]
    cols = [(c, h) for c, h in cols if c in getattr(table, "columns", [])]
    for _, head in cols:
        out.add_column(head, justify="right" if head not in ("model", "defense", "attack") else "left")
    for _, r in table.iterrows():
        cells = []
        for col, _ in cols:
            v = r[col]
            if col == "budget":
                cells.append(budget_label(float(v)))
            elif isinstance(v, float):
                cells.append(f"{v:.3f}")
            else:
                cells.append(str(v))
        out.add_row(*cells)
    return out


def _cmd_run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from benchmark.runner import run

    config = load_config(args.config)
    single = any((args.model, args.defense, args.attack))
    if single:
        config = config.with_cell(args.model, args.defense, args.attack)
    if args.device:
        config = replace(config, run=replace(config.run, device=args.device))
    if args.skip_bad is not None:
        config = replace(config, dataset=replace(config.dataset, skip_bad=args.skip_bad))
    result = run(config, tuple(args.force), progress=not args.no_progress, leaderboard=not single)
    summary = Table(title="summary", title_justify="left")
    for col in ("stage", "done", "cached", "failed", "skipped", "seconds"):
        summary.add_column(col, justify="left" if col == "stage" else "right")
    for kind in ("data", "train", "attack", "score"):
        mine = [o for o in result.outcomes.values() if o.kind == kind]
        summary.add_row(kind, *[str(sum(o.status == s for o in mine)) for s in ("done", "cached", "failed",
                                                                                "skipped")],
                        f"{sum(o.seconds for o in mine):.1f}")
    _console.print(summary)
    if not result.table.empty:
        _console.print(_results_table(result.table, f"results ({len(result.table)} cells)"))
    for o in result.failed:
        _console.print(f"[red]{o.status}[/red] {o.label}: {o.error}")
    _console.print(f"run record: {result.run_dir}  ({result.seconds:.1f} s)")
    if result.leaderboard:
        _console.print(f"leaderboard written to {result.leaderboard}")
    elif single:
        _console.print("single cell: leaderboards are left as they are (run --matrix to update them)")
    return 1 if result.failed else 0


def _cmd_show(args: argparse.Namespace) -> int:
    from benchmark.results import read_run, resolve_run

    config = load_config(args.config)
    manifest, table = read_run(resolve_run(config.run.store, args.run))
    _console.print(f"run {manifest['run_id']}: config {manifest['config_source']} ({manifest['config_digest']}), "
                   f"seed {manifest['seed']}, device {manifest['device']}, commit {manifest['git_commit']}, "
                   f"{manifest['seconds']:.1f} s, stages {manifest['counts']}")
    if not table.empty:
        _console.print(_results_table(table, f"results ({len(table)} cells)"))
    for stage in manifest["stages"]:
        if stage["status"] in ("failed", "skipped"):
            _console.print(f"{stage['status']} {stage['label']}: {stage['error']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m benchmark`; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "list":
            return _cmd_list(args.kind)
        if args.command == "run":
            return _cmd_run(args)
        return _cmd_show(args)
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished stages are stored; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
