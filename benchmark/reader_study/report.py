"""The study's report: report.json (every number), report.md, answers.csv (every answer, synthetic marked) and
index.html; optionally published next to a leaderboard, whose page then links to it."""
from __future__ import annotations

import json
import shutil
from html import escape
from pathlib import Path

from benchmark.atomic_file import atomic_write
from benchmark.metrics import to_jsonable
from benchmark.reader_study.db import connect, study_file
from benchmark.reader_study.export import answers_csv
from benchmark.reader_study.stats.analysis import analyse

__all__ = ["PUBLISHED", "leaderboard_link", "render_markdown", "render_report", "report_body", "report_tables",
           "write_report"]

PUBLISHED = "reader-study"  # the folder inside a leaderboard folder that holds a published report
FILES = ("report.json", "report.md", "answers.csv", "index.html")

STYLE = ("body{font-family:system-ui,sans-serif;margin:1.5rem auto;max-width:72rem;padding:0 1rem;color:#1d2330}"
         "table{border-collapse:collapse;margin:.5rem 0 1.4rem;font-size:.9rem}td,th{border:1px solid #d5d9e0;"
         "padding:.3rem .6rem;text-align:right}th{background:#eef1f6}td.text,th.text{text-align:left}"
         ".note{color:#555;font-size:.9rem}")
_HEADER = ["who", "accuracy", "sensitivity to fakes", "specificity", "ROC AUC", "fakes that got through",
           "marks inside the edit"]


def _pct(r: dict | None) -> str:
    if not r or r.get("value") is None:
        return "n/a"
    return f"{r['successes']}/{r['n']} = {100 * r['value']:.1f}% [{100 * r['lo']:.1f}, {100 * r['hi']:.1f}]"


def _num(v: float | None, digits: int = 3) -> str:
    """A number, or n/a where there is none (an infinite or undefined value is stored as null)."""
    return "n/a" if v is None else f"{v:.{digits}f}"


def _ci(v: float | None, lo: float | None, hi: float | None) -> str:
    return f"{_num(v)} [{_num(lo)}, {_num(hi)}]"


def report_tables(result: dict) -> dict[str, tuple[list[str], list[list[str]]]]:
    """The report's tables as (header, rows) of text, by table id."""
    rows = []
    for r in result["per_reader"]:
        if "accuracy" in r:
            rows.append([f"{r['name']} ({r['answered']}/{r['total']})", _pct(r["accuracy"]), _pct(r["sensitivity"]),
                         _pct(r["specificity"]), _num(r["auc"]), _pct(r["fakes_passed"]), _pct(r["localisation"])])
        else:
            rows.append([f"{r['name']} (0/{r['total']})"] + ["n/a"] * 6)
    p = result.get("pooled")
    if p:
        o = p["or"]
        rows.append([f"readers pooled ({p['readers']} complete)", _pct(p["accuracy"]), _pct(p["sensitivity"]),
                     _pct(p["specificity"]), _ci(o["modality_auc"][0], o["modality_lo"][0], o["modality_hi"][0]),
                     _pct(p["fakes_passed"]), ""])
    d = result.get("detector")
    if d:
        rows.append(["the benchmark's real-vs-fake detector (P(fake) >= 0.5)", _pct(d["accuracy"]),
                     _pct(d["sensitivity"]), _pct(d["specificity"]), _num(d["auc"]), _pct(d["fakes_passed"]), ""])
    m = result.get("model")
    if m:
        cell = str(result["study"].get("model_cell") or "").removeprefix("score ").replace("@0/255", "")
        rows.append([f"the attacked model ({cell}): fooled by the fakes it read right as originals", "", "", "", "",
                     _pct(m["fooled_by_fakes"]), ""])
    published = result["published_readers"]
    tables = {"per-reader": (_HEADER, rows)}
    tables["published"] = (["reference", "accuracy"], [[
        f"the study's {published['readers']} breast-imaging radiologists (Zhou et al. 2021)",
        f"{100 * published['accuracy_low']:.0f}% to {100 * published['accuracy_high']:.0f}%"]])
    if p:
        o = p["or"]
        tables["pooled"] = (["measure", "value"], [
            ["readers' mean ROC AUC, OR interval (95%)", _ci(o["modality_auc"][0], o["modality_lo"][0],
                                                            o["modality_hi"][0])],
            ["its standard error, Hillis df", f"{_num(o['modality_se'][0], 4)}, {_num(o['modality_df'][0], 2)}"],
            ["Fleiss' kappa of the real/fake call (bootstrap 95%)", _ci(p["kappa"]["value"], p["kappa"]["lo"],
                                                                        p["kappa"]["hi"])]])
    return tables


