"""Command line: run, list, show, leaderboard, check, frontier. User errors print one line and exit 2; failed cells and
robustness regressions exit 1."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from benchmark.config import budget_label, load_config
from benchmark.errors import BenchmarkError
from benchmark.reader_study.commands import add_parser as add_reader_study_parser
from benchmark.registry import KINDS, list_components

__all__ = ["CI_CONFIG", "main"]

CI_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "ci.toml"

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
    r.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="run stages in this process (default) or as Ray tasks (pip install '.[ray]')")
    r.add_argument("--workers", type=int, default=None, metavar="N",
                   help="with --backend local: stages computed at once, each in a worker process with one torch "
                        "thread (default: $BENCHMARK_WORKERS, else the number of CPUs; 1 on CUDA)")
    r.add_argument("--address", default=None, help="with --backend ray: join this cluster ('auto' or host:port); "
                                                    "default: start a local Ray instance")
    r.add_argument("--ray-workers", type=int, default=None, metavar="N",
                   help="with --backend ray and no --address: CPUs of the local instance (default: all)")
    r.add_argument("--cpus-per-task", type=int, default=1, metavar="N",
                   help="with --backend ray: CPUs (and torch threads) of each stage's task (default 1)")
    r.add_argument("--skip-bad", action=argparse.BooleanOptionalAction, default=None,
                   help="skip and list unreadable image files (default), or stop at the first (override "
                        "dataset.skip_bad)")
    lst = sub.add_parser("list", help="registered models, attacks, defenses and data sets")
    lst.add_argument("kind", nargs="?", choices=KINDS, help="only this kind")
    lst.add_argument("name", nargs="?", help="one entry of that kind: show its card (doc, source, declarations, "
                                             "options table)")
    s = sub.add_parser("show", help="print a recorded run's results")
    s.add_argument("run", nargs="?", default="latest", help="run id, 'latest' or a run folder")
    s.add_argument("--config", type=Path, default=None, help="config whose store holds the run")
    lb = sub.add_parser("leaderboard", help="rewrite a config's leaderboards from its latest recorded run "
                                            "(nothing is recomputed)")
    lb.add_argument("--config", type=Path, default=None, help="config whose store and leaderboards to use")
    lb.add_argument("--run", default=None, help="run id, 'latest' or a run folder (default: the newest run of "
                                                "this config)")
    lb.add_argument("--from-entries", action="store_true",
                    help="re-render the views (Markdown, CSV, HTML, plots) from the JSON entries alone")
    fr = sub.add_parser("frontier", help="the lesion GAN's frontier: fooled rate per direction vs visibility (detector "
                                         "AUC, 1 - SSIM) over a grid of classifier_weight x fidelity_weight")
    fr.add_argument("--config", type=Path, default=None, help="base config (default: configs/default.toml); its "
                                                              "store is shared, so cached stages are reused")
    fr.add_argument("--classifier-weight", type=float, nargs="+", default=None, metavar="W",
                    help="classifier_weight values of the grid (default: 0 1 4 and the config's own)")
    fr.add_argument("--fidelity-weight", type=float, nargs="+", default=None, metavar="F",
                    help="fidelity_weight values of the grid (default: the config's x 1/4, 1 and 4)")
    fr.add_argument("--models", nargs="+", default=None, metavar="M", help="only these models of the config")
    fr.add_argument("--defenses", nargs="+", default=None, metavar="D", help="only these defenses of the config")
    fr.add_argument("--workers", type=int, default=None, metavar="N",
                    help="stages computed at once (as for run --workers)")
    fr.add_argument("--out", type=Path, default=None,
                    help="folder for frontier.json, .md and .png (default: leaderboards/<dataset>/frontier)")
    fr.add_argument("--no-progress", action="store_true", help="no progress bars (one line per grid point stays)")
    ck = sub.add_parser("check", help="CI gate: rerun a pinned small matrix, fail on robustness regressions "
                                      "beyond noise against the committed leaderboard")
    ck.add_argument("--config", type=Path, default=None, help=f"matrix to rerun (default: {CI_CONFIG.name})")
    ck.add_argument("--baseline", "--against", dest="baseline", type=Path, default=None,
                    help="committed leaderboard folder (default: the config's leaderboards/<dataset>)")
    ck.add_argument("--run", default=None, help="compare a finished run (id, 'latest' or folder) instead of "
                                                "rerunning the matrix")
    ck.add_argument("--alpha", type=float, default=0.05, help="family-wise error of the paired tests (Holm)")
    ck.add_argument("--update-baseline", action="store_true",
                    help="accept the rerun: write its leaderboard over the baseline folder")
    ck.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_reader_study_parser(sub)  # sets args.handler
    return p


def _cmd_list(kind: str | None, name: str | None = None) -> int:
    if name is not None:
        return _cmd_card(kind, name)
    for k in [kind] if kind else KINDS:
        table = Table(title=k, title_justify="left", show_lines=False)
        for col in ("name", "description", "registered from"):
            table.add_column(col)
        for e in list_components(k):
            table.add_row(escape(e.name), escape(e.doc), escape(e.source))
        _console.print(table)
    return 0


def _card_facts(entry: object) -> list[tuple[str, str]]:
    """(label, value) lines of an entry's card that matter for its kind."""
    card, kind = entry.card, entry.kind
    if kind == "attacks":
        budgets = ", ".join(str(b) for b in card.budgets) or ("none (semantic)" if card.threat == "semantic"
                                                             else "none: give budgets in the config")
        return [("threat", card.threat), ("access", card.access), ("default budgets", budgets),
                ("needs", ", ".join(sorted(card.needs)) or "nothing")] + \
            ([("budget", "none of its own: its minimal perturbation is projected onto each budget")]
             if card.minimal else [])
    if kind == "defenses":
        return [("differentiable", "yes" if card.differentiable else "no (attacked adaptively: BPDA/EOT)"),
                ("claims", ", ".join(card.claims) or "nothing"), ("needs", ", ".join(sorted(card.needs)) or "nothing")]
    if kind == "models":
        return [("training defaults", ", ".join(f"{k} = {v}" for k, v in card.train.items()) or "none"),
                ("loss recipe", ", ".join(f"{k} = {v}" for k, v in card.recipe.items()) or "default")]
    masks = card.masks
    masks = "not declared" if masks is None else ("yes" if masks else "no") if isinstance(masks, bool) \
        else f"when option {masks[0]} is on (default {masks[1]})"
    return [("lesion masks", masks)]


