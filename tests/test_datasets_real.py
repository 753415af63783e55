"""Real data set adapters on tiny fake copies of each layout: labels, positives, patient splits, no PHI, skip-bad."""
from __future__ import annotations

import csv
import json
import sys
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pydicom
import pytest
import torch
from conftest import tiny_raw
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless

from benchmark.cli import _parser
from benchmark.config import DatasetSpec, parse_config
from benchmark.data import dicom_io
from benchmark.data.dataset_folder import anon_id
from benchmark.data.imageset import ImageSet
from benchmark.errors import BenchmarkError
from benchmark.execution.artifacts import read_data
from benchmark.execution.matrix import _warn_skipped
from benchmark.execution.store import Store
from benchmark.registry import get_component
from benchmark.stages import StageContext
from benchmark.stages import data as data_stage

PHI_ID, PHI_NAME, PHI_BIRTH = "PHIID", "Doe^Secretname", "19610203"
REAL = ("cbis-ddsm", "vindr-mammo", "rsna-screening", "inbreast", "cmmd", "dicom-folder")


def dicom(path: Path, k: int, laterality: str = "L", view: str = "CC", photometric: str = "MONOCHROME2",
          window: tuple[float, float] | None = None, voi: str = "LINEAR", phi: int | None = None) -> str:
    """A 128x96 fake mammogram with identifying header fields; returns its SeriesInstanceUID."""
    y, x = np.mgrid[0:128, 0:96].astype(float)
    wall = 0 if laterality == "L" else 95
    image = np.where(((x - wall) / 70) ** 2 + ((y - 64) / 55) ** 2 < 1, 0.3 + 0.3 * np.sin((y + k) / 6) ** 2, 0.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = dicom_io.SyntheticDicomMeta(f"img{k}", k, view, laterality, 0.1, photometric=photometric, window=window,
                                       voi_function=voi)
    dicom_io.write_mammogram(path, dicom_io.quantize(image, 12), meta)
    ds = pydicom.dcmread(path)
    ds.PatientID, ds.PatientName = f"{PHI_ID}{k if phi is None else phi}", f"{PHI_NAME}{k if phi is None else phi}"
    ds.PatientBirthDate = PHI_BIRTH
    ds.save_as(path)
    return str(ds.SeriesInstanceUID)


def table(path: Path, rows: list[dict], delimiter: str = ",") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


def spec(name: str, size: int = 32, skip_bad: bool = True, **options: object) -> DatasetSpec:
    return DatasetSpec(name, image_size=size, seed=0, options=options, skip_bad=skip_bad)


def load(name: str, root: Path, tmp_path: Path, **options: object) -> ImageSet:
    return get_component("datasets", name).obj(spec(name, root=str(root), **options), tmp_path / "work")


def check(data: ImageSet, n: int, positives: int, originals: tuple[str, ...] = ()) -> None:
    """Shape, labels, anonymous ids, no header PHI or label-file ids anywhere, patient-disjoint splits."""
    assert data.images.shape == data.masks.shape == (n, 1, 32, 32) and data.images.dtype == np.float32
    assert int(data.labels.sum()) == positives == data.meta["positives"] and data.meta["images"] == n
    assert len(set(data.ids)) == n and all(len(i) == 17 for i in [*data.ids, *data.patients])
    assert data.images.min() >= 0 and data.images.max() <= 1 and data.images.reshape(n, -1).max(1).min() > 0.2
    ids = " ".join([*data.ids, *data.patients])
    text = json.dumps({k: v for k, v in data.meta.items() if k != "skipped"}) + ids
    for secret in (PHI_ID, PHI_NAME, PHI_BIRTH.lower(), PHI_BIRTH):
        assert secret not in json.dumps(data.meta) + ids
    for original in originals:
        assert original not in text
    assert isinstance(data.meta["positive"], str) and data.meta["positive"]
    if data.splits is not None:
        data_stage.check_patient_splits("t", data.patients, data.splits)
        assert set(data.splits) == {"train", "val", "test"}


# --- RSNA: engine split, MONOCHROME1, windows, SIGMOID, and every kind of bad file --------------------------------

def rsna(root: Path, bad: bool = True) -> Path:
    rows = []
    for p in range(10):
        for j, side in enumerate("LR"):
            k = 2 * p + j
            pid, iid = f"rsnapat{p}", f"{900 + k}"
            dicom(root / "train_images" / pid / f"{iid}.dcm", k, side, "CC" if j == 0 else "MLO",
                  photometric="MONOCHROME1" if k % 2 else "MONOCHROME2",
                  window=(2000.0, 3000.0) if k % 3 == 0 else None, voi="SIGMOID" if k % 4 == 0 else "LINEAR")
            rows.append({"site_id": 1, "patient_id": pid, "image_id": iid, "laterality": side, "view": "CC",
                         "age": 60, "cancer": int(p < 5 and side == "L"), "biopsy": 0})
    if bad:
        folder = root / "train_images" / "rsnabad"
        good = root / "train_images" / "rsnapat0" / "900.dcm"
        (folder / "truncated.dcm").parent.mkdir(parents=True)
        (folder / "truncated.dcm").write_bytes(good.read_bytes()[:3000])
        for name, change in (("nopixels", lambda ds: delattr(ds, "PixelData")),
                             ("ct", lambda ds: setattr(ds, "Modality", "CT"))):
            ds = pydicom.dcmread(good)
            change(ds)
            ds.save_as(folder / f"{name}.dcm")
        ds = pydicom.dcmread(good)
        ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
        ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + b"\0" * 64])
        ds["PixelData"].VR = "OB"
        ds.save_as(folder / "j2k.dcm")
        for name in ("truncated", "nopixels", "ct", "j2k", "missing"):
            rows.append({**rows[0], "patient_id": "rsnabad", "image_id": name, "cancer": 0})
    table(root / "train.csv", rows)
    return root


