"""HTML of the server's pages: the reading page (one image at a time, two questions) and the organiser's page."""
from __future__ import annotations

from html import escape

__all__ = ["admin_page", "reading_page", "welcome_page"]

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#111;color:#eee}
main{display:flex;gap:2rem;padding:1.2rem;align-items:flex-start}
#viewer{background:#000;display:flex;align-items:center;justify-content:center;width:min(78vh,720px);
height:min(78vh,720px)}
#viewer img{width:100%;height:100%;object-fit:contain;image-rendering:auto}
aside{max-width:24rem}h1{font-size:1.1rem;margin:.2rem 0 1rem}.q{margin:0 0 1.2rem}.q p{margin:.2rem 0 .4rem}
button{font:inherit;padding:.45rem .9rem;margin:0 .3rem .3rem 0;border:1px solid #777;border-radius:4px;
background:#2a2d33;color:#eee;cursor:pointer}button[aria-pressed=true]{background:#2f6fd0;border-color:#2f6fd0}
#submit{background:#2d7d46;border-color:#2d7d46;margin-top:.6rem}#submit:disabled{opacity:.4;cursor:default}
#error{color:#ff8a80;min-height:1.2rem}#progress{color:#aaa}.note{color:#aaa;font-size:.85rem}
"""

_SCRIPT = """
const token=document.body.dataset.token;let current=null,shownAt=0;const chosen={};
const $=s=>document.querySelector(s);
function show(j){
  if(j.done){$('main').hidden=true;$('#finished').hidden=false;
    $('#progress').textContent=`${j.total} / ${j.total}`;return;}
  current=j;for(const k in chosen)delete chosen[k];
  document.querySelectorAll('button[data-field]').forEach(b=>b.setAttribute('aria-pressed','false'));
  $('#submit').disabled=true;$('#error').textContent='';
  $('#progress').textContent=`Image ${j.seq+1} of ${j.total}`;
  const img=$('#image');img.onload=()=>{shownAt=performance.now();$('main').dataset.ready=j.seq;};
  img.src=`/image/${j.item}.png`;}
function choose(b){const f=b.dataset.field;chosen[f]=Number(b.dataset.value);
  document.querySelectorAll(`button[data-field=${f}]`).forEach(x=>x.setAttribute('aria-pressed',String(x===b)));
  $('#submit').disabled=Object.keys(chosen).length<4;}
async function submit(){
  if(!current||Object.keys(chosen).length<4)return;$('#submit').disabled=true;
  const body={seq:current.seq,item:current.item,...chosen,ms:Math.round(performance.now()-shownAt)};
  try{const r=await fetch(`/api/${token}/answers`,{method:'POST',headers:{'Content-Type':'application/json'},
    body:JSON.stringify(body)});const j=await r.json();
    if(!r.ok){$('#error').textContent=j.error;$('#submit').disabled=false;return;}show(j.next);}
  catch(e){$('#error').textContent='The server did not answer; your answer was not saved. Try again.';
    $('#submit').disabled=false;}}
document.querySelectorAll('button[data-field]').forEach(b=>b.addEventListener('click',()=>choose(b)));
$('#submit').addEventListener('click',submit);
fetch(`/api/${token}/next`).then(r=>r.json()).then(show);
"""


def _choices(field: str, labels: tuple[str, ...], first: int = 0) -> str:
    return "".join(f'<button type="button" data-field="{field}" data-value="{first + k}" aria-pressed="false">'
                   f"{escape(label)}</button>" for k, label in enumerate(labels))


def reading_page(study: str, reader: str, token: str) -> str:
    """The page a reader reads at: the image, the two questions with a confidence each, and Next."""
    confidence = ("low", "medium", "high")
    questions = (
        '<div class="q"><p>Is there a cancer (a malignant lesion) in this image?</p>'
        + _choices("cancer", ("No cancer", "Cancer")) + "<p>How confident are you?</p>"
        + _choices("cancer_confidence", confidence, 1) + "</div>"
        '<div class="q"><p>Has this image been manipulated (altered by a computer)?</p>'
        + _choices("manipulated", ("Real", "Manipulated")) + "<p>How confident are you?</p>"
        + _choices("manipulated_confidence", confidence, 1) + "</div>")
    return ('<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>Reader study {escape(study)}</title><style>{_STYLE}</style></head>"
            f'<body data-token="{escape(token)}">'
            f'<header style="padding:.8rem 1.2rem 0"><h1>Reader study {escape(study)}: {escape(reader)} '
            '<span id="progress"></span></h1></header>'
            '<main><div id="viewer"><img id="image" alt="mammogram to read"></div><aside>'
            + questions
            + '<button id="submit" type="button" disabled>Save and next</button><p id="error" role="alert"></p>'
            '<p class="note">Some images in this study are real and some have been altered. Your answers are saved '
            "one by one: you can close the page and come back to the same link later.</p></aside></main>"
            '<section id="finished" hidden style="padding:2rem"><h2>All images are read. Thank you.</h2></section>'
            f"<script>{_SCRIPT}</script></body></html>\n")


def welcome_page(study: str) -> str:
    """The server's front page: where to go."""
    return ('<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>Reader study {escape(study)}</title><style>{_STYLE}</style></head><body style='padding:2rem'>"
            f"<h1>Reader study {escape(study)}</h1><p>Open the personal link the study's organiser sent you.</p>"
            "</body></html>\n")


def admin_page(study: str, meta: dict, readers: list[dict], counts: dict[str, int], base: str) -> str:
    """The organiser's page: progress per reader with their links, what the items are (synthetic marked)."""
    rows = "".join(f"<tr><td>{escape(r['name'])}</td><td>{r['answered']} / {r['total']}</td>"
                   f"<td><a href=\"{escape(base)}/read/{escape(r['token'])}\">{escape(base)}/read/"
                   f"{escape(r['token'])}</a></td></tr>" for r in readers)
    facts = "".join(f"<li>{escape(k)}: {escape(str(meta.get(k)))}</li>"
                    for k in ("dataset", "run_id", "fakes", "cases", "seed", "design", "created", "git_commit"))
    return ('<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>Reader study {escape(study)}: organiser</title>"
            "<style>body{font-family:system-ui,sans-serif;margin:2rem}td,th{border:1px solid #ccc;padding:.3rem .6rem}"
            "table{border-collapse:collapse}</style></head><body>"
            f"<h1>Reader study {escape(study)}: organiser</h1><ul>{facts}</ul>"
            f"<p id=\"items\">Items: {counts['original']} original images and {counts['synthetic']} "
            "<strong>synthetic</strong> images (made by the lesion GAN; readers are not told which).</p>"
            f"<table><thead><tr><th>reader</th><th>answered</th><th>link</th></tr></thead><tbody>{rows}</tbody></table>"
            f'<p><a href="{escape(base)}/admin/{escape(meta["admin_token"])}/answers.csv">answers.csv</a> (every '
            "answer, with a <code>synthetic</code> column). The analysis: "
            "<code>python -m benchmark reader-study report --study FOLDER</code>.</p></body></html>\n")
