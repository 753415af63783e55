"""The study's report: report.json (every number), answers.csv (every answer, synthetic marked) and index.html;
optionally published next to a leaderboard, whose page then links to it."""
from __future__ import annotations

import json
import shutil
from html import escape
from pathlib import Path

from benchmark.atomic_file import atomic_write
from benchmark.metrics import to_jsonable
from benchmark.reader_study.analysis import analyse
from benchmark.reader_study.db import connect, study_file
from benchmark.reader_study.export import answers_csv

__all__ = ["PUBLISHED", "leaderboard_link", "render_report", "write_report"]

PUBLISHED = "reader-study"  # the folder inside a leaderboard folder that holds a published report

_STYLE = ("body{font-family:system-ui,sans-serif;margin:1.5rem auto;max-width:70rem;padding:0 1rem;color:#1d2330}"
          "table{border-collapse:collapse;margin:.5rem 0 1.4rem;font-size:.9rem}td,th{border:1px solid #d5d9e0;"
          "padding:.3rem .6rem;text-align:right}th{background:#eef1f6}td.text,th.text{text-align:left}"
          ".note{color:#555;font-size:.9rem}")


def _pct(r: dict) -> str:
    if r.get("value") is None:
        return "n/a"
    return f"{r['successes']}/{r['n']} = {100 * r['value']:.1f}% [{100 * r['lo']:.1f}, {100 * r['hi']:.1f}]"


def _num(v: float | None, digits: int = 3) -> str:
    """A number, or n/a where there is none (an infinite or undefined value is stored as null)."""
    return "n/a" if v is None else f"{v:.{digits}f}"


def _ci(v: float | None, lo: float | None, hi: float | None) -> str:
    return f"{_num(v)} [{_num(lo)}, {_num(hi)}]"