@pytest.fixture
def no_j2k_decoder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dicom_io, "get_decoder", lambda syntax: SimpleNamespace(is_available=False))


def test_rsna_labels_engine_split_and_skipped_files(tmp_path: Path, no_j2k_decoder) -> None:
    data = load("rsna-screening", rsna(tmp_path / "rsna"), tmp_path)
    check(data, 20, 5, tuple(f"rsnapat{p}" for p in range(10)))
    assert data.splits is None and "cancer == 1" in data.meta["positive"] and len(set(data.patients)) == 10
    # skipped files are listed by a keyed hash of their path under the root (file names can carry identifiers)
    token = {anon_id("rsna-screening", "", "file", f"train_images/rsnabad/{n}.dcm"): n
             for n in ("truncated", "nopixels", "ct", "j2k", "missing")}
    skipped = {token[s["file"]]: s["reason"] for s in data.meta["skipped"]}
    assert not any("rsnabad" in json.dumps(s) or str(tmp_path) in json.dumps(s) for s in data.meta["skipped"])
    assert set(skipped) == {"truncated", "nopixels", "ct", "j2k", "missing"}
    assert "truncated" in skipped["truncated"] and "pixel data" in skipped["nopixels"]
    assert "Modality is 'CT'" in skipped["ct"] and "cannot open" in skipped["missing"]
    assert "pylibjpeg" in skipped["j2k"] and "gdcm" in skipped["j2k"] and "JPEG 2000" in skipped["j2k"]
    assert all("\n" not in r and PHI_ID not in r for r in skipped.values())
    # whatever the laterality and photometric interpretation, the breast ends up bright with its chest wall left
    assert (data.images[:, 0, :, :8].mean((1, 2)) > data.images[:, 0, :, -8:].mean((1, 2))).all()


def test_rsna_skip_bad_off_stops_at_the_first_bad_file(tmp_path: Path, no_j2k_decoder) -> None:
    root = rsna(tmp_path / "rsna")
    with pytest.raises(BenchmarkError) as info:
        reader = get_component("datasets", "rsna-screening").obj
        reader(spec("rsna-screening", root=str(root), skip_bad=False), tmp_path)
    message = str(info.value)
    assert message.startswith("data set rsna-screening: file f") and "truncated" in message
    assert str(root) not in message and "rsnabad" not in message
    assert "\n" not in message and PHI_ID not in message


def test_limit_takes_whole_patients_of_both_classes(tmp_path: Path) -> None:
    data = load("rsna-screening", rsna(tmp_path / "rsna", bad=False), tmp_path, limit=8)
    assert len(data) == 8 and set(data.labels) == {0, 1} and len(set(data.patients)) == 4
    assert data.meta["limit"] == 8


