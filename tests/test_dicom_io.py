"""DICOM writer and reader: tags, round trip, inversion, windowing, robust window, geometry, one-line errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.encaps import encapsulate
from pydicom.pixels import get_decoder
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian, JPEGLosslessSV1
from scipy import ndimage

from benchmark.data.dicom_io import (
    MG_FOR_PRESENTATION,
    MG_FOR_PROCESSING,
    REASON_CHARS,
    SYNTHETIC_COMMENT,
    SyntheticDicomMeta,
    crop_flip_resize,
    load_pixels,
    quantize,
    read_mammogram,
    reason,
    transform_mask,
    write_mammogram,
)
from benchmark.errors import BenchmarkError


def _breast(h: int = 120, w: int = 90, chest_wall_right: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """A half-ellipse 'breast' on a zero background with a bright square marker, and the marker's mask."""
    y, x = np.mgrid[0:h, 0:w].astype(float)
    wall = w - 1 if chest_wall_right else 0
    inside = ((x - wall) / 55) ** 2 + ((y - h / 2) / 50) ** 2 < 1
    img = np.where(inside, 0.35 + 0.1 * np.sin(y / 7), 0.0)
    mask = np.zeros((h, w), np.uint8)
    mask[45:57, 50:62] = 1
    img[mask == 1] = 0.95
    return img, mask


def _meta(**changes: object) -> SyntheticDicomMeta:
    base = {"image_id": "img-1", "patient_index": 7, "view": "CC", "laterality": "R", "pixel_spacing_mm": 0.8}
    base.update(changes)
    return SyntheticDicomMeta(**base)


def _write(tmp_path: Path, name: str = "a.dcm", image: np.ndarray | None = None, **meta: object) -> Path:
    path = tmp_path / name
    image = _breast()[0] if image is None else image
    write_mammogram(path, quantize(image, int(meta.get("bits_stored", 12))), _meta(**meta))
    return path


def _error(path: Path, **kwargs: object) -> str:
    with pytest.raises(BenchmarkError) as info:
        load_pixels(path, **kwargs)
    message = str(info.value)
    assert path.name not in message and str(path) not in message and "\n" not in message
    return message


def test_round_trip_tags_and_pixels(tmp_path: Path) -> None:
    image = _breast()[0]
    path = _write(tmp_path, image=image)
    assert path.read_bytes()[128:132] == b"DICM"
    ds = pydicom.dcmread(path)
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.file_meta.MediaStorageSOPClassUID == MG_FOR_PRESENTATION == ds.SOPClassUID
    assert (ds.Modality, ds.PhotometricInterpretation, ds.ViewPosition, ds.ImageLaterality) == \
        ("MG", "MONOCHROME2", "CC", "R")
    assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation, ds.SamplesPerPixel) == \
        (16, 12, 11, 0, 1)
    assert [float(v) for v in ds.ImagerPixelSpacing] == [0.8, 0.8] == [float(v) for v in ds.PixelSpacing]
    assert ds.ImageComments == SYNTHETIC_COMMENT and ds.BurnedInAnnotation == "NO"
    assert ds.PatientIdentityRemoved == "YES" and "SYNTHETIC" in ds.DeidentificationMethod
    assert str(ds.PatientName) == "SYNTHETIC^7" and ds.PatientID == "SYN000007"
    assert ds.pixel_array.dtype == np.uint16
    np.testing.assert_array_equal(ds.pixel_array, quantize(image, 12))
    arr, info = load_pixels(path)
    np.testing.assert_allclose(arr, quantize(image, 12) / 4095.0, atol=1e-6)
    assert info["voi"] == "window" and not info["inverted"] and info["synthetic"]
    assert info["pixel_spacing_mm"] == pytest.approx(0.8)


def test_fourteen_bit_and_identical_reruns(tmp_path: Path) -> None:
    a = _write(tmp_path, "a.dcm", bits_stored=14, seed=3)
    b = _write(tmp_path, "b.dcm", bits_stored=14, seed=3)
    c = _write(tmp_path, "c.dcm", bits_stored=14, seed=4)
    assert a.read_bytes() == b.read_bytes()  # deterministic UIDs: a rerun writes the same file
    ds_a, ds_c = pydicom.dcmread(a), pydicom.dcmread(c)
    assert (ds_a.BitsStored, ds_a.HighBit) == (14, 13) and int(ds_a.pixel_array.max()) <= 2 ** 14 - 1
    assert ds_a.SOPInstanceUID != ds_c.SOPInstanceUID and ds_a.StudyInstanceUID != ds_c.StudyInstanceUID


