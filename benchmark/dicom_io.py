"""Mammography DICOM: write synthetic images as real DICOM MG files; read and preprocess any mammogram to [0,1]."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi_lut, get_decoder
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid
from scipy import ndimage, sparse

from benchmark.errors import BenchmarkError

__all__ = ["MG_FOR_PRESENTATION", "MG_FOR_PROCESSING", "SYNTHETIC_COMMENT", "SyntheticDicomMeta", "quantize",
           "write_mammogram", "load_pixels", "crop_flip_resize", "transform_mask", "read_mammogram"]

MG_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"
MG_FOR_PROCESSING = "1.2.840.10008.5.1.4.1.1.1.2.1"
SYNTHETIC_COMMENT = "SYNTHETIC IMAGE - procedurally generated, not a patient"
_DECODER_HINT = "pip install pylibjpeg pylibjpeg-openjpeg pylibjpeg-libjpeg (or python-gdcm)"
# Row/column directions (DICOM PatientOrientation) for the usual display: L chest wall left, R chest wall right.
_ORIENTATION = {("L", "CC"): ["A", "R"], ("R", "CC"): ["P", "L"], ("L", "MLO"): ["A", "FR"], ("R", "MLO"): ["P", "FL"]}


@dataclass(frozen=True)
class SyntheticDicomMeta:
    """What goes into the header of one synthetic mammogram besides its pixels."""

    image_id: str
    patient_index: int
    view: str  # "CC" or "MLO"
    laterality: str  # "L" or "R"
    pixel_spacing_mm: float
    bits_stored: int = 12
    seed: int = 0
    photometric: str = "MONOCHROME2"  # MONOCHROME1 stores inverted values
    window: tuple[float, float] | None = None  # (center, width); None: the full stored range
    voi_function: str = "LINEAR"
    uid_salt: str = ""  # what else identifies the data set (its options), so that UIDs differ between data sets


def quantize(image: np.ndarray, bits_stored: int) -> np.ndarray:
    """Map display intensities in [0,1] to unsigned integers of bits_stored bits (uint16)."""
    top = 2 ** bits_stored - 1
    return np.rint(np.clip(image, 0.0, 1.0) * top).astype(np.uint16)


def _uid(meta: SyntheticDicomMeta, *parts: object) -> str:
    return generate_uid(entropy_srcs=["synthetic-mammo", meta.uid_salt, str(meta.seed), *map(str, parts)])


def write_mammogram(path: Path, pixels: np.ndarray, meta: SyntheticDicomMeta) -> None:
    """Write stored values (uint16, MONOCHROME2 sense) as a DICOM Part 10 Digital Mammography For Presentation file."""
    if pixels.dtype != np.uint16 or pixels.ndim != 2:
        raise ValueError(f"pixels must be a 2-D uint16 array, got {pixels.dtype} {pixels.shape}")
    top = 2 ** meta.bits_stored - 1
    if meta.photometric == "MONOCHROME1":
        pixels = (top - pixels.astype(np.int32)).astype(np.uint16)
    sop_uid = _uid(meta, "image", meta.image_id)
    file_meta = FileMetaDataset()
    file_meta.MediaStorageSOPClassUID = MG_FOR_PRESENTATION
    file_meta.MediaStorageSOPInstanceUID = sop_uid
    file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = FileDataset(str(path), {}, file_meta=file_meta, preamble=b"\0" * 128)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID, ds.SOPInstanceUID = MG_FOR_PRESENTATION, sop_uid
    ds.StudyInstanceUID = _uid(meta, "study", meta.patient_index)
    ds.SeriesInstanceUID = _uid(meta, "series", meta.patient_index, meta.view)
    ds.FrameOfReferenceUID = _uid(meta, "frame", meta.patient_index, meta.view)
    ds.Modality, ds.Manufacturer = "MG", "SYNTHETIC"
    ds.ManufacturerModelName = "benchmark.synthetic_mammo"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20000101"
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "000000"
    ds.StudyID, ds.AccessionNumber = str(meta.patient_index), ""
    ds.SeriesNumber, ds.InstanceNumber = 1 + (meta.view == "MLO"), 1
    ds.PatientName = f"SYNTHETIC^{meta.patient_index}"
    ds.PatientID = f"SYN{meta.patient_index:06d}"
    ds.PatientBirthDate, ds.PatientSex = "", "F"
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "SYNTHETIC: procedurally generated image, no patient data"
    ds.ImageComments = SYNTHETIC_COMMENT
    ds.BurnedInAnnotation = "NO"
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.BodyPartExamined = "BREAST"
    ds.ViewPosition, ds.ImageLaterality = meta.view, meta.laterality
    ds.PatientOrientation = _ORIENTATION[(meta.laterality, meta.view)]
    spacing = [f"{meta.pixel_spacing_mm:.6g}"] * 2
    ds.ImagerPixelSpacing, ds.PixelSpacing = spacing, spacing
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, meta.photometric
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, meta.bits_stored, meta.bits_stored - 1
    ds.PixelRepresentation = 0
    center, width = meta.window or ((top + 1) / 2, top + 1)
    ds.WindowCenter, ds.WindowWidth = f"{center:.6g}", f"{width:.6g}"
    ds.VOILUTFunction = meta.voi_function
    ds.PresentationLUTShape = "INVERSE" if meta.photometric == "MONOCHROME1" else "IDENTITY"
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)


def _fail(path: Path, what: str) -> BenchmarkError:
    return BenchmarkError(f"{path}: {' '.join(what.split())}")


def _voi_range(ds: Dataset) -> tuple[float, float, str] | None:
    """The output range of pydicom's apply_voi_lut (and "lut" or "window"), or None when it applies nothing."""
    seq = ds.get("VOILUTSequence")
    if seq and seq[0].get("LUTDescriptor") is not None and seq[0].get("LUTData") is not None:
        return 0.0, float(2 ** int(seq[0].LUTDescriptor[2]) - 1), "lut"
    if ds.get("WindowCenter") is None or ds.get("WindowWidth") is None:
        return None
    if ds.get("ModalityLUTSequence"):
        lo, hi = 0.0, float(2 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1)
    elif int(ds.PixelRepresentation) == 0:
        lo, hi = 0.0, float(2 ** int(ds.BitsStored) - 1)
    else:
        lo, hi = -float(2 ** (int(ds.BitsStored) - 1)), float(2 ** (int(ds.BitsStored) - 1) - 1)
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if slope is not None and intercept is not None:
        lo, hi = sorted((lo * float(slope) + float(intercept), hi * float(slope) + float(intercept)))
    return lo, hi, "window"