def test_data_stage_uses_the_shared_cache_and_writes_skipped_files(tmp_path: Path, no_j2k_decoder, capsys) -> None:
    root = rsna(tmp_path / "rsna")
    params = {"dataset": asdict(spec("rsna-screening", root=str(root)))}
    ctx = StageContext(torch.device("cpu"), cache_dir=tmp_path / "store" / "cache")
    summaries = []
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        data_stage.run(params, {}, tmp_path / run, ctx)
        summaries.append(json.loads((tmp_path / run / "summary.json").read_text()))
    first, second = summaries
    assert first["preprocess_cache"]["misses"] == 20 and first["preprocess_cache"]["hits"] == 0
    assert second["preprocess_cache"]["hits"] == 20 and second["preprocess_cache"]["misses"] == 0
    assert second["skipped_files"] == 5 and len(second["meta"]["skipped"]) == 5
    assert sum(s["positives"] for s in second["splits"].values()) == 5
    a, b = (read_data(tmp_path / run) for run in ("a", "b"))
    np.testing.assert_array_equal(a.images, b.images)
    data_stage.check_patient_splits("rsna", b.patients, b.splits)
    text = (tmp_path / "b" / "summary.json").read_text() + " ".join(b.ids) + " ".join(b.patients)
    assert PHI_ID not in text and PHI_NAME not in text and PHI_BIRTH not in text
    assert (tmp_path / "store" / "cache" / "preprocess").is_dir()
    # the runner's one-line warning names the count and where the list is
    stage = SimpleNamespace(kind="data", key="ab" * 32, label="data rsna-screening@32px")
    store = Store(tmp_path / "runs")
    store.path(stage.key).mkdir(parents=True)
    (store.path(stage.key) / "summary.json").write_text((tmp_path / "b" / "summary.json").read_text())
    _warn_skipped(SimpleNamespace(stages=[stage]), store, {stage.key: SimpleNamespace(status="cached")})
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "5 unreadable files skipped" in lines[0] and "summary.json" in lines[0]


# --- CBIS-DDSM: official split, aggregation per image, files found by series UID, ROI masks -----------------------

def _cbis_row(kind: str, patient: str, folder: str, series: str, pathology: str, k: int) -> dict:
    density = "breast_density" if kind == "mass" else "breast density"
    extra = {"mass shape": "OVAL", "mass margins": "CIRCUMSCRIBED"} if kind == "mass" else \
        {"calc type": "PLEOMORPHIC", "calc distribution": "CLUSTERED"}
    return {"patient_id": patient, density: 2, "left or right breast": "LEFT", "image view": "CC",
            "abnormality id": 1, "abnormality type": kind, **extra, "assessment": 4, "pathology": pathology,
            "subtlety": 3, "image file path": f"{folder}/1.3.6.1.4.1.9590.100.1.2.{k}/{series}/000000.dcm",
            "cropped image file path": f"{folder}_1/x/y/000000.dcm\n", "ROI mask file path": ""}


def cbis(root: Path) -> Path:
    train, test = [], []
    plan = [(p, "mass", "Training", "MALIGNANT" if p <= 4 else ("BENIGN" if p % 2 else "BENIGN_WITHOUT_CALLBACK"))
            for p in range(1, 9)]
    plan += [(p, "calc", "Test", "MALIGNANT" if p <= 10 else "BENIGN") for p in range(9, 13)] + \
        [(2, "calc", "Test", "BENIGN")]
    for k, (p, kind, part, pathology) in enumerate(plan):
        folder = f"{kind.capitalize()}-{part}_P_{p:05d}_LEFT_CC"
        written = root / "incoming" / f"{k}.dcm"
        row = _cbis_row(kind, f"P_{p:05d}", folder, dicom(written, k), pathology, k)
        target = root / row["image file path"]
        if k % 2:  # an NBIA download: other folder names, matched on the SeriesInstanceUID in the header
            target = root / "CBIS-DDSM" / folder / "07-20-2016-DDSM-1234" / "1.000000-full mammogram-24515" / "1-1.dcm"
        target.parent.mkdir(parents=True)
        written.rename(target)
        (train if part == "Training" else test).append(row)
        if p == 1:  # a second abnormality on the same image, with its ROI mask
            mask = root / "masks" / "P1-roi.dcm"
            y, x = np.mgrid[0:128, 0:96]
            mask.parent.mkdir(parents=True)
            dicom_io.write_mammogram(mask, ((y > 50) & (y < 80) & (x < 30)).astype(np.uint16) * 255,
                                     dicom_io.SyntheticDicomMeta("mask", 500, "CC", "L", 0.1, bits_stored=8))
            train.append({**row, "pathology": "BENIGN", "abnormality id": 2, "ROI mask file path": "masks/P1-roi.dcm"})
        if p == 5:
            train.append({**row, "pathology": "MALIGNANT", "abnormality id": 2})
    table(root / "mass_case_description_train_set.csv", train)
    table(root / "csv" / "calc_case_description_test_set.csv", test)
    return root