def test_info_holds_no_patient_identifiers(tmp_path: Path) -> None:
    _, info = read_mammogram(_write(tmp_path), 32)
    text = repr(info).upper()
    assert "SYNTHETIC^" not in text and "SYN000007" not in text
    assert not any("patient" in key.lower() or "birth" in key.lower() for key in info)


def test_monochrome1_is_inverted(tmp_path: Path) -> None:
    image = _breast()[0]
    m2 = _write(tmp_path, "m2.dcm", image=image)
    m1 = _write(tmp_path, "m1.dcm", image=image, photometric="MONOCHROME1")
    ds = pydicom.dcmread(m1)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    np.testing.assert_array_equal(ds.pixel_array, 4095 - quantize(image, 12))
    a2, i2 = load_pixels(m2)
    a1, i1 = load_pixels(m1)
    assert i1["inverted"] and not i2["inverted"]
    np.testing.assert_allclose(a1, a2, atol=1e-6)


@pytest.mark.parametrize("function", ["LINEAR", "SIGMOID"])
def test_voi_window_is_applied(tmp_path: Path, function: str) -> None:
    ramp = np.tile(np.linspace(0, 1, 256), (16, 1))
    path = _write(tmp_path, image=ramp, window=(2048.0, 1024.0), voi_function=function)
    arr, info = load_pixels(path)
    x = quantize(ramp, 12).astype(float)
    if function == "LINEAR":  # DICOM PS3.3 C.11.2.1.2.1
        expected = np.clip((x - 2047.5) / 1023 + 0.5, 0, 1)
    else:
        expected = 1 / (1 + np.exp(-4 * (x - 2048) / 1024))
    np.testing.assert_allclose(arr, expected, atol=1e-5)
    assert info["voi"] == "window" and info["voi_function"] == function
    assert arr[:, :60].max() == 0.0 or function == "SIGMOID"


def test_crop_flip_resize_keeps_mask_aligned() -> None:
    image, mask = _breast(chest_wall_right=True)
    out, info = crop_flip_resize(image.astype(np.float32), 48)
    small = transform_mask(mask, info)
    assert out.shape == small.shape == (48, 48) and out.dtype == np.float32 and small.dtype == np.uint8
    assert info["flipped"] and out.min() >= 0 and out.max() <= 1
    assert out[:, 0].sum() > out[:, -1].sum()  # chest wall now on the left
    bright = out > 0.8
    overlap = (bright & (small == 1)).sum() / (bright | (small == 1)).sum()
    assert overlap > 0.6
    centroid = np.argwhere(small == 1).mean(0)
    assert np.allclose(centroid, np.argwhere(bright).mean(0), atol=1.0)
    left, _ = crop_flip_resize(_breast(chest_wall_right=False)[0].astype(np.float32), 48)
    assert np.abs(left - out).mean() < 0.02  # both lateralities end up the same way round


def test_label_masks_keep_their_values() -> None:
    image, mask = _breast()
    mask[80:90, 70:80] = 2
    _, info = crop_flip_resize(image.astype(np.float32), 64)
    assert set(np.unique(transform_mask(mask, info))) == {0, 1, 2}


def test_read_mammogram_end_to_end(tmp_path: Path) -> None:
    arr, info = read_mammogram(_write(tmp_path), 40)
    assert arr.shape == (40, 40) and arr.dtype == np.float32
    assert info["size"] == 40 and info["flipped"] and info["view"] == "CC" and info["laterality"] == "R"
    assert len(info["crop_box"]) == 4 and info["original_shape"] == (120, 90)


def test_not_dicom(tmp_path: Path) -> None:
    path = tmp_path / "notes.dcm"
    path.write_text("patient list, definitely not an image\n" * 20)
    assert "not a DICOM" in _error(path)


