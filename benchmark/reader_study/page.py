"""HTML of the server's pages: the reading page (one image at a time, real or fake with a confidence 1-5) and the
organiser's page (progress, results, exports; synthetic images marked)."""
from __future__ import annotations

from html import escape

from benchmark.reader_study.report import STYLE, report_body
from benchmark.reader_study.viewer_js import SCRIPT

__all__ = ["admin_page", "reading_page", "welcome_page"]

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#111;color:#eee}
main{display:flex;gap:1.6rem;padding:1rem 1.2rem;align-items:flex-start}
#view{background:#000;display:block;width:min(80vh,760px);height:min(80vh,760px);cursor:crosshair}
aside{max-width:25rem}h1{font-size:1.1rem;margin:.2rem 0 .6rem}.q{margin:0 0 1rem}.q p{margin:.2rem 0 .4rem}
button{font:inherit;padding:.4rem .8rem;margin:0 .3rem .3rem 0;border:1px solid #777;border-radius:4px;
background:#2a2d33;color:#eee;cursor:pointer}button[aria-pressed=true]{background:#2f6fd0;border-color:#2f6fd0}
button:disabled{opacity:.4;cursor:default}#submit{background:#2d7d46;border-color:#2d7d46;margin-top:.4rem}
#error{color:#ff8a80;min-height:1.2rem}#progress{color:#aaa;font-weight:normal}.note{color:#aaa;font-size:.85rem}
label{display:block;font-size:.85rem;color:#bbb}label span{display:inline-block;width:3.2rem}
input[type=range]{width:12rem;vertical-align:middle}
"""


def reading_page(study: str, reader: str, token: str) -> str:
    """The page a reader reads at: the viewer, the question with its confidence, an optional mark, and Save."""
    confidence = "".join(f'<button type="button" data-field="confidence" data-value="{k}" aria-pressed="false">'
                         f"{label}</button>" for k, label in ((1, "1 guess"), (2, "2"), (3, "3"), (4, "4"),
                                                               (5, "5 certain")))
    return ('<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><meta name="referrer" content="no-referrer">'
            f"<title>Reader study {escape(study)}</title><style>{_STYLE}</style></head>"
            f'<body data-token="{escape(token)}">'
            f'<header style="padding:.8rem 1.2rem 0"><h1>Reader study {escape(study)}: {escape(reader)} '
            '<span id="progress"></span></h1></header>'
            '<main><canvas id="view" aria-label="mammogram to read"></canvas><aside>'
            '<div class="q"><p>Is this image real or fake (altered by a computer)?</p>'
            '<button type="button" data-field="call" data-value="0" aria-pressed="false">Real</button>'
            '<button type="button" data-field="call" data-value="1" aria-pressed="false">Fake</button>'
            f"<p>How confident are you?</p>{confidence}</div>"
            '<div class="q"><p>Optional: click on the image where you think it was edited. '
            '<span id="mark" class="note">no mark</span></p>'
            '<button type="button" id="clear" disabled>Clear mark</button></div>'
            '<button id="submit" type="button" disabled>Save and next</button><p id="error" role="alert"></p>'
            '<div class="q"><label><span>window</span><input id="window" type="range" min="1" max="255" value="255">'
            '</label><label><span>level</span><input id="level" type="range" min="0" max="255" step="0.5" '
            'value="127.5"></label>'
            '<button type="button" id="reset">Reset view</button> <button type="button" id="stop">Stop for now'
            "</button></div>"
            '<p class="note">Wheel: zoom. Drag: move. Right-drag or the sliders: window (contrast) and level '
            "(brightness). Some images in this study are real and some have been altered. Each answer is saved "
            "when you press Save: you can stop at any time and open the same link later to continue at the next "
            "image.</p></aside></main>"
            '<section id="paused" hidden style="padding:2rem"><h2>Your answers are saved.</h2><p>Open the same link '
            "again to continue where you stopped.</p></section>"
            '<section id="finished" hidden style="padding:2rem"><h2>All images are read. Thank you.</h2></section>'
            f"<script>{SCRIPT}</script></body></html>\n")


def welcome_page(study: str) -> str:
    """The server's front page: where to go."""
    return ('<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>Reader study {escape(study)}</title><style>{_STYLE}</style></head><body style='padding:2rem'>"
            f"<h1>Reader study {escape(study)}</h1><p>Open the personal link the study's organiser sent you.</p>"
            "</body></html>\n")


def admin_page(study: str, meta: dict, readers: list[dict], counts: dict[str, int], base: str, result: dict) -> str:
    """The organiser's page: progress per reader, what the images are (synthetic marked), the results, exports."""
    rows = "".join(f"<tr><td class=\"text\">{escape(r['name'])}</td><td>{r['answered']} / {r['total']}</td></tr>"
                   for r in readers)
    facts = "".join(f"<li>{escape(k)}: {escape(str(meta.get(k)))}</li>"
                    for k in ("dataset", "run_id", "fakes", "cases", "seed", "design", "created", "git_commit"))
    return ('<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><meta name="referrer" content="no-referrer">'
            f"<title>Reader study {escape(study)}: organiser</title><style>{STYLE}</style></head><body>"
            f"<h1>Reader study {escape(study)}: organiser</h1><ul>{facts}</ul>"
            f"<p id=\"items\">Images: {counts['original']} original and {counts['synthetic']} "
            "<strong>synthetic</strong> (made by the lesion GAN; readers are not told which).</p>"
            f'<h2>Progress</h2><table id="progress"><thead><tr><th class="text">reader</th><th>answered</th></tr>'
            f"</thead><tbody>{rows}</tbody></table>"
            f'<p>Exports: <a href="{escape(base)}/answers.csv">answers.csv</a> (every answer, with a '
            f'<code>synthetic</code> column), <a href="{escape(base)}/report.json">report.json</a>. New readers: '
            "<code>python -m benchmark reader-study add-reader NAME --study FOLDER</code>.</p>"
            f"<h2>Results so far</h2>{report_body(result)}</body></html>\n")