def test_cbis_official_split_labels_and_series_matching(tmp_path: Path) -> None:
    root = cbis(tmp_path / "cbis")
    data = load("cbis-ddsm", root, tmp_path, roi_masks=True)
    check(data, 13, 7, tuple(f"P_{p:05d}" for p in range(1, 13)))
    assert data.meta["skipped"] == [] and "MALIGNANT" in data.meta["positive"]
    assert data.meta["moved_to_test"] == 1 and data.meta["split_source"].startswith("official train/test")
    counts = {s: int((data.splits == s).sum()) for s in ("train", "val", "test")}
    assert counts == {"train": 5, "val": 2, "test": 6}
    assert set(data.labels[data.splits == "val"]) == {0, 1} and set(data.labels[data.splits == "test"]) == {0, 1}
    assert int(data.masks.reshape(13, -1).any(1).sum()) == 1  # only P_00001's image has a ROI mask
    without = load("cbis-ddsm", root, tmp_path, abnormalities=["mass"])
    assert len(without) == 8 and int(without.labels.sum()) == 5 and not without.masks.any()


# --- VinDr-Mammo: BI-RADS options, official split, boxes as masks -------------------------------------------------

def vindr(root: Path) -> Path:
    plan = {0: (5, 1), 1: (5, 1), 2: (5, 1), 3: (5, 1), 4: (1, 1), 5: (1, 1), 6: (1, 1), 7: (1, 1), 8: (4, 1),
            9: (3, 2)}
    rows, findings = [], []
    for s, categories in plan.items():
        for j, (side, category) in enumerate(zip("LR", categories)):
            k = 2 * s + j
            study, image = f"study{s:03d}secret", f"image{k:03d}"
            dicom(root / "images" / study / f"{image}.dicom", k, side)
            rows.append({"study_id": study, "series_id": "x", "image_id": image, "laterality": side,
                         "view_position": "CC", "height": 128, "width": 96, "breast_birads": f"BI-RADS {category}",
                         "breast_density": "DENSITY C", "split": "test" if s in (2, 6, 9) else "training"})
            box = (5.0, 40.0, 30.0, 80.0) if category >= 4 else ("", "", "", "")
            findings.append({"image_id": image, "study_id": study, "finding_categories": "['Mass']" if category >= 4
                             else "['No Finding']", **dict(zip(("xmin", "ymin", "xmax", "ymax"), box))})
    table(root / "breast-level_annotations.csv", rows)
    table(root / "finding_annotations.csv", findings)
    return root


def test_vindr_birads_options_split_and_box_masks(tmp_path: Path) -> None:
    root = vindr(tmp_path / "vindr")
    data = load("vindr-mammo", root, tmp_path)
    check(data, 17, 4, tuple(f"study{s:03d}secret" for s in range(10)))
    assert "BI-RADS in [5]" in data.meta["positive"] and "BI-RADS in [1]" in data.meta["positive"]
    assert data.meta["excluded_rows"] == {"BI-RADS 2": 1, "BI-RADS 3": 1, "BI-RADS 4": 1}
    has_mask = data.masks.reshape(len(data), -1).any(1)
    assert (has_mask == (data.labels == 1)).all()
    assert set(data.splits[data.labels == 1]) == {"train", "val", "test"}
    wider = load("vindr-mammo", root, tmp_path, positive_birads=[4, 5], masks=False)
    assert len(wider) == 18 and int(wider.labels.sum()) == 5 and not wider.masks.any()
    with pytest.raises(BenchmarkError, match="must not overlap"):
        load("vindr-mammo", root, tmp_path, positive_birads=[1, 5])


# --- INbreast: ';' CSV, Bi-Rads 4a-6 positive, 3 excluded, patients from the file-name hash ------------------------