def test_missing_file(tmp_path: Path) -> None:
    assert "cannot open" in _error(tmp_path / "nowhere.dcm")


@pytest.mark.parametrize("keep", [0.5, 300])
def test_truncated(tmp_path: Path, keep: float) -> None:
    path = _write(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: int(keep * len(data)) if keep < 1 else int(keep)])
    assert "truncated" in _error(path)


def test_corrupt_header(tmp_path: Path) -> None:
    path = tmp_path / "garbage.dcm"
    path.write_bytes(b"\0" * 128 + b"DICM" + np.random.default_rng(0).bytes(600))
    assert "corrupt" in _error(path)


def test_wrong_modality_and_override(tmp_path: Path) -> None:
    path = _write(tmp_path)
    ds = pydicom.dcmread(path)
    ds.Modality = "CT"
    ds.save_as(path)
    message = _error(path)
    assert "Modality" in message and "CT" in message
    arr, info = load_pixels(path, allowed_modalities=None)
    assert info["modality"] == "CT" and arr.shape == (120, 90)


def test_missing_pixel_data(tmp_path: Path) -> None:
    path = _write(tmp_path)
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(path)
    assert "pixel data" in _error(path)


def test_for_processing_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path)
    ds = pydicom.dcmread(path)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = MG_FOR_PROCESSING
    ds.save_as(path)
    assert "For Processing" in _error(path)
    load_pixels(path, allow_for_processing=True)


@pytest.mark.skipif(get_decoder(JPEGLosslessSV1).is_available, reason="a JPEG Lossless decoder is installed")
def test_compressed_without_decoder_names_the_packages(tmp_path: Path) -> None:
    path = _write(tmp_path)
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = JPEGLosslessSV1
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xc3" + b"\0" * 64])
    ds["PixelData"].VR = "OB"
    ds.save_as(path)
    message = _error(path)
    assert "compressed" in message and "pylibjpeg" in message and "gdcm" in message


# --- robust window (no VOI window or LUT) -------------------------------------------------------------------------