def _cmd_card(kind: str | None, name: str) -> int:
    """`list KIND NAME`: one entry's card and options table."""
    from benchmark.options import describe_range
    from benchmark.registry import get_component

    if kind is None:
        raise BenchmarkError("list NAME needs the kind first: list KIND NAME (e.g. list attacks pgd-linf)")
    entry = get_component(kind, name)
    _console.print(f"[bold]{escape(entry.name)}[/bold] ({kind[:-1]}): {escape(entry.doc)}")
    for label, value in [("source", entry.source), ("code version", entry.version), *_card_facts(entry)]:
        _console.print(f"  {label}: {escape(str(value))}")
    options = entry.card.options
    if options is None:
        _console.print("  options: not declared (the entry checks its own keyword options)")
        return 0
    if not options:
        _console.print("  options: none")
        return 0
    table = Table(title="options", title_justify="left")
    for col in ("name", "type", "default", "range / choices", "doc"):
        table.add_column(col)
    for key, opt in options.items():
        kind_name = opt.kind.__name__ + (f"[{opt.item.__name__}]" if opt.item is not None else "")
        default = "unset" if opt.default is None else repr(opt.default)
        table.add_row(escape(key), escape(kind_name), escape(default), escape(describe_range(opt)),
                      escape(opt.doc))
    _console.print(table)
    return 0


def _results_table(table: object, title: str) -> Table:
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


def _ray_options(args: argparse.Namespace) -> object | None:
    """RayOptions from the run flags (None for the local backend, which takes no Ray flag)."""
    given = [f for f, v in (("--address", args.address), ("--ray-workers", args.ray_workers),
                            ("--cpus-per-task", args.cpus_per_task != 1)) if v]
    if args.backend != "ray":
        if given:
            raise BenchmarkError(f"{given[0]} needs --backend ray")
        return None
    if args.workers is not None:
        raise BenchmarkError("--workers is for --backend local; with --backend ray, --ray-workers sets the CPUs of "
                             "a local Ray instance")
    if (args.ray_workers is not None and args.ray_workers < 1) or args.cpus_per_task < 1:
        raise BenchmarkError("--ray-workers and --cpus-per-task must be at least 1")
    from benchmark.execution.ray_cluster import RayOptions

    return RayOptions(args.address, args.ray_workers, args.cpus_per_task)


def _cmd_run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from benchmark.execution.matrix import run

    config = load_config(args.config)
    single = any((args.model, args.defense, args.attack))
    if single:
        config = config.with_cell(args.model, args.defense, args.attack)
    if args.device:
        config = replace(config, run=replace(config.run, device=args.device))
    if args.skip_bad is not None:
        config = replace(config, dataset=replace(config.dataset, skip_bad=args.skip_bad))
    result = run(config, tuple(args.force), progress=not args.no_progress, leaderboard=not single,
                 backend=args.backend, ray_options=_ray_options(args), workers=args.workers)
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
    from benchmark.execution.records import read_run, resolve_run

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


def _rerender(folder: Path) -> tuple[Path, int]:
    """Re-render a board folder from its committed entries (checks refreshed); its leaderboard.md and entry count."""
    from benchmark.leaderboard.board import load_entries, refresh_checks, write_leaderboard

    entries = refresh_checks(load_entries(folder))
    return write_leaderboard(folder, entries, entries[0]["dataset"]), len(entries)