def inbreast(root: Path) -> Path:
    categories = {0: ("4a", "1"), 1: ("5", "1"), 2: ("6", "2"), 3: ("3", "2"), 4: ("1", "2"), 5: ("1", "1"),
                  6: ("2", "1"), 7: ("1", "2")}
    rows = []
    for p, pair in categories.items():
        for j, (side, category) in enumerate(zip("LR", pair)):
            k = 2 * p + j
            name = str(50000000 + k)
            dicom(root / "AllDICOMs" / f"{name}_hash{p:02d}secret_MG_{side}_CC_ANON.dcm", k, side)
            rows.append({"Patient ID": "removed", "Patient age": "", "Laterality": side, "View": "CC",
                         "Acquisition date": "201001", "File Name": name, "ACR": "2", "Bi-Rads": category})
    table(root / "INbreast.csv", rows, delimiter=";")
    return root


def test_inbreast_birads_and_patients(tmp_path: Path) -> None:
    root = inbreast(tmp_path / "inbreast")
    data = load("inbreast", root, tmp_path)
    check(data, 15, 3, tuple(f"hash{p:02d}secret" for p in range(8)))
    assert data.meta["excluded_rows"] == {"Bi-Rads 3": 1} and "Bi-Rads 3: excluded" in data.meta["positive"]
    assert len(set(data.patients)) == 8 and data.splits is None
    assert len(load("inbreast", root, tmp_path, birads3="negative")) == 16
    salted = load("inbreast", root, tmp_path, id_salt="site secret")
    assert not set(salted.ids) & set(data.ids) and not set(salted.patients) & set(data.patients)


# --- CMMD: labels per breast, laterality from the DICOM header, CSV export or NBIA metadata ------------------------

def cmmd(root: Path, nbia: bool) -> Path:
    clinical, locations = [], []
    for s in range(1, 9):
        subject = f"D1-{s:04d}"
        folder = Path("CMMD") / subject / "07-18-2010-NA-NA-79377" / "1.000000-NA-70244"
        for j, side in enumerate("RL"):  # 1-1.dcm is the right breast: nothing but the header tells
            dicom(root / folder / f"1-{j + 1}.dcm", 2 * s + j, side, phi=s)
        locations.append({"Series UID": "1.2.3", "Subject ID": subject, "File Location": f"./{folder}"})
        if s <= 4:
            clinical.append({"ID1": subject, "LeftRight": "L", "Age": 50, "number": 1, "abnormality": "mass",
                             "classification": "Malignant", "subtype": "Luminal A"})
        if s == 1 or s > 4:
            clinical.append({"ID1": subject, "LeftRight": "R", "Age": 50, "number": 1, "abnormality": "calcification",
                             "classification": "Benign", "subtype": ""})
    table(root / "CMMD_clinicaldata_revision.csv", clinical)
    if nbia:
        (root / "CMMD").rename(root / "elsewhere")
        for row in locations:
            row["File Location"] = row["File Location"].replace("./CMMD", "./elsewhere")
        table(root / "metadata.csv", locations)
    return root


@pytest.mark.parametrize("nbia", [False, True])
def test_cmmd_labels_by_image_laterality(tmp_path: Path, nbia: bool) -> None:
    data = load("cmmd", cmmd(tmp_path / "cmmd", nbia), tmp_path)
    check(data, 9, 4)
    assert data.meta["excluded_after_reading"] == 7 and len(set(data.patients)) == 8
    assert "Malignant" in data.meta["positive"] and "ImageLaterality" in data.meta["positive"]


def test_cmmd_xlsx_without_openpyxl_says_what_to_do(tmp_path: Path, monkeypatch) -> None:
    root = cmmd(tmp_path / "cmmd", False)
    (root / "CMMD_clinicaldata_revision.csv").unlink()
    (root / "CMMD_clinicaldata_revision.xlsx").write_bytes(b"PK\x03\x04 not really a workbook")
    monkeypatch.setitem(sys.modules, "openpyxl", None)
    with pytest.raises(BenchmarkError) as info:
        load("cmmd", root, tmp_path)
    assert "CMMD_clinicaldata_revision.xlsx" in str(info.value) and "pip install openpyxl" in str(info.value)
    assert "CMMD_clinicaldata_revision.csv" in str(info.value)


# --- dicom-folder: any columns, official split column, patients from the (hashed) DICOM PatientID -----------------