def _read_dataset(path: Path) -> Dataset:
    """dcmread with one-line errors; files without the 128-byte preamble are accepted if they hold an image."""
    try:
        try:
            return pydicom.dcmread(path)
        except InvalidDicomError:
            ds = pydicom.dcmread(path, force=True)
            if "PixelData" in ds and "Rows" in ds:
                return ds
            raise
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        raise _fail(path, f"cannot open ({type(exc).__name__})") from None
    except InvalidDicomError:
        raise _fail(path, "not a DICOM file (no DICM preamble); check the path or the file type") from None
    except Exception as exc:  # pydicom raises many types on truncated or garbled headers
        raise _fail(path, f"unreadable or truncated DICOM ({type(exc).__name__}: {exc})") from None


def load_pixels(path: Path, allowed_modalities: Collection[str] | None = ("MG",),
                allow_for_processing: bool = False) -> tuple[np.ndarray, dict[str, Any]]:
    """Decode a mammogram to display intensities in [0,1] (bright = dense) after modality LUT, VOI LUT and inversion."""
    path = Path(path)
    ds = _read_dataset(path)
    if "PixelData" not in ds:
        if "SOPClassUID" not in ds:
            raise _fail(path, "corrupt or truncated DICOM: no SOP class and no pixel data could be read")
        name = getattr(ds.SOPClassUID, "name", str(ds.SOPClassUID))
        raise _fail(path, f"DICOM without pixel data (SOP class {name}); not an image, or truncated before the pixels")
    modality = str(ds.get("Modality", "")).upper()
    if allowed_modalities is not None and modality not in {m.upper() for m in allowed_modalities}:
        raise _fail(path, f"Modality is '{modality or 'missing'}', expected {' or '.join(sorted(allowed_modalities))}; "
                          "pass allowed_modalities=None (or list it) to read it anyway")
    if str(ds.get("SOPClassUID", "")) == MG_FOR_PROCESSING and not allow_for_processing:
        raise _fail(path, "Digital Mammography For Processing (raw detector data); use For Presentation images")
    if ds.get("PhotometricInterpretation", "") not in ("MONOCHROME1", "MONOCHROME2"):
        raise _fail(path, f"PhotometricInterpretation '{ds.get('PhotometricInterpretation', 'missing')}' is not "
                          "a greyscale mammogram (MONOCHROME1 or MONOCHROME2)")
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        raise _fail(path, f"multi-frame image ({ds.NumberOfFrames} frames, e.g. tomosynthesis); only 2-D mammograms")
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if syntax is not None and syntax.is_compressed:
        try:
            available = get_decoder(syntax).is_available
        except NotImplementedError:
            available = False
        if not available:
            raise _fail(path, f"pixel data is compressed ({syntax.name}) and no decoder is installed; {_DECODER_HINT}")
    try:
        raw = ds.pixel_array
    except Exception as exc:
        raise _fail(path, f"corrupt or truncated pixel data ({type(exc).__name__}: {exc})") from None
    if raw.ndim != 2:
        raise _fail(path, f"pixel array has shape {raw.shape}; expected one 2-D greyscale image")
    padding = ds.get("PixelPaddingValue")
    pad_mask = raw == padding if padding is not None else None
    arr = apply_modality_lut(raw, ds)
    voi = _voi_range(ds)
    arr = np.asarray(apply_voi_lut(arr, ds) if voi is not None else arr, dtype=np.float64)
    lo, hi = voi[:2] if voi is not None else (float(arr.min()), float(arr.max()))
    arr = np.clip((arr - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    # MONOCHROME1 (or a MONOCHROME2 image with an INVERSE presentation LUT) shows dense tissue dark: flip it.
    inverted = ds.PhotometricInterpretation == "MONOCHROME1" or ds.get("PresentationLUTShape") == "INVERSE"
    if inverted:
        arr = 1.0 - arr
    if pad_mask is not None:
        arr[pad_mask] = 0.0
    spacing = ds.get("ImagerPixelSpacing") or ds.get("PixelSpacing")
    info = {"modality": modality, "sop_class_uid": str(ds.get("SOPClassUID", "")),
            "photometric": str(ds.PhotometricInterpretation), "inverted": bool(inverted),
            "voi": voi[2] if voi is not None else "none",
            "voi_function": str(ds.get("VOILUTFunction", "LINEAR")) if voi is not None and voi[2] == "window" else "",
            "bits_stored": int(ds.get("BitsStored", 0) or 0), "view": str(ds.get("ViewPosition", "")),
            "laterality": str(ds.get("ImageLaterality", ds.get("Laterality", ""))),
            "pixel_spacing_mm": float(spacing[0]) if spacing else None, "original_shape": tuple(raw.shape),
            "synthetic": SYNTHETIC_COMMENT in str(ds.get("ImageComments", ""))}
    return arr.astype(np.float32), info


def _resample_matrix(n_in: int, n_out: int) -> sparse.csr_matrix:
    """(n_out, n_in) weights: area averaging when shrinking, linear interpolation when enlarging."""
    rows = np.arange(n_out)
    if n_out <= n_in:
        scale = n_in / n_out
        lo, hi = rows * scale, (rows + 1) * scale
        j0, j1 = np.floor(lo).astype(int), np.minimum(np.ceil(hi).astype(int), n_in)
        width = int((j1 - j0).max())
        cols = np.minimum(j0[:, None] + np.arange(width)[None, :], n_in - 1)
        w = np.clip(np.minimum(hi[:, None], cols + 1) - np.maximum(lo[:, None], cols), 0, None)
        w[(j0[:, None] + np.arange(width)[None, :]) >= n_in] = 0
        w /= w.sum(1, keepdims=True)
        return sparse.csr_matrix((w.ravel(), (np.repeat(rows, width), cols.ravel())), shape=(n_out, n_in))
    pos = np.clip((rows + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
    j0 = np.floor(pos).astype(int)
    j1, frac = np.minimum(j0 + 1, n_in - 1), pos - j0
    return sparse.csr_matrix((np.r_[1 - frac, frac], (np.r_[rows, rows], np.r_[j0, j1])), shape=(n_out, n_in))


def _breast_box(image: np.ndarray) -> tuple[int, int, int, int]:
    """Bounding box (y0, y1, x0, x1) of the largest bright connected region (the breast)."""
    step = max(1, max(image.shape) // 512)
    small = image[::step, ::step]
    level = max(0.02, 0.1 * float(np.percentile(small, 99)))
    labels, count = ndimage.label(small > level)
    if count == 0:
        return 0, image.shape[0], 0, image.shape[1]
    sizes = np.bincount(labels.ravel())[1:]
    ys, xs = ndimage.find_objects(labels)[int(np.argmax(sizes))]
    m = 2  # margin in (sub-sampled) pixels
    return (max(0, (ys.start - m) * step), min(image.shape[0], (ys.stop + m) * step),
            max(0, (xs.start - m) * step), min(image.shape[1], (xs.stop + m) * step))


def _geometry_apply(image: np.ndarray, info: dict[str, Any]) -> np.ndarray:
    y0, y1, x0, x1 = info["crop_box"]
    part = image[y0:y1, x0:x1].astype(np.float64)
    if info["flipped"]:
        part = part[:, ::-1]
    (h, w), size = info["resized_shape"], info["size"]
    small = _resample_matrix(part.shape[0], h) @ (_resample_matrix(part.shape[1], w) @ part.T).T
    out = np.zeros((size, size), np.float64)
    top, left = info["pad"]
    out[top:top + h, left:left + w] = small
    return out


def crop_flip_resize(image: np.ndarray, size: int, crop: bool = True,
                     chest_wall_left: bool = True) -> tuple[np.ndarray, dict[str, Any]]:
    """Crop the breast, flip it so the chest wall is on the left, resize keeping aspect and pad to size x size."""
    box = _breast_box(image) if crop else (0, image.shape[0], 0, image.shape[1])
    y0, y1, x0, x1 = box
    part = image[y0:y1, x0:x1]
    half = part.shape[1] // 2
    flipped = bool(chest_wall_left and part[:, part.shape[1] - half:].sum() > part[:, :half].sum())
    scale = size / max(part.shape)
    h, w = max(1, min(size, round(part.shape[0] * scale))), max(1, min(size, round(part.shape[1] * scale)))
    info = {"crop_box": tuple(int(v) for v in box), "flipped": flipped, "scale": float(scale),
            "resized_shape": (h, w), "pad": ((size - h) // 2, 0 if chest_wall_left else (size - w) // 2),
            "size": int(size)}
    out = _geometry_apply(image, info)
    return np.clip(out, 0.0, 1.0).astype(np.float32), info


def transform_mask(mask: np.ndarray, info: dict[str, Any]) -> np.ndarray:
    """Apply the crop, flip, resize and pad recorded in info to a (label) mask; a label stays where it covers >= 50%."""
    out = np.zeros((info["size"], info["size"]), np.uint8)
    for value in np.unique(mask[mask > 0]):
        out[_geometry_apply((mask == value).astype(np.float64), info) >= 0.5] = value
    return out


def read_mammogram(path: Path, size: int, allowed_modalities: Collection[str] | None = ("MG",),
                   allow_for_processing: bool = False, crop: bool = True) -> tuple[np.ndarray, dict[str, Any]]:
    """Read a mammogram DICOM and return a float32 (size, size) array in [0,1] with the steps taken in info."""
    arr, info = load_pixels(path, allowed_modalities, allow_for_processing)
    out, geometry = crop_flip_resize(arr, size, crop=crop)
    info.update(geometry)
    return out, info