def _rows(header: list[str], rows: list[list[str]], table_id: str) -> str:
    head = "".join(f'<th class="text">{escape(h)}</th>' if k == 0 else f"<th>{escape(h)}</th>"
                   for k, h in enumerate(header))
    body = "".join("<tr>" + "".join(f'<td class="text">{escape(c)}</td>' if k == 0 else f"<td>{escape(c)}</td>"
                                    for k, c in enumerate(row)) + "</tr>" for row in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def render_report(result: dict) -> str:
    """The report page of analyse()'s result."""
    s = result["study"]
    parts = [f"<h1>Reader study {escape(str(s['name']))}</h1>",
             f'<p class="note">Data set {escape(str(s["dataset"]))}, run {escape(str(s["run_id"]))}, '
             f'{escape(str(s["fakes"]))} (synthetic images made by the lesion GAN), {s["cases"]} cases, each read as '
             f"the original and as its synthetic version: {result['items']} images. Design: {escape(str(s['design']))}."
             f" {result['answers']} answers from {len(result['readers'])} readers, {result['complete_readers']} "
             "complete.</p>",
             _rows(["reader", "answered"], [[r["name"], f"{r['answered']} / {r['total']}"]
                                            for r in result["readers"]], "progress")]
    a = result.get("analysis")
    if a is None:
        parts.append(f'<p id="no-analysis">No analysis yet: {escape(result["reason"])}.</p>')
    else:
        d, c = a["real_vs_fake"], a["cancer_reading"]
        o = d["or"]
        parts.append("<h2>Can readers tell real from synthetic?</h2>"
                     '<p class="note">Readers\' AUC for "manipulated" (synthetic = positive), averaged over readers, '
                     "with the Obuchowski-Rockette interval (random readers and cases, Hillis' degrees of freedom, "
                     f"{o['covariance']} covariances; an original and its synthetic version count as two cases); "
                     "0.5 is chance. Accuracy of the real/manipulated call per reader (the study of Zhou et al. 2021: "
                     "five radiologists, 29% to 71%).</p>")
        parts.append(_rows(["measure", "value"], [
            ["AUC (readers pooled)", _ci(o["modality_auc"][0], o["modality_lo"][0], o["modality_hi"][0])],
            ["accuracy (pooled)", _pct(d["pooled_accuracy"])],
            ["Fleiss' kappa of the call", _ci(d["kappa"]["value"], d["kappa"]["lo"], d["kappa"]["hi"])]],
            "real-vs-fake"))
        r, f = c["or"], a["fooled"]["overall"]
        parts.append(_rows(["reader", "real vs synthetic: AUC", "accuracy", "cancer AUC: original", "synthetic",
                            "fooled"],
                           [[x["reader"], _num(v), _pct(x), _num(r["auc"][0][k]), _num(r["auc"][1][k]),
                             f"{f['per_reader'][k]}/{f['per_reader_n'][k]}"]
                            for k, (x, v) in enumerate(zip(d["accuracy"], o["auc"][0]))], "per-reader"))
        parts.append("<h2>Do the synthetic images change the cancer reading?</h2>"
                     '<p class="note">Readers\' cancer AUC against each case\'s true label (before manipulation), on '
                     "the originals and on the synthetic versions of the same cases; the difference with its "
                     "Obuchowski-Rockette test. A synthetic AUC below the original's means the GAN misleads "
                     "readers.</p>")
        parts.append(_rows(["", "original", "synthetic", "original - synthetic"], [
            ["AUC", _ci(r["modality_auc"][0], r["modality_lo"][0], r["modality_hi"][0]),
             _ci(r["modality_auc"][1], r["modality_lo"][1], r["modality_hi"][1]),
             f"{_ci(r['diff'], r['diff_lo'], r['diff_hi'])}, F({_num(r['ndf'], 0)}, {_num(r['ddf'], 1)}) = "
             f"{_num(r['f'], 2)}, p = {_num(r['p'], 4)}"],
            ["cancer called on positive cases", _pct(c["sensitivity"]["original"]),
             _pct(c["sensitivity"]["synthetic"]), ""],
            ["Fleiss' kappa of the cancer call", _ci(c["kappa_original"]["value"], c["kappa_original"]["lo"],
                                                     c["kappa_original"]["hi"]),
             _ci(c["kappa_synthetic"]["value"], c["kappa_synthetic"]["lo"], c["kappa_synthetic"]["hi"]), ""]],
            "cancer-reading"))
        f = a["fooled"]
        parts.append("<h2>How often are readers fooled?</h2>"
                     '<p class="note">The study\'s measure for readers: over (reader, case) pairs whose original the '
                     "reader called right, how often the synthetic version was called the other way (Wilson interval; "
                     "pairs of one reader are not independent, so it is narrower than it should be). The attacked "
                     "model on the same cases, the same measure at its operating point, from the run's GAN cell.</p>")
        model = s.get("model_cell")
        cell = str(model).removeprefix("score ").replace("@0/255", "")  # 'gan vs resnet10t+none'
        header = ["direction", "readers"] + ([f"the attacked model ({cell})"] if model else [])
        parts.append(_rows(header, [[label, _pct(f[k])] + ([_pct(f[k]["model"])] if model else [])
                                    for label, k in (("positives made negative", "pos_to_neg"),
                                                     ("negatives made positive", "neg_to_pos"),
                                                     ("overall", "overall"))], "fooled"))
    return ('<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>Reader study {escape(str(s['name']))}</title><style>{_STYLE}</style></head><body>\n"
            + "\n".join(parts) + "\n</body></html>\n")


def write_report(study: Path, out: Path | None = None, leaderboard: Path | None = None,
                 covariance: str = "jackknife") -> Path:
    """Write report.json, answers.csv and index.html of the study to out (default: study/report); with
    leaderboard, also copy them to leaderboard/reader-study/, which the leaderboard page links to."""
    con = connect(study_file(study))
    try:
        result = to_jsonable(analyse(con, covariance))
        csv_text = answers_csv(con)
    finally:
        con.close()
    out = Path(out) if out else Path(study) / "report"
    out.mkdir(parents=True, exist_ok=True)
    for name, text in (("report.json", json.dumps(result, indent=1)), ("answers.csv", csv_text),
                       ("index.html", render_report(result))):
        atomic_write(out / name, lambda fh, text=text: fh.write(text.encode()))
    if leaderboard is not None:
        target = Path(leaderboard) / PUBLISHED
        target.mkdir(parents=True, exist_ok=True)
        for name in ("report.json", "answers.csv", "index.html"):
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
    return (f'<p class="note" id="reader-study"><a href="{PUBLISHED}/index.html">Reader study</a>: radiologists '
            "reading these images and the lesion GAN's synthetic versions (MRMC analysis).</p>")