def _cmd_leaderboard(args: argparse.Namespace) -> int:
    from benchmark.execution.records import resolve_run
    from benchmark.leaderboard.source import latest_run, publish_run

    config = load_config(args.config)
    folder = config.run.leaderboards / config.dataset.name
    if args.from_entries:
        path, count = _rerender(folder)
        _console.print(f"leaderboard re-rendered from {count} entries: {path}")
        return 0
    run_dir = resolve_run(config.run.store, args.run) if args.run else latest_run(config.run.store, config.digest())
    if run_dir is None:
        raise BenchmarkError(f"no recorded run of {config.source} under {config.run.store}/records; run `python -m "
                             f"benchmark run --config {config.source}` first, or re-render {folder} with "
                             "--from-entries")
    path = publish_run(run_dir, config.run.store, folder)
    if path is None:
        raise BenchmarkError(f"run {run_dir.name} scored no cell; nothing to write")
    _console.print(f"leaderboard written to {path} (from run {run_dir.name}; nothing recomputed)")
    return 0


def _cmd_frontier(args: argparse.Namespace) -> int:
    from benchmark.leaderboard.frontier import run_frontier

    config = load_config(args.config)
    if args.workers is not None and args.workers < 1:
        raise BenchmarkError(f"--workers {args.workers}: must be at least 1")
    out = args.out or config.run.leaderboards / config.dataset.name / "frontier"
    result = run_frontier(config, out, args.classifier_weight, args.fidelity_weight, args.models, args.defenses,
                          args.workers, progress=not args.no_progress)
    for line in result.failed:
        _console.print(f"[red]failed[/red] {escape(line)}")
    _console.print(f"frontier: {len(result.points)} points written to {result.files['md'].parent} "
                   "(frontier.json, frontier.md, frontier.png)")
    board = Path(out).parent
    if (board / "entries").is_dir() and result.points:  # the frontier sits in a board folder: show it on its page
        _rerender(board)
        _console.print(f"frontier plot added to {board / 'index.html'}")
    return 1 if result.failed else 0


def _baseline_folder(path: Path, dataset: str) -> Path:
    """A data set's leaderboard folder: path itself when it holds entries/ or is named so, else path/<dataset>."""
    return path if (path / "entries").is_dir() or path.name == dataset else path / dataset


def _cmd_check(args: argparse.Namespace) -> int:
    from benchmark.execution.matrix import run
    from benchmark.execution.records import resolve_run
    from benchmark.leaderboard.board import load_entries
    from benchmark.leaderboard.gate import compare
    from benchmark.leaderboard.source import load_run

    config = load_config(args.config or CI_CONFIG)
    folder = _baseline_folder(args.baseline or config.run.leaderboards, config.dataset.name)
    if not (folder / "entries").is_dir() and not args.update_baseline:
        raise BenchmarkError(f"no baseline entries under {folder}/entries; pass --against DIR, or create it with "
                             "--update-baseline")
    baseline = load_entries(folder) if (folder / "entries").is_dir() else []
    if args.run:
        run_dir = resolve_run(config.run.store, args.run)
    else:
        result = run(config, progress=not args.no_progress, leaderboard=False)
        run_dir = result.run_dir
        for o in result.failed:
            _console.print(f"[red]{o.status}[/red] {o.label}: {o.error}")
    source = load_run(run_dir, config.run.store)
    current = source.entries()
    comparisons = compare(baseline, current, args.alpha)
    table = Table(title=f"check: run {run_dir.name} against {folder}", title_justify="left")
    for col in ("entry", "score", "baseline", "now", "test", "status"):
        table.add_column(col)
    colours = {"regressed": "red", "missing": "red", "improved": "green", "new": "cyan"}
    for c in comparisons:
        status = f"[{colours[c.status]}]{c.status}[/]" if c.status in colours else c.status
        table.add_row(c.entry, c.score, c.baseline, c.now, c.test, status)
    _console.print(table)
    counts = {s: sum(c.status == s for c in comparisons) for s in ("regressed", "missing", "improved", "noise",
                                                                    "same", "new")}
    _console.print("check: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + f" ({len(comparisons)} scores)")
    failures = [c for c in comparisons if c.failed]
    if args.update_baseline:
        path = source.write(current, folder)
        _console.print(f"baseline updated: {path}" + (f" ({len(failures)} regressions accepted)" if failures else ""))
        return 0
    for c in failures:
        print(c.line())
    if counts["improved"]:
        _console.print("improvements found: accept them with --update-baseline")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m benchmark`; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        if getattr(args, "handler", None):
            return args.handler(args)
        if args.command == "list":
            return _cmd_list(args.kind, args.name)
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "leaderboard":
            return _cmd_leaderboard(args)
        if args.command == "check":
            return _cmd_check(args)
        if args.command == "frontier":
            return _cmd_frontier(args)
        return _cmd_show(args)
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished stages are stored; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
