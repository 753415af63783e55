"""index.html: one static page (no server, no network) with sortable tables, the plots and the galleries."""
from __future__ import annotations

from html import escape
from pathlib import Path

from benchmark.leaderboard.checks import clean_balanced_accuracy
from benchmark.leaderboard.entry import (
    BOARD_TITLES,
    STUDY,
    STUDY_VIEWS,
    cell_columns,
    fmt_auc,
    fmt_count,
    fmt_pct,
    standing,
)
from benchmark.leaderboard.seed_spread import seed_table_html
from benchmark.reader_study.report import leaderboard_link

__all__ = ["render_html"]

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5rem auto;max-width:1400px;padding:0 1rem;
color:#1d2330}
h1{margin-bottom:.2rem}.note{color:#555;font-size:.9rem;max-width:70rem}
table{border-collapse:collapse;margin:.6rem 0 1.6rem;font-size:.85rem}
th,td{border:1px solid #d5d9e0;padding:.3rem .5rem;text-align:right;white-space:nowrap}
th{background:#eef1f6;cursor:pointer;user-select:none;position:sticky;top:0}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
td.text,th.text{text-align:left}.scroll{overflow-x:auto;max-width:100%}tr.unreliable td{background:#fff4e0}tr.study td{background:#eef7ee;font-style:italic}
.mark{color:#a0522d;font-weight:bold}figure{display:inline-block;margin:.5rem 1rem 1rem 0;vertical-align:top}
figure img{max-width:100%;border:1px solid #ddd}figcaption{font-size:.85rem;color:#444;max-width:60rem}
"""

_SCRIPT = """
function sortKey(cell){const v=cell.dataset.sort!==undefined?cell.dataset.sort:cell.textContent.trim();
  const n=parseFloat(v);return (v!==''&&!isNaN(n)&&isFinite(v))?n:v.toLowerCase();}
function sortTable(table,col,th){
  const body=table.tBodies[0];const rows=Array.from(body.rows).filter(r=>!r.classList.contains('study'));
  const asc=th.getAttribute('aria-sort')!=='ascending';
  rows.sort((a,b)=>{const x=sortKey(a.cells[col]),y=sortKey(b.cells[col]);
    const xe=(x===''||x==='n/a'),ye=(y===''||y==='n/a');if(xe||ye)return xe-ye;
    if(typeof x===typeof y)return (x<y?-1:x>y?1:0)*(asc?1:-1);return typeof x==='number'?-1:1;});
  rows.forEach(r=>body.appendChild(r));
  table.querySelectorAll('th').forEach(h=>h.removeAttribute('aria-sort'));
  th.setAttribute('aria-sort',asc?'ascending':'descending');}
document.querySelectorAll('table.sortable').forEach(t=>{
  t.querySelectorAll('thead th').forEach((th,i)=>th.addEventListener('click',()=>sortTable(t,i,th)));});
"""

_MARKS = {"adaptive white-box (BPDA/EOT)": "†", "transfer": "T", "black-box": "B"}


def _td(text: str, sort: object = None, cls: str = "") -> str:
    attr = "" if sort is None else f' data-sort="{escape(str(sort))}"'
    klass = f' class="{cls}"' if cls else ""
    return f"<td{klass}{attr}>{escape(text)}</td>"


def _value(r: dict | None) -> object:
    return "" if not r or r.get("value") is None else r["value"]


def _board(board: str, entries: list[dict]) -> str:
    columns = cell_columns(entries)
    head = [("#", ""), ("model", "text"), ("defense", "text"), ("robust balanced acc %", ""),
            ("worst-case robust acc %", ""), ("clean acc %", ""), ("clean balanced acc %", ""), ("AUC", "")]
    head += [(c, "") for c, _, _ in columns] + [("train s", ""), ("attack s", ""), ("standing", "text")]
    rows = []
    for e in entries:
        by_cell = {a["cell"]: a for a in e["attacks"]}
        rank, bal = e.get("rank"), clean_balanced_accuracy(e["clean"])
        cells = [_td("-" if rank is None else str(rank), 10_000 if rank is None else rank),
                 _td(e["model"], cls="text"), _td(e["defense"] + (" ⚠" if e["unreliable"] else ""), cls="text"),
                 _td(fmt_pct(e.get("robust_balanced_accuracy")), _value(e.get("robust_balanced_accuracy"))),
                 _td(fmt_pct(e["worst_case_robust_accuracy"]), _value(e["worst_case_robust_accuracy"])),
                 _td(fmt_pct(e["clean"]["accuracy"]), _value(e["clean"]["accuracy"])),
                 _td(fmt_pct(bal), _value(bal)), _td(fmt_auc(e["clean"]["auc"]), _value(e["clean"]["auc"]))]
        for c, _, _ in columns:
            a = by_cell.get(c)
            r = a["attack_outcome"]["robust_accuracy"] if a else None
            cells.append(_td(fmt_pct(r) + _MARKS.get(a["evaluation"], "") if a else "", _value(r)))
        cost = e.get("cost") or {}
        cells += [_td(f"{e.get('train_seconds') or 0:.0f}", e.get("train_seconds") or 0),
                  _td(f"{cost.get('attack_seconds') or 0:.0f}", cost.get("attack_seconds") or 0),
                  _td(standing(e), cls="text standing")]
        title = f' title="{escape(e["unreliable_reason"])}"' if e["unreliable"] else ""
        rows.append(f'<tr class="{"unreliable" if e["unreliable"] else ""}"{title}>{"".join(cells)}</tr>')
    ths = "".join(f'<th class="{cls}">{escape(h)}</th>' for h, cls in head)
    return (f'<h2 id="{board}">{escape(BOARD_TITLES[board])}</h2>\n<div class="scroll"><table class="sortable" '
            f'id="board-{board}"><thead><tr>{ths}</tr></thead><tbody>\n' + "\n".join(rows) + "\n</tbody></table></div>")


def _gan(entries: list[dict]) -> str:
    head = ["model", "defense", "attack", "positives made negative", "negatives made positive",
            "class-balanced fooled %", "at the study's mix %", "pooled here", "at argmax: balanced %",
            "at argmax: study's mix %", "fooled, not flagged", "SSIM (breast)", "PSNR dB (breast)",
            "pixels changed / breast pixels %", "real-vs-fake detector AUC"]
    study = ('<tr class="study">' + _td("Zhou et al. 2021 (VGG-11, real mammograms)", cls="text") + _td("-", cls="text")
             + _td("GAN", cls="text") + "".join(_td(fmt_count(STUDY[k]), STUDY[k]["value"])
                                               for k in ("pos_to_neg", "neg_to_pos"))
             + _td(fmt_pct(STUDY_VIEWS["balanced"]), STUDY_VIEWS["balanced"]["value"])
             + _td(fmt_pct(STUDY_VIEWS["study_mix"]), STUDY_VIEWS["study_mix"]["value"])
             + _td(fmt_count(STUDY["overall"]), STUDY["overall"]["value"])
             + _td(fmt_pct(STUDY_VIEWS["balanced"]), STUDY_VIEWS["balanced"]["value"])
             + _td(fmt_pct(STUDY_VIEWS["study_mix"]), STUDY_VIEWS["study_mix"]["value"])
             + _td("") + _td("") + _td("") + _td("") + _td("radiologists 29-71% accuracy", cls="text") + "</tr>")
    rows = [study]
    for e in entries:
        for g in e.get("gan", []):
            area, argmax = g.get("area_changed"), g.get("argmax") or {}
            rows.append("<tr>" + _td(e["model"], cls="text") + _td(e["defense"], cls="text")
                        + _td(f"{g['attack']} ({g['evaluation']})", cls="text")
                        + "".join(_td(fmt_count(g[k]), _value(g[k])) for k in ("pos_to_neg", "neg_to_pos"))
                        + "".join(_td(fmt_pct(g.get(k)), _value(g.get(k))) for k in ("balanced", "study_mix"))
                        + _td(fmt_count(g["overall"]), _value(g["overall"]))
                        + "".join(_td(fmt_pct(argmax.get(k)), _value(argmax.get(k)))
                                  for k in ("balanced", "study_mix"))
                        + (_td(fmt_count(g["fooled_undetected"]), _value(g["fooled_undetected"]))
                           if g.get("fooled_undetected") else _td(""))
                        + _td("n/a" if g.get("ssim") is None else f"{g['ssim']:.3f}", g.get("ssim") or "")
                        + _td("n/a" if g.get("psnr") is None else f"{g['psnr']:.1f}", g.get("psnr") or "")
                        + _td("n/a" if area is None else f"{100 * area:.1f}", area if area is not None else "")
                        + _td(fmt_auc(g.get("detector_auc")), _value(g.get("detector_auc"))) + "</tr>")
    ths = "".join(f'<th class="{"text" if i < 3 else ""}">{escape(h)}</th>' for i, h in enumerate(head))
    detecting = [e for e in entries if e.get("detection")]
    detection = "" if not detecting else (
        '<p class="note">Detecting defenses (a "manipulated" head): transfer fakes of the test split flagged, real '
        'test images flagged (the head\'s threshold is set on real validation images at a stated false-alarm rate), '
        'and the head\'s AUC between them. "Fooled, not flagged" counts an attacked image only '
        'if its class flipped and the head stayed silent.</p><table class="sortable" id="detection-table"><thead><tr>'
        '<th class="text">model</th><th class="text">defense</th><th>fakes detected</th>'
        '<th>false alarms on real images</th><th>head AUC</th></tr></thead>'
        "<tbody>" + "".join("<tr>" + _td(e["model"], cls="text") + _td(e["defense"], cls="text")
                            + "".join(_td(fmt_count(e["detection"].get(k)), _value(e["detection"].get(k)))
                                      for k in ("detection_rate", "false_alarm_rate"))
                            + _td(fmt_auc(e["detection"].get("auc")), _value(e["detection"].get("auc"))) + "</tr>"
                            for e in detecting) + "</tbody></table>")
    return ('<h2 id="gan">GAN attack: the study\'s table</h2><p class="note">Fooled counts over correctly classified '
            "originals per direction with 95% Wilson intervals; the overall fooled rate class-balanced and "
            "re-weighted to the study's 44 positives and 319 negatives (MOVER intervals), at the entry's operating "
            "point and at argmax (the study's); visibility of the edits inside the breast; a real-vs-fake detector's "
            "test AUC (interval bootstrapped over image pairs).</p>"
            f'<div class="scroll"><table class="sortable" id="gan-table"><thead><tr>{ths}</tr></thead><tbody>\n'
            + "\n".join(rows) + "\n</tbody></table></div>" + seed_table_html(entries) + detection)


def _figure(src: str, caption: str, alt: str) -> str:
    return (f'<figure><img src="{escape(src)}" alt="{escape(alt)}" loading="eager">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def _frontier(frontier: str) -> str:
    folder = frontier.rsplit("/", 1)[0]
    return ('<h2 id="frontier">Fooled against visible: the frontier</h2><p class="note">The white-box lesion GAN '
            "over a grid of classifier_weight x fidelity_weight: fooled rate per direction against how visible the "
            "edits are (real-vs-fake detector AUC, 1 - SSIM inside the breast), one curve per (model, defense), the "
            "board's own point ringed, the study's rates and the radiologists' 29-71% marked. Where a defense moves "
            f'the curve, that is its effect. The numbers: <a href="{escape(folder)}/frontier.md">frontier.md</a>.</p>'
            + _figure(frontier, "Lesion GAN frontier: fooled rate vs visibility", "lesion GAN frontier"))


def render_html(boards: dict[str, list[dict]], dataset: str, plots: list[dict], folder: Path,
                frontier: str | None = None) -> str:
    """The page for a leaderboard folder; only gallery files present under folder are shown, and the frontier plot
    (`frontier`, a path relative to the page) when `python -m benchmark frontier` has drawn one."""
    overall = boards.get("overall", [])
    commit = overall[0].get("git_commit") if overall else None
    parts = [f"<h1>Leaderboard: {escape(dataset)}</h1>",
             f'<p class="note" id="produced-at">Produced at commit {escape(str(commit))}.</p>',
             ('<p class="note">Ranked by robust balanced accuracy (mean of robust sensitivity and robust specificity; '
             "a constant classifier scores 50%), per image worst case over the board's attacks, in percent with 95% "
             "intervals. Operating point: each entry is scored at its validation threshold, and every attack aims at "
             "that threshold. Click a column to sort. Marks: † adaptive white-box (BPDA/EOT), T transfer, "
             "B black-box. Rows shaded orange and numbered - are listed, not ranked: their verdict cannot be trusted "
             "(the reason is in the last column; every check is explained in docs/checks.md).</p>")]
    if link := leaderboard_link(folder):  # a reader study published in this leaderboard folder
        parts.insert(2, link)
    if overall:
        e = overall[0]
        parts.append(f'<p class="note">Config {escape(str(e.get("config_digest")))}, seed {e.get("seed")}, commit '
                     f'{escape(str(e.get("git_commit")))}, {escape(str(e.get("date")))}, device '
                     f'{escape(str(e.get("device")))}.</p>')
    parts += [_board(b, boards[b]) for b in BOARD_TITLES if boards.get(b)]
    if any(e.get("gan") for e in overall):
        parts.append(_gan(overall))
    checks = [f"<li>{escape(e['model'])} + {escape(e['defense'])}: "
              + ("; ".join(f"{escape(c['check'])} ({'mark' if c.get('effect') == 'mark' else 'demotes'}): "
                           f"{escape(c['reason'])}" for c in e.get("masking_checks", []) if c["tripped"])
                 or "no check tripped") + "</li>" for e in overall]
    parts.append('<h2 id="checks">Checks</h2><ul>' + "".join(checks) + "</ul>")
    if plots:
        parts.append('<h2 id="plots">Plots</h2>' + "".join(_figure(p["file"], p["title"], p["title"]) for p in plots))
    if frontier:
        parts.append(_frontier(frontier))
    shown = [(g, e) for e in overall for g in e.get("galleries", []) if (Path(folder) / g["file"]).is_file()]
    if shown:
        parts.append('<h2 id="gallery">Gallery</h2><p class="note">Columns: examples; rows: original, '
                     "adversarial (or GAN fake), difference; P(positive) before and after in the titles.</p>"
                     + "".join(_figure(g["file"], g["title"], g["title"]) for g, _ in shown))
    return ('<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>Leaderboard: {escape(dataset)}</title><style>{_STYLE}</style></head><body>\n"
            + "\n".join(parts) + f"\n<script>{_SCRIPT}</script>\n</body></html>\n")
