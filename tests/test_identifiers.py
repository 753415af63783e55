"""Identifiers stay secret: keyed ids (per-store key), no identifier in any file a run writes, safe entry names."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pydicom
import pytest
from conftest import write_toml

from benchmark.cli import main
from benchmark.data.dataset_folder import KEY_FILE, anon_id, id_key, using_id_key
from benchmark.data.dicom_io import SyntheticDicomMeta, quantize, write_mammogram
from benchmark.data.phantom import SynthConfig, generate
from benchmark.errors import BenchmarkError
from benchmark.registry import get_registry

MRN_SPACE = range(10_000)  # a hospital's short MRNs: MRN0000 .. MRN9999
PATIENTS = [137, 2024, 4711, 5000, 6120, 7331, 8086, 9001, 1234, 3141, 2718, 1618]


def _mrn(n: int) -> str:
    return f"MRN{n:04d}"


def _unkeyed(name: str, kind: str, original: str) -> str:
    """The id the project wrote before keyed hashing (salted SHA-256 with the default empty salt)."""
    return hashlib.sha256("\0".join((name, "", kind, original)).encode()).hexdigest()[:16]


def _folder(root: Path) -> Path:
    """A dicom-folder data set whose PatientIDs are short MRNs and whose file names carry names and MRNs."""
    rows = ["file,label"]
    config = SynthConfig(128, 1.6, 0.5, 0.5, (12.0, 30.0), 1.5)
    for m in generate(config, 2 * len(PATIENTS), 0):
        mrn = _mrn(PATIENTS[m.case.patient])
        rel = f"DOE^JANE_{mrn}/{mrn}_{m.view}.dcm"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        write_mammogram(root / rel, quantize(m.image, 12), SyntheticDicomMeta(rel, m.case.patient, m.view, "L", 1.6))
        ds = pydicom.dcmread(root / rel)
        ds.PatientID, ds.PatientName, ds.AccessionNumber = mrn, f"DOE^JANE{mrn}", f"ACC{mrn}"
        ds.save_as(root / rel)
        rows.append(f"{rel},{m.case.label}")
    (root / "bad").mkdir()
    (root / "bad" / f"DOE^JANE_{_mrn(PATIENTS[0])}_broken.dcm").write_bytes(b"junk" * 40)
    rows.append(f"bad/DOE^JANE_{_mrn(PATIENTS[0])}_broken.dcm,0")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def _readable(path: Path) -> bytes:
    """A file's bytes, plus (for .npz) its string arrays as text: numpy stores them as UTF-32."""
    data = path.read_bytes()
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            data += "\n".join(" ".join(z[k].ravel().tolist()) for k in z.files if z[k].dtype.kind == "U").encode()
    return data


def test_keyed_ids_need_the_key(tmp_path: Path) -> None:
    key = id_key(tmp_path / "secrets")
    assert (tmp_path / "secrets" / KEY_FILE).stat().st_mode & 0o077 == 0  # readable by the owner only
    assert id_key(tmp_path / "secrets") == key  # created once, then read back
    with using_id_key(key):
        first = anon_id("dicom-folder", "", "patient", "dicom:MRN0137")
    with using_id_key(id_key(tmp_path / "other")):
        other = anon_id("dicom-folder", "", "patient", "dicom:MRN0137")
    assert first != other and first[1:] != _unkeyed("dicom-folder", "patient", "dicom:MRN0137")
    short = tmp_path / "short.key"
    short.write_text("abcd\n")
    with pytest.raises(BenchmarkError, match="id key is 2 bytes"):
        id_key(tmp_path, str(short))


@pytest.mark.slow
def test_brute_force_finds_no_identifier_in_anything_a_run_writes(tmp_path: Path, capsys) -> None:
    root = _folder(tmp_path / "hospital")
    raw = {"run": {"seed": 0, "device": "cpu", "store": str(tmp_path / "runs"),
                   "leaderboards": str(tmp_path / "leaderboards")},
           "dataset": {"name": "dicom-folder", "image_size": 32, "options": {"root": str(root), "labels": "labels.csv"},
                       "split": [0.5, 0.25, 0.25]},
           "training": {"epochs": 1, "batch_size": 8},
           "models": [{"name": "resnet10t"}], "defenses": ["none"],
           "attacks": [{"name": "fgsm", "budgets": ["8/255"]}], "attack": {"sanity_budget": 0}}
    code = main(["run", "--matrix", "--config", str(write_toml(tmp_path / "h.toml", raw)), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 0, err
    written = [p for base in (tmp_path / "runs", tmp_path / "leaderboards") for p in base.rglob("*") if p.is_file()]
    blobs = {p: _readable(p) for p in written}
    # every hashed id in the written files (p..., i..., f... followed by 16 hex digits)
    pattern = rb"(?<![0-9a-f])[pif]([0-9a-f]{16})(?![0-9a-f])"
    found = {m.decode() for b in blobs.values() for m in re.findall(pattern, b)}
    guesses = {_unkeyed("dicom-folder", kind, f"dicom:{_mrn(n)}") for n in MRN_SPACE for kind in ("patient",)}
    guesses |= {_unkeyed("dicom-folder", "image", f"DOE^JANE_{_mrn(n)}/{_mrn(n)}_{v}.dcm")
                for n in MRN_SPACE for v in ("CC", "MLO")}
    # the root folder itself is the user's own setting (recorded with the config); what lies under it is not
    secrets = [s.encode() for n in PATIENTS for s in (_mrn(n), f"ACC{_mrn(n)}")] + [b"DOE^JANE", b"DOE%5EJANE"]
    hits = [(p.name, s) for p, b in blobs.items() for s in secrets if s in b]
    with np.load(next((tmp_path / "runs").rglob("imageset.npz"))) as z:
        stored = set(z["patients"].tolist()) | set(z["ids"].tolist())
    skipped = json.loads(next((tmp_path / "runs").rglob("summary.json")).read_text())["meta"]["skipped"]
    print(f"brute force: {len(guesses)} guesses against {len(found)} hashed ids in {len(written)} files: "
          f"{len(found & guesses)} reversed; identifier strings found: {len(hits)}")
    assert len(stored) == 2 * len(PATIENTS) + len(PATIENTS) and len(skipped) == 1
    assert {s[1:] for s in stored} <= found  # the search does see the stored ids ...
    assert not found & guesses and not hits  # ... and none of them is a guessable hash or an identifier
    # the same search against the old, unkeyed ids would have reversed every patient
    assert {_unkeyed("dicom-folder", "patient", f"dicom:{_mrn(n)}") for n in PATIENTS} <= guesses
    assert not any(KEY_FILE in p.name for p in written if "leaderboards" in p.parts)


@pytest.mark.parametrize("bad", ["../../x", "a/b", "..", ".hidden", "x y", "", "a" * 65, "<script>"])
def test_unsafe_entry_names_are_refused_at_registration(bad: str) -> None:
    with pytest.raises(BenchmarkError, match="is not allowed: use 1-64 letters, digits and - _ . @"):
        get_registry("defenses").add(bad, lambda: None, source="plugin evil")
    assert bad not in get_registry("defenses").names()
