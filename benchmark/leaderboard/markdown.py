"""leaderboard.md and leaderboard.csv, rendered from the threat boards' entries (readable in a terminal too)."""
from __future__ import annotations

import csv
import io

from benchmark.leaderboard.checks import CHECKS_DOC, clean_balanced_accuracy
from benchmark.leaderboard.entry import (
    BOARD_TITLES,
    STUDY,
    STUDY_VIEWS,
    cell_columns,
    fmt_auc,
    fmt_count,
    fmt_pct,
    md_text,
    standing,
)
from benchmark.leaderboard.seed_spread import seed_table

__all__ = ["render_boards_markdown", "render_csv"]

_MARKS = {"adaptive white-box (BPDA/EOT)": "†", "transfer": "ᵀ", "black-box": "ᴮ"}
_STUDY_NAME = "Zhou et al. 2021 (VGG-11, 1728x1408, real mammograms)"


def _num(v: object, digits: int = 0) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def _board_table(entries: list[dict]) -> list[str]:
    columns = cell_columns(entries)
    head = ["#", "model", "defense", "robust balanced acc", "worst-case robust acc", "clean acc", "clean balanced acc",
            "AUC"]
    head += [md_text(c) for c, _, _ in columns] + ["train s", "attack s", "standing"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in entries:
        by_cell = {a["cell"]: a for a in e["attacks"]}
        rank = "-" if e.get("rank") is None else str(e["rank"])
        flag = " ⚠" if e.get("unreliable") else (" ◇" if e.get("marks") else "")
        row = [rank, md_text(e["model"]), md_text(e["defense"]) + flag, fmt_pct(e.get("robust_balanced_accuracy")),
               fmt_pct(e["worst_case_robust_accuracy"]), fmt_pct(e["clean"]["accuracy"]),
               fmt_pct(clean_balanced_accuracy(e["clean"])), fmt_auc(e["clean"]["auc"])]
        for c, _, _ in columns:
            a = by_cell.get(c)
            row.append("" if a is None else fmt_pct(a["attack_outcome"]["robust_accuracy"])
                       + _MARKS.get(a["evaluation"], ""))
        row += [_num(e.get("train_seconds")), _num((e.get("cost") or {}).get("attack_seconds")),
                md_text(standing(e))]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _gan_rows(entries: list[dict], at_argmax: bool) -> list[str]:
    head = ["model", "defense", "attack", "positives made negative", "negatives made positive",
            "class-balanced fooled", "at the study's mix (44:319)", "pooled here"]
    if not at_argmax:
        head += ["fooled, not flagged", "SSIM (breast)", "PSNR dB (breast)", "pixels changed / breast pixels",
                 "real-vs-fake detector AUC (pairs)", "detector acc"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    study = [_STUDY_NAME, "-", "GAN", fmt_count(STUDY["pos_to_neg"]), fmt_count(STUDY["neg_to_pos"]),
             fmt_pct(STUDY_VIEWS["balanced"]), fmt_pct(STUDY_VIEWS["study_mix"]), fmt_count(STUDY["overall"])]
    lines.append("| " + " | ".join(study + ([] if at_argmax else ["", "", "", "", "radiologists: 29-71% accuracy",
                                                                    ""])) + " |")
    for e in entries:
        for g in e.get("gan", []):
            view = g.get("argmax") if at_argmax else g
            if not view:
                continue
            row = [md_text(e["model"]), md_text(e["defense"]) + (" ⚠" if e.get("unreliable") else ""),
                   f"{md_text(g['attack'])} ({g['evaluation']})", fmt_count(view["pos_to_neg"]),
                   fmt_count(view["neg_to_pos"]),
                   fmt_pct(view.get("balanced")), fmt_pct(view.get("study_mix")), fmt_count(view["overall"])]
            if not at_argmax:
                area = g.get("area_changed")
                row += [fmt_count(g["fooled_undetected"]) if g.get("fooled_undetected") else "",
                        _num(g.get("ssim"), 3), _num(g.get("psnr"), 1), "n/a" if area is None else f"{100 * area:.1f}%",
                        fmt_auc(g.get("detector_auc")), fmt_pct(g.get("detector_accuracy"))]
            lines.append("| " + " | ".join(row) + " |")
    return lines


def _gan_table(entries: list[dict]) -> list[str]:
    lines = ["At the leaderboard's operating point (each entry's validation threshold, the one its attacks aim at):",
             "", *_gan_rows(entries, False), "",
             "At argmax (P(positive) >= 0.5), the study's operating point:", "", *_gan_rows(entries, True)]
    spread = seed_table(entries)
    if spread:
        lines += ["", *spread]
    detections = [e for e in entries if e.get("detection")]
    if detections:
        lines += ["", ("Detecting defenses (a \"manipulated\" head): transfer fakes of the test split (made against "
                  "the undefended model) flagged, real test images flagged, and the head's AUC between them. The "
                  "head flags above a threshold set on real validation images at the stated false-alarm rate. "
                  "\"Fooled, not flagged\" above counts an attacked image only if the class flipped and the head "
                  "stayed silent."), "",
                  "| model | defense | fakes detected | false alarms on real test images (target on validation) | "
                  "head AUC |", "|---|---|---|---|---|"]
        for e in detections:
            d = e["detection"]
            target = d.get("target_false_alarm_rate")
            aim = "" if target is None else f" (target {100 * target:.0f}%)"
            lines.append(f"| {md_text(e['model'])} | {md_text(e['defense'])} | {fmt_count(d.get('detection_rate'))} | "
                         f"{fmt_count(d.get('false_alarm_rate'))}{aim} | {fmt_auc(d.get('auc'))} |")
    return lines


def _checks(entries: list[dict]) -> list[str]:
    lines = []
    for e in entries:
        tripped = [c for c in e.get("masking_checks", []) if c["tripped"]]
        skipped = [c["check"] for c in e.get("masking_checks", []) if not c["evaluated"]]
        parts = [f"**{c['check']}** ({'mark' if c.get('effect') == 'mark' else 'demotes'}, {c.get('level', 'model')}"
                 f"-level; [why]({c.get('doc', CHECKS_DOC)})): {c['reason']}" for c in tripped]
        status = "; ".join(parts) if parts else "no check tripped"
        note = f" (not evaluated: {md_text(', '.join(skipped))})" if skipped else ""
        lines.append(f"- {md_text(e['model'])} + {md_text(e['defense'])}: {md_text(status)}{note}")
    return lines


def render_boards_markdown(boards: dict[str, list[dict]], dataset: str) -> str:
    """The whole leaderboard.md: one ranked table per threat, the study's GAN table, checks and provenance."""
    overall = boards.get("overall", [])
    commit = overall[0].get("git_commit") if overall else None
    lines = [f"# Leaderboard: {md_text(dataset)}", "",
             f"Produced at commit `{commit}` (run `{overall[0].get('run_id') if overall else None}`)." if overall
             else "", "",
             ("Ranked by robust balanced accuracy: the mean of robust sensitivity and robust specificity on the test "
             "split, where an image counts as robust only if every attack of the board failed on it (a constant "
             "classifier scores 50%). Percent with 95% intervals (Wilson; balanced accuracy: MOVER from the two "
             "Wilson intervals; AUC: bootstrap). Operating point: each entry is scored at the threshold chosen on "
             "validation (Youden's J), and every attack aims at that same threshold. Entries whose verdict cannot be "
             "trusted (did not learn, gradient masking, a failed or unreaching attack) are listed after the ranked "
             "ones without a rank (⚠, reason in the last column); ◇ marks a ranked entry with a note (e.g. a random "
             "defense attacked with EOT). Cell marks: † adaptive white-box (BPDA/EOT against a non-differentiable "
             "defense), ᵀ transfer, ᴮ black-box; unmarked cells are plain white-box. Cost in seconds on the run's "
             f"device. Every check is explained in `{CHECKS_DOC}`."),
             ""]
    for board, title in BOARD_TITLES.items():
        if boards.get(board):
            lines += [f"## {title}", "", *_board_table(boards[board]), ""]
    if any(e.get("gan") for e in overall):
        lines += ["## GAN attack: the study's table", "",
                  ("Fooled counts over correctly classified originals, per direction, with 95% Wilson intervals; "
                  "the overall fooled rate class-balanced and re-weighted to the study's mix of 44 positives and "
                  "319 negatives (MOVER intervals), and pooled over this test split, next to the study's. "
                  "Visibility of the edits inside the breast (mean SSIM/PSNR, share of the breast changed by more "
                  "than 0.02) and a real-vs-fake detector's test AUC with an interval bootstrapped over image pairs "
                  "(a machine stand-in for the study's radiologists). A transfer whose surrogate is the attacked "
                  "model itself is labelled white-box."), "", *_gan_table(overall), ""]
    if overall:
        lines += ["## Checks", "", *_checks(overall), ""]
        e = overall[0]
        lines += [(f"Config `{e.get('config_digest')}`, seed {e.get('seed')}, commit `{e.get('git_commit')}`, "
                  f"{e.get('date')}, device {e.get('device')}, run `{e.get('run_id')}`. Per-image flags (ids "
                  "hashed) and the code version of every stage that produced them are in `entries/*.json`; one "
                  "JSON file per threat under `entries/<threat>/`.")]
    return "\n".join(lines) + "\n"


def _rate_cols(prefix: str, r: dict | None) -> dict:
    r = r or {}
    return {prefix: r.get("value"), f"{prefix}_lo": r.get("lo"), f"{prefix}_hi": r.get("hi")}


def render_csv(boards: dict[str, list[dict]]) -> str:
    """One row per (board, entry): every metric with its interval, GAN counts, cost, flags and provenance."""
    rows = []
    for board, entries in boards.items():
        for e in entries:
            row = {"board": board, "rank": "" if e.get("rank") is None else e["rank"], "model": e["model"],
                   "defense": e["defense"], "unreliable": e["unreliable"],
                   "unreliable_reason": e["unreliable_reason"] or "", "marks": "; ".join(e.get("marks") or []),
                   "threshold": e.get("threshold")}
            for name in ("accuracy", "sensitivity", "specificity", "auc"):
                row.update(_rate_cols(f"clean_{name}", e["clean"][name]))
            row.update(_rate_cols("clean_balanced_accuracy", clean_balanced_accuracy(e["clean"])))
            row.update(_rate_cols("robust_balanced_accuracy", e.get("robust_balanced_accuracy")))
            row.update(_rate_cols("worst_case_robust_accuracy", e["worst_case_robust_accuracy"]))
            for a in e["attacks"]:
                row.update(_rate_cols(f"robust_accuracy[{a['cell']}]", a["attack_outcome"]["robust_accuracy"]))
                row[f"evaluation[{a['cell']}]"] = a["evaluation"]
            for g in e.get("gan", []):
                for key in ("pos_to_neg", "neg_to_pos", "overall", "balanced", "study_mix"):
                    row.update(_rate_cols(f"{key}[{g['attack']}]", g.get(key)))
                    row.update(_rate_cols(f"{key}_argmax[{g['attack']}]", (g.get("argmax") or {}).get(key)))
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