def _notes(result: dict) -> list[str]:
    s = result["study"]
    detector = s.get("detector") or {}
    out = [f"Data set {s['dataset']}, run {s['run_id']}, {s['fakes']} (synthetic images made by the lesion GAN): "
           f"{s['cases']} cases, {result['items']} images ({result['synthetic_items']} synthetic). Design: "
           f"{s['design']}. {result['answers']} answers from {len(result['per_reader'])} readers.",
           "Accuracy: share of images called right (real or fake). Sensitivity to fakes: share of synthetic images "
           "called fake. Specificity: share of real images called real. Fakes that got through: synthetic images "
           "called real (readers), scored below 0.5 (detector), or that changed the attacked model's decision on a "
           "case whose original it read right (model). All with 95% Wilson intervals.",
           "ROC AUC: from each reader's 10-point rating (real/fake call x confidence 1-5; fake = positive); 0.5 is "
           "chance. The pooled AUC is the readers' mean with the Obuchowski-Rockette interval (random readers and "
           f"cases, Hillis' df, {(result.get('pooled') or {}).get('or', {}).get('covariance', 'jackknife')} "
           "covariances). Marks inside the edit: over synthetic images the reader marked, the mark on a pixel the "
           "GAN moved by more than 0.02."]
    if detector:
        out.append(f"The detector: {detector['model']}, {detector['epochs']} epochs, seed {detector['seed']}, trained "
                   "on the run's train-split real/fake pairs (the `fakes` stage's recipe), applied to these images.")
    if result.get("pooled") is None:
        out.append(f"No pooled analysis yet: {result['reason']}.")
    return out


def _html_table(table_id: str, header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f'<th class="text">{escape(h)}</th>' if k == 0 else f"<th>{escape(h)}</th>"
                   for k, h in enumerate(header))
    body = "".join("<tr>" + "".join(f'<td class="text">{escape(c)}</td>' if k == 0 else f"<td>{escape(c)}</td>"
                                    for k, c in enumerate(row)) + "</tr>" for row in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def report_body(result: dict) -> str:
    """The report as an HTML fragment (also shown on the organiser's page)."""
    tables = report_tables(result)
    notes = _notes(result)
    parts = [f'<p class="note">{escape(notes[0])} <strong>Synthetic images are marked as such in every export.'
             "</strong></p>",
             "<h2>Can readers tell real from synthetic? Humans, the detector and the attacked model on the same "
             "images</h2>", _html_table("per-reader", *tables["per-reader"]), _html_table("published",
                                                                                          *tables["published"])]
    if "pooled" in tables:
        parts += ["<h2>Readers pooled and their agreement</h2>", _html_table("pooled", *tables["pooled"])]
    parts += [f'<p class="note">{escape(n)}</p>' for n in notes[1:]]
    return "\n".join(parts)


def render_report(result: dict) -> str:
    """The report page of analyse()'s result."""
    name = escape(str(result["study"]["name"]))
    return ('<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>Reader study {name}</title><style>{STYLE}</style></head><body>\n"
            f"<h1>Reader study {name}: real versus GAN-made images</h1>\n{report_body(result)}\n</body></html>\n")


def render_markdown(result: dict) -> str:
    """The report as Markdown."""
    tables = report_tables(result)
    notes = _notes(result)
    lines = [f"# Reader study {result['study']['name']}: real versus GAN-made images", "", notes[0],
             "Synthetic images are marked as such in every export.", ""]
    for table_id, title in (("per-reader", "Humans, the detector and the attacked model on the same images"),
                            ("published", "The study's readers"), ("pooled", "Readers pooled and their agreement")):
        if table_id not in tables:
            continue
        header, rows = tables[table_id]
        lines += [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in rows]
        lines.append("")
    return "\n".join(lines + [n + "\n" for n in notes[1:]])


def write_report(study: Path, out: Path | None = None, leaderboard: Path | None = None,
                 covariance: str = "jackknife") -> Path:
    """Write report.json, report.md, answers.csv and index.html of the study to out (default: study/report); with
    leaderboard, also copy them to leaderboard/reader-study/, which the leaderboard page links to."""
    con = connect(study_file(study))
    try:
        result = to_jsonable(analyse(con, covariance))
        csv_text = answers_csv(con)
    finally:
        con.close()
    out = Path(out) if out else Path(study) / "report"
    out.mkdir(parents=True, exist_ok=True)
    texts = {"report.json": json.dumps(result, indent=1), "report.md": render_markdown(result),
             "answers.csv": csv_text, "index.html": render_report(result)}
    for name, text in texts.items():
        atomic_write(out / name, lambda fh, text=text: fh.write(text.encode()))
    if leaderboard is not None:
        target = Path(leaderboard) / PUBLISHED
        target.mkdir(parents=True, exist_ok=True)
        for name in FILES:
            shutil.copyfile(out / name, target / name)
    return out / "index.html"


def leaderboard_link(folder: Path) -> str:
    """A paragraph linking a leaderboard page to its published reader study, or "" when it has none. folder is
    where the page is rendered: the leaderboard folder itself or its staging sibling '.<name>.tmp-<ns>'."""
    folder = Path(folder)
    if folder.name.startswith(".") and ".tmp-" in folder.name:
        folder = folder.parent / folder.name[1:].split(".tmp-")[0]
    if not (folder / PUBLISHED / "index.html").is_file():
        return ""
    return (f'<p class="note" id="reader-study"><a href="{PUBLISHED}/index.html">Reader study</a>: readers telling '
            "these images from the lesion GAN's synthetic versions, next to the detector and the attacked model "
            "(MRMC analysis).</p>")