def folder_set(root: Path) -> Path:
    rows = []
    for k in range(16):
        patient = k // 2
        dicom(root / "cases" / f"case{k}.dcm", k, "LR"[k % 2], phi=patient)
        rows.append({"filename": f"cases/case{k}.dcm", "diagnosis": "Malignant" if patient % 2 else "benign",
                     "fold": "test" if patient in (0, 1) else "train", "mrn": f"mrn{patient}"})
    rows += [{**rows[0], "filename": "cases/unlabelled.dcm", "diagnosis": ""}, dict(rows[1])]  # + a duplicate
    table(root / "meta" / "labels.csv", rows)
    return root


@pytest.mark.parametrize("patient_column", [None, "mrn"])
def test_dicom_folder_columns_split_and_patients(tmp_path: Path, patient_column: str | None) -> None:
    root = folder_set(tmp_path / "folder")
    extra = {"patient_column": patient_column} if patient_column else {}
    data = load("dicom-folder", root, tmp_path, labels="meta/labels.csv", file_column="filename",
                label_column="diagnosis", split_column="fold", positive_values=["MALIGNANT"], **extra)
    check(data, 16, 8, tuple(f"mrn{p}" for p in range(8)))
    assert len(set(data.patients)) == 8 and data.meta["unlabelled_rows"] == 1 and data.meta["duplicate_rows"] == 1
    assert (data.splits == "test").sum() == 4 and "val" in set(data.splits)


def test_dicom_folder_bad_split_value_names_file_line_and_column(tmp_path: Path) -> None:
    root = folder_set(tmp_path / "folder")
    text = (root / "meta" / "labels.csv").read_text().replace(",train,", ",holdout,", 1)
    (root / "meta" / "labels.csv").write_text(text)
    with pytest.raises(BenchmarkError, match=r"labels.csv: line \d+: column 'fold' has 'holdout'"):
        load("dicom-folder", root, tmp_path, labels="meta/labels.csv", file_column="filename",
             label_column="diagnosis", split_column="fold")


# --- errors common to every adapter -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", REAL)
def test_missing_root_or_label_file_is_one_line(tmp_path: Path, name: str) -> None:
    entry = get_component("datasets", name).obj
    with pytest.raises(BenchmarkError) as info:
        entry(spec(name), tmp_path)
    assert "dataset.options.root" in str(info.value) and name in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(BenchmarkError, match="is not a folder"):
        entry(spec(name, root=str(tmp_path / "nowhere")), tmp_path)
    (tmp_path / "empty").mkdir()
    extra = {"labels": "labels.csv"} if name == "dicom-folder" else {}
    with pytest.raises(BenchmarkError) as info:
        entry(spec(name, root=str(tmp_path / "empty"), **extra), tmp_path)
    assert "label file not found" in str(info.value) and str(tmp_path / "empty") in str(info.value)
    with pytest.raises(BenchmarkError, match=f"dataset.options.colour is not an option of {name}"):
        entry(spec(name, root=str(tmp_path / "empty"), colour=1), tmp_path)


def test_missing_column_and_unreadable_csv_name_the_file(tmp_path: Path) -> None:
    root = tmp_path / "rsna"
    root.mkdir()
    (root / "train.csv").write_text("patient_id,image_id,cancerous\n1,2,0\n")
    with pytest.raises(BenchmarkError, match=r"train.csv: column 'cancer' missing"):
        load("rsna-screening", root, tmp_path)
    (root / "train.csv").write_text('patient_id,image_id,cancer\n"' + "x" * 200_000 + "\n")
    with pytest.raises(BenchmarkError, match=r"train.csv: unreadable CSV"):
        load("rsna-screening", root, tmp_path)
    (root / "train.csv").write_text("patient_id,image_id,cancer\np,i,maybe\n")
    with pytest.raises(BenchmarkError, match=r"train.csv: line 2: column 'cancer' has 'maybe'"):
        load("rsna-screening", root, tmp_path)


def test_skip_bad_in_config_and_cli(tmp_path: Path) -> None:
    raw = tiny_raw(tmp_path)
    assert parse_config(raw).dataset.skip_bad is True
    raw["dataset"]["skip_bad"] = False
    assert parse_config(raw).dataset.skip_bad is False
    raw["dataset"]["skip_bad"] = "yes"
    with pytest.raises(BenchmarkError, match="dataset.skip_bad"):
        parse_config(raw)
    assert _parser().parse_args(["run", "--no-skip-bad"]).skip_bad is False
    assert _parser().parse_args(["run"]).skip_bad is None