def _tissue(h: int = 160, w: int = 120) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A breast of textured tissue (mean 0.4, sd 0.07) on a dark background, its mask and a 2.3% lesion disk."""
    y, x = np.mgrid[0:h, 0:w].astype(float)
    breast = (x / 100) ** 2 + ((y - h / 2) / 70) ** 2 < 1
    noise = ndimage.gaussian_filter(np.random.default_rng(0).normal(size=(h, w)), 3)
    image = np.clip(np.where(breast, 0.4 + 0.07 * noise / noise.std(), 0.03), 0, 1)
    return image, breast, (x - 40) ** 2 + (y - h / 2) ** 2 < 9 ** 2


def _without_window(path: Path) -> Path:
    ds = pydicom.dcmread(path)
    del ds.WindowCenter, ds.WindowWidth, ds.VOILUTFunction
    ds.save_as(path)
    return path


@pytest.mark.parametrize("bits", [12, 16])
@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
def test_a_lesion_does_not_change_the_tissue_level(tmp_path: Path, bits: int, photometric: str) -> None:
    image, breast, lesion = _tissue()
    rest = breast & ~lesion
    new, old = [], []
    for name, pixels in (("plain.dcm", image), ("lesion.dcm", np.where(lesion, 0.95, image))):
        path = _without_window(_write(tmp_path, name, image=pixels, bits_stored=bits, photometric=photometric))
        arr, info = load_pixels(path)
        assert info["voi"] == "robust" and info["voi_function"] == "" and arr.dtype == np.float32
        new.append(float(np.median(arr[rest])))
        raw = pydicom.dcmread(path).pixel_array.astype(float)  # the former min/max scaling, by hand
        scaled = (raw - raw.min()) / (raw.max() - raw.min())
        old.append(float(np.median((1 - scaled if photometric == "MONOCHROME1" else scaled)[rest])))
    assert abs(new[1] - new[0]) <= 0.02  # measured 0.015 (12 and 16 bits, either photometric)
    assert abs(old[1] - old[0]) > 0.15  # measured 0.19: min/max scaling darkens the breast around a bright lesion
    assert 0.6 < new[0] < 0.8 and np.median(load_pixels(path)[0][~breast]) == 0.0


def test_robust_window_maps_the_breast_and_keeps_monochrome1_bright(tmp_path: Path) -> None:
    image, breast, _ = _tissue()
    m2 = load_pixels(_without_window(_write(tmp_path, "m2.dcm", image=image)))[0]
    m1 = load_pixels(_without_window(_write(tmp_path, "m1.dcm", image=image, photometric="MONOCHROME1")))[0]
    np.testing.assert_allclose(m1, m2, atol=1e-6)
    assert np.percentile(m2[breast], 95) == pytest.approx(0.9, abs=0.01)


# --- every header field the reader uses: a one-line reason naming it ---------------------------------------------

def _set(**fields: object):
    """Set fields; text (DS, IS, CS) as raw bytes, so that pydicom writes a malformed value as it is."""
    def change(ds: pydicom.Dataset) -> None:
        for keyword, value in fields.items():
            if isinstance(value, int):
                setattr(ds, keyword, value)
                continue
            data = "\\".join(value if isinstance(value, list) else [value]).encode()
            tag = Tag(keyword)
            ds[tag] = RawDataElement(tag, dictionary_VR(tag), len(data + b" " * (len(data) % 2)),
                                     data + b" " * (len(data) % 2), 0, False, True)
    return change


def _bad_voi_lut(ds: pydicom.Dataset) -> None:
    item = pydicom.Dataset()
    item.LUTDescriptor = [4096, 0, 12]
    ds.VOILUTSequence = [item]


@pytest.mark.parametrize("change, expected", [
    (_set(WindowWidth="0"), "WindowWidth is 0; expected >= 1"),
    (_set(WindowWidth="NaN"), "WindowWidth"),
    (_set(WindowCenter="abc"), "WindowCenter"),
    (_set(VOILUTFunction="CUBIC"), "VOILUTFunction is CUBIC"),
    (_set(NumberOfFrames="many"), "NumberOfFrames"),
    (_set(NumberOfFrames="3"), "multi-frame"),
    (_bad_voi_lut, "VOILUTSequence item has no LUTData"),
    (_set(PixelSpacing=["0.1", "abc"]), "PixelSpacing"),
    (_set(ImagerPixelSpacing=["0", "0.1"]), "ImagerPixelSpacing"),
    (_set(BitsStored=20), "BitsStored is 20"),
    (_set(BitsAllocated=12), "BitsAllocated"),
    (_set(HighBit=15), "HighBit"),
    (_set(PixelRepresentation=3), "PixelRepresentation"),
    (_set(SamplesPerPixel=3), "SamplesPerPixel"),
    (_set(Rows=0), "Rows"),
    (_set(RescaleSlope="abc", RescaleIntercept="0"), "RescaleSlope"),
    (_set(RescaleSlope="0", RescaleIntercept="0"), "RescaleSlope is 0"),
    (_set(PresentationLUTShape="SIDEWAYS"), "PresentationLUTShape"),
])
def test_malformed_header_fields_are_named(tmp_path: Path, change, expected: str) -> None:
    path = _write(tmp_path, "DOE^JANE_MRN123456.dcm")
    ds = pydicom.dcmread(path)
    change(ds)
    ds.save_as(path)
    assert expected in _error(path)


@pytest.mark.parametrize("value, expected", [(0, "all pixels 0"), (1234, "all pixels 1234")])
def test_constant_and_black_images_are_refused(tmp_path: Path, value: int, expected: str) -> None:
    path = tmp_path / "flat.dcm"
    write_mammogram(path, np.full((40, 30), value, np.uint16), _meta())
    message = _error(path)
    assert "constant image" in message and expected in message and "nothing to learn from" in message


def test_any_exception_becomes_a_one_line_reason_without_the_path(tmp_path: Path) -> None:
    path = tmp_path / "SMITH^ANN_ACC99887766.dcm"
    assert reason(ValueError(f"bad thing in\n {path}:\tpos 3"), path) == "ValueError: bad thing in <file>: pos 3"
    assert "ACC99887766" not in reason(KeyError(path.name), path)
    assert reason(MemoryError(), path) == "image too large to load (MemoryError)"
    assert len(reason(RuntimeError("x" * 5000), path)) == REASON_CHARS
