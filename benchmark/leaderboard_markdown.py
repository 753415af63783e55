"""leaderboard.md and leaderboard.csv, rendered from the threat boards' entries (readable in a terminal too)."""
from __future__ import annotations

import csv
import io

from benchmark.leaderboard_entry import (
    BOARD_TITLES,
    STUDY,
    cell_columns,
    fmt_auc,
    fmt_count,
    fmt_pct,
)

__all__ = ["render_boards_markdown", "render_csv"]

_MARKS = {"adaptive white-box (BPDA/EOT)": "†", "transfer": "ᵀ", "black-box": "ᴮ"}
_STUDY_NAME = "Zhou et al. 2021 (VGG-11, 1728x1408, real mammograms)"


def _num(v: object, digits: int = 0) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def _board_table(entries: list[dict]) -> list[str]:
    columns = cell_columns(entries)
    head = ["#", "model", "defense", "clean acc", "AUC", "worst-case robust acc"]
    head += [c for c, _, _ in columns] + ["train s", "attack s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for rank, e in enumerate(entries, 1):
        by_cell = {a["cell"]: a for a in e["attacks"]}
        row = [str(rank), e["model"], e["defense"] + (" ⚠ unreliable" if e["unreliable"] else ""),
               fmt_pct(e["clean"]["accuracy"]), fmt_auc(e["clean"]["auc"]), fmt_pct(e["worst_case_robust_accuracy"])]
        for c, _, _ in columns:
            a = by_cell.get(c)
            row.append("" if a is None else fmt_pct(a["attack_outcome"]["robust_accuracy"])
                       + _MARKS.get(a["evaluation"], ""))
        row += [_num(e.get("train_seconds")), _num((e.get("cost") or {}).get("attack_seconds"))]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _gan_table(entries: list[dict]) -> list[str]:
    head = ["model", "defense", "attack", "positives made negative", "negatives made positive", "overall fooled",
            "fooled, not flagged", "SSIM", "PSNR dB", "breast area changed", "real-vs-fake detector AUC", "detector acc"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
             (f"| {_STUDY_NAME} | - | GAN | {fmt_count(STUDY['pos_to_neg'])} | {fmt_count(STUDY['neg_to_pos'])} | "
             f"{fmt_count(STUDY['overall'])} | | | | | radiologists: 29-71% accuracy | |")]
    for e in entries:
        for g in e.get("gan", []):
            area = g.get("area_changed")
            lines.append("| " + " | ".join([
                e["model"], e["defense"], f"{g['attack']} ({g['evaluation']})", fmt_count(g["pos_to_neg"]),
                fmt_count(g["neg_to_pos"]), fmt_count(g["overall"]),
                fmt_count(g["fooled_undetected"]) if g.get("fooled_undetected") else "", _num(g.get("ssim"), 3),
                _num(g.get("psnr"), 1), "n/a" if area is None else f"{100 * area:.1f}%",
                fmt_auc(g.get("detector_auc")), fmt_pct(g.get("detector_accuracy"))]) + " |")
    detections = [e for e in entries if e.get("detection")]
    if detections:
        lines += ["", ("Detecting defenses (a \"manipulated\" head): transfer fakes of the test split (made against "
                  "the undefended model) flagged, real test images flagged, and the head's AUC between them. "
                  "\"Fooled, not flagged\" above counts an attacked image only if the class flipped and the head "
                  "stayed silent."), "",
                  "| model | defense | fakes detected | false alarms on real images | head AUC |", "|---|---|---|---|---|"]
        for e in detections:
            d = e["detection"]
            lines.append(f"| {e['model']} | {e['defense']} | {fmt_count(d.get('detection_rate'))} | "
                         f"{fmt_count(d.get('false_alarm_rate'))} | {fmt_auc(d.get('auc'))} |")
    return lines


def _checks(entries: list[dict]) -> list[str]:
    lines = []
    for e in entries:
        tripped = [c for c in e.get("masking_checks", []) if c["tripped"]]
        skipped = [c["check"] for c in e.get("masking_checks", []) if not c["evaluated"]]
        status = "**unreliable**: " + "; ".join(c["reason"] for c in tripped) if tripped else "no check tripped"
        note = f" (not evaluated: {', '.join(skipped)})" if skipped else ""
        lines.append(f"- {e['model']} + {e['defense']}: {status}{note}")
    return lines


def render_boards_markdown(boards: dict[str, list[dict]], dataset: str) -> str:
    """The whole leaderboard.md: one ranked table per threat, the study's GAN table, checks and provenance."""
    overall = boards.get("overall", [])
    lines = [f"# Leaderboard: {dataset}", "",
             ("Robust accuracy in percent with 95% Wilson intervals (AUC: bootstrap), on the test split, ranked by "
             "worst-case robust accuracy. The worst case is per image: an image counts as robust only if every "
             "attack of the board failed on it. Marks: † adaptive white-box (BPDA/EOT against a "
             "non-differentiable defense), ᵀ transfer, ᴮ black-box; unmarked cells are plain white-box. "
             "⚠ unreliable: a gradient-masking check tripped (reasons below). Cost in seconds on the run's device."),
             ""]
    for board, title in BOARD_TITLES.items():
        if boards.get(board):
            lines += [f"## {title}", "", *_board_table(boards[board]), ""]
    if any(e.get("gan") for e in overall):
        lines += ["## GAN attack: the study's table", "",
                  ("Fooled counts over correctly classified originals, per direction and overall, with 95% Wilson "
                  "intervals, next to the study's; visibility of the edits (mean SSIM/PSNR, share of the breast "
                  "changed by more than 0.02) and a real-vs-fake detector's test AUC (a machine stand-in for the "
                  "study's radiologists)."), "", *_gan_table(overall), ""]
    if overall:
        lines += ["## Gradient-masking checks", "", *_checks(overall), ""]
        e = overall[0]
        lines += [(f"Config `{e.get('config_digest')}`, seed {e.get('seed')}, commit `{e.get('git_commit')}`, "
                  f"{e.get('date')}, device {e.get('device')}, run `{e.get('run_id')}`. Per-image flags (ids "
                  "hashed) are in `entries/*.json`; one JSON file per threat under `entries/<threat>/`.")]
    return "\n".join(lines) + "\n"


def _rate_cols(prefix: str, r: dict | None) -> dict:
    r = r or {}
    return {prefix: r.get("value"), f"{prefix}_lo": r.get("lo"), f"{prefix}_hi": r.get("hi")}


def render_csv(boards: dict[str, list[dict]]) -> str:
    """One row per (board, entry): every metric with its interval, GAN counts, cost, flags and provenance."""
    rows = []
    for board, entries in boards.items():
        for rank, e in enumerate(entries, 1):
            row = {"board": board, "rank": rank, "model": e["model"], "defense": e["defense"],
                   "unreliable": e["unreliable"], "unreliable_reason": e["unreliable_reason"] or ""}
            for name in ("accuracy", "sensitivity", "specificity", "auc"):
                row.update(_rate_cols(f"clean_{name}", e["clean"][name]))
            row.update(_rate_cols("worst_case_robust_accuracy", e["worst_case_robust_accuracy"]))
            for a in e["attacks"]:
                row.update(_rate_cols(f"robust_accuracy[{a['cell']}]", a["attack_outcome"]["robust_accuracy"]))
                row[f"evaluation[{a['cell']}]"] = a["evaluation"]
            for g in e.get("gan", []):
                for key in ("pos_to_neg", "neg_to_pos", "overall"):
                    row.update(_rate_cols(f"{key}[{g['attack']}]", g[key]))
                row[f"detector_auc[{g['attack']}]"] = (g.get("detector_auc") or {}).get("value")
            for key in ("detection_rate", "false_alarm_rate"):
                if e.get("detection"):
                    row.update(_rate_cols(key, e["detection"].get(key)))
            row.update(train_seconds=e.get("train_seconds"), attack_seconds=(e.get("cost") or {}).get("attack_seconds"),
                       n_test=e.get("n_test"), config_digest=e.get("config_digest"), seed=e.get("seed"),
                       git_commit=e.get("git_commit"), date=e.get("date"), run_id=e.get("run_id"))
            rows.append(row)
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
