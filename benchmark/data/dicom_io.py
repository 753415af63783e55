"""Mammography DICOM: write synthetic images as real DICOM MG files; read and preprocess any mammogram to [0,1]."""
from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import apply_modality_lut, apply_voi_lut, get_decoder
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian, generate_uid
from scipy import ndimage, sparse

from benchmark.errors import BenchmarkError

__all__ = ["MG_FOR_PRESENTATION", "MG_FOR_PROCESSING", "SYNTHETIC_COMMENT", "SyntheticDicomMeta", "quantize",
           "write_mammogram", "load_pixels", "crop_flip_resize", "transform_mask", "read_mammogram", "reason"]

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
    ds.ManufacturerModelName = "benchmark.data.phantom"
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


REASON_CHARS = 200  # another library's error message is kept to this many characters in a reason
# The robust window of images without a VOI window or LUT (see _robust_window), in display sense (bright = dense):
ROBUST_RANGE_PERCENTILES = (0.5, 99.5)  # the image's range, ignoring outliers
BREAST_THRESHOLD = 0.10  # breast = above the low percentile plus this share of the range
MIN_BACKGROUND_SHARE = 0.05  # with less background than this, black is the low percentile, not the background median
TISSUE_PERCENTILE = 95.0  # this percentile of the breast pixels ...
TISSUE_LEVEL = 0.9  # ... maps to this intensity; brighter values clip at 1
ROBUST_SAMPLE_PIXELS = 1_000_000  # the statistics come from a regular sub-grid of at most about this many pixels
_WINDOW_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")
_VOI_LUT_DEPTHS = (8, *range(10, 17))  # PS3.3 C.8.11.3.1.5 (and what pydicom applies)


def _scrub(text: str, path: Path | None) -> str:
    """text with the file's path and name replaced by <file>: file names often carry patient ids."""
    if path is None:
        return text
    names = {str(path), path.as_posix(), str(path.absolute()), path.name}
    try:
        names.add(str(path.resolve()))
    except (OSError, RuntimeError):
        pass
    for name in sorted(filter(None, names), key=len, reverse=True):
        text = text.replace(name, "<file>")
    return text


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def reason(exc: BaseException, path: Path | None = None) -> str:
    """One line saying what went wrong, the file's path and name replaced by <file>; foreign messages are clipped.

    A message of another library (pydicom, numpy) is kept to REASON_CHARS characters; the reader's own reasons,
    which may quote one, to twice that.
    """
    if isinstance(exc, MemoryError):
        text = "image too large to load (MemoryError)"
    elif isinstance(exc, BenchmarkError):
        text = str(exc)
    else:
        text = _clip(" ".join(_scrub(f"{type(exc).__name__}: {exc}", path).split()), REASON_CHARS)
    text = "".join(c if c.isprintable() else " " for c in _scrub(text, path))  # no control bytes of a bad value
    return _clip(_scrub(" ".join(text.split()), path), 2 * REASON_CHARS)


@contextmanager
def _one_file(path: Path) -> Iterator[None]:
    """Any exception while reading one file becomes a BenchmarkError whose one-line reason names no path."""
    try:
        yield
    except Exception as exc:
        raise BenchmarkError(reason(exc, path)) from None


def _shown(value: Any) -> str:
    text = " ".join("".join(c if c.isprintable() else "?" for c in str(value)).split())
    return text if len(text) <= 40 else text[:37] + "..."


def _bad(name: str, value: Any, expected: str) -> BenchmarkError:
    return BenchmarkError(f"{name} is {_shown(value) or 'empty'}; expected {expected}")


def _value(ds: Dataset, name: str) -> Any:
    """The element's value, None when absent or empty; one pydicom cannot convert is a reason naming the field."""
    try:
        value = ds.get(name)
    except Exception as exc:
        raise BenchmarkError(f"{name} cannot be read ({reason(exc)})") from None
    if isinstance(value, (str, bytes, list, tuple, MultiValue, Sequence)) and len(value) == 0:
        return None
    return value


def _numbers(ds: Dataset, name: str) -> list[float] | None:
    """The field's finite numbers (None when absent)."""
    value = _value(ds, name)
    if value is None:
        return None
    try:
        items = [value] if isinstance(value, (str, bytes, int, float)) else list(value)
        numbers = [float(v) for v in items]
    except (TypeError, ValueError):
        raise _bad(name, value, "a number") from None
    if not numbers or not all(np.isfinite(numbers)):
        raise _bad(name, value, "finite numbers")
    return numbers


def _integer(ds: Dataset, name: str, lo: int, hi: int, default: int | None = None) -> int | None:
    """The field as one integer in [lo, hi]; default when absent (a missing field without default is a reason)."""
    numbers = _numbers(ds, name)
    if numbers is None:
        if default is None:
            raise BenchmarkError(f"{name} is missing; expected an integer in [{lo}, {hi}]")
        return default
    if len(numbers) != 1 or not numbers[0].is_integer() or not lo <= numbers[0] <= hi:
        raise _bad(name, _value(ds, name), str(lo) if lo == hi else f"one integer in [{lo}, {hi}]")
    return int(numbers[0])


def _text(ds: Dataset, name: str) -> str:
    """The field as upper-case text ("" when absent)."""
    value = _value(ds, name)
    if value is not None and not isinstance(value, str):
        raise _bad(name, value, "text")
    return (value or "").strip().upper()


def _check_lut(ds: Dataset, name: str, depths: Collection[int]) -> None:
    """A LUT sequence (when present) has a first item with a 3-integer LUTDescriptor and enough LUTData."""
    seq = _value(ds, name)
    if seq is None:
        return
    if not isinstance(seq, Sequence) or not isinstance(seq[0], Dataset):
        raise BenchmarkError(f"{name} is not a sequence of LUT items")
    descriptor = _numbers(seq[0], "LUTDescriptor")
    if descriptor is None or len(descriptor) != 3 or not all(v.is_integer() for v in descriptor):
        raise _bad(f"{name} LUTDescriptor", _value(seq[0], "LUTDescriptor"), "three integers")
    entries, _, depth = (int(v) for v in descriptor)
    if depth not in depths or not 0 <= entries <= 65535:
        raise _bad(f"{name} LUTDescriptor", descriptor, f"entries in [0, 65535] and bits in {sorted(depths)}")
    data = _value(seq[0], "LUTData")
    if data is None:
        raise BenchmarkError(f"{name} item has no LUTData")
    count = len(data) // 2 if isinstance(data, bytes) else len(data) if isinstance(data, (list, MultiValue)) else 1
    if count < (entries or 65536):
        raise BenchmarkError(f"{name} LUTData has {count} entries; its LUTDescriptor says {entries or 65536}")
    if not isinstance(data, bytes):
        values = _numbers(seq[0], "LUTData") or []
        if not all(v.is_integer() and 0 <= v < 2 ** depth for v in values):
            raise BenchmarkError(f"{name} LUTData holds values outside [0, {2 ** depth - 1}]")


def _check_window(ds: Dataset) -> None:
    """WindowCenter and WindowWidth numbers, width > 0 (>= 1 for LINEAR), a known VOILUTFunction."""
    if _value(ds, "VOILUTFunction") is None and "VOILUTFunction" in ds:
        del ds.VOILUTFunction  # an empty (type 3) function means LINEAR
    function = _text(ds, "VOILUTFunction") or "LINEAR"
    center, width = _numbers(ds, "WindowCenter"), _numbers(ds, "WindowWidth")
    if center is None or width is None:
        return
    if function not in _WINDOW_FUNCTIONS:
        raise _bad("VOILUTFunction", function, " or ".join(_WINDOW_FUNCTIONS))
    least = 1.0 if function == "LINEAR" else 0.0
    if width[0] < least or width[0] <= 0:
        raise BenchmarkError(f"WindowWidth is {width[0]:g}; expected {'>= 1' if least else '> 0'} for a "
                             f"{function} window")


def _check_header(ds: Dataset) -> int | None:
    """Check every header field the reader uses (a reason names the field and value); returns PixelPaddingValue."""
    allocated = _integer(ds, "BitsAllocated", 1, 64)
    if allocated not in (8, 16, 32):
        raise _bad("BitsAllocated", allocated, "8, 16 or 32")
    stored = _integer(ds, "BitsStored", 1, allocated)
    _integer(ds, "HighBit", stored - 1, stored - 1, default=stored - 1)  # pixels sit in the low bits
    _integer(ds, "PixelRepresentation", 0, 1)
    _integer(ds, "Rows", 1, 65535)
    _integer(ds, "Columns", 1, 65535)
    _integer(ds, "SamplesPerPixel", 1, 1, default=1)
    frames = _integer(ds, "NumberOfFrames", 1, 2 ** 31 - 1, default=1)
    if frames > 1:
        raise BenchmarkError(f"multi-frame image ({frames} frames, e.g. tomosynthesis); only 2-D mammograms")
    for name in ("RescaleSlope", "RescaleIntercept"):
        numbers = _numbers(ds, name)
        if numbers is not None and (len(numbers) != 1 or (name == "RescaleSlope" and numbers[0] == 0)):
            raise _bad(name, _value(ds, name), "one number" + (", not 0" if name == "RescaleSlope" else ""))
    _check_lut(ds, "ModalityLUTSequence", (8, 16))
    _check_lut(ds, "VOILUTSequence", _VOI_LUT_DEPTHS)
    _check_window(ds)
    if _text(ds, "PresentationLUTShape") not in ("", "IDENTITY", "INVERSE"):
        raise _bad("PresentationLUTShape", _value(ds, "PresentationLUTShape"), "IDENTITY or INVERSE")
    for name in ("ImagerPixelSpacing", "PixelSpacing"):
        numbers = _numbers(ds, name)
        if numbers is not None and (len(numbers) != 2 or min(numbers) <= 0):
            raise _bad(name, _value(ds, name), "two positive numbers (mm)")
    for name in ("ImageLaterality", "Laterality", "ViewPosition", "Modality", "ImageComments"):
        _value(ds, name)
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if syntax is not None and (not isinstance(syntax, UID) or not syntax.is_transfer_syntax):
        raise _bad("TransferSyntaxUID", syntax, "a known transfer syntax")
    return _integer(ds, "PixelPaddingValue", -2 ** 31, 2 ** 32 - 1, default=None) \
        if _value(ds, "PixelPaddingValue") is not None else None


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
        raise BenchmarkError(f"cannot open ({type(exc).__name__})") from None
    except InvalidDicomError:
        raise BenchmarkError("not a DICOM file (no DICM preamble); check the path or the file type") from None
    except MemoryError:
        raise
    except Exception as exc:
        raise BenchmarkError(f"unreadable or truncated DICOM ({reason(exc, path)})") from None


def _check_content(raw: np.ndarray, valid: np.ndarray | None, padding: int | None) -> None:
    """Empty, all-padding and constant images (all black included) are reasons: nothing to learn from."""
    if raw.size == 0:
        raise BenchmarkError("empty image (no pixels)")
    values = raw[valid] if valid is not None else raw
    if values.size == 0:
        raise BenchmarkError(f"every pixel is PixelPaddingValue {padding}: nothing to learn from")
    lo, hi = values.min(), values.max()
    if lo == hi:
        raise BenchmarkError(f"constant image (all pixels {lo}): nothing to learn from")


def _robust_window(display: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    """Scale display values (bright = dense) to [0,1] from the breast's own statistics, not the image's min and max.

    On a regular sub-grid (about ROBUST_SAMPLE_PIXELS, padding excluded): p_lo, p_hi = ROBUST_RANGE_PERCENTILES; the
    breast is every pixel above p_lo + BREAST_THRESHOLD * (p_hi - p_lo), the rest is background. Black (0) is the
    median of the background (p_lo when under MIN_BACKGROUND_SHARE of the pixels are background), and the
    TISSUE_PERCENTILE of the breast maps to TISSUE_LEVEL; brighter values clip at 1. A small bright lesion moves
    neither, so it does not darken the rest of the breast as min/max scaling does (a global brightness cue).
    """
    step = max(1, int(np.sqrt(display.size / ROBUST_SAMPLE_PIXELS)))
    sample = display[::step, ::step]
    sample = sample[valid[::step, ::step]] if valid is not None else sample.ravel()
    if sample.size == 0 or sample.min() == sample.max():
        sample = display[valid] if valid is not None else display.ravel()
    p_lo, p_hi = (float(v) for v in np.percentile(sample, ROBUST_RANGE_PERCENTILES))
    if p_hi <= p_lo:  # over 99% of the pixels share one value: use the full range
        p_lo, p_hi = float(sample.min()), float(sample.max())
    breast = sample > p_lo + BREAST_THRESHOLD * (p_hi - p_lo)
    background = sample[~breast]
    black = float(np.median(background)) if background.size >= MIN_BACKGROUND_SHARE * sample.size else p_lo
    top = float(np.percentile(sample[breast], TISSUE_PERCENTILE)) if breast.any() else p_hi
    if top <= black:
        top = float(sample.max())
    if top <= black:
        raise BenchmarkError("no contrast between breast and background: nothing to learn from")
    return np.clip((display - black) * (TISSUE_LEVEL / (top - black)), 0.0, 1.0)


def load_pixels(path: Path, allowed_modalities: Collection[str] | None = ("MG",),
                allow_for_processing: bool = False) -> tuple[np.ndarray, dict[str, Any]]:
    """Decode a mammogram to display intensities in [0,1] (bright = dense) after modality LUT, VOI LUT and inversion.

    A VOI LUT or window is applied as the header says; without one the robust window of _robust_window is used
    (info["voi"] == "robust"). Any problem, whatever pydicom raises, is a BenchmarkError with a one-line reason
    that names no path (a malformed field is named with its value, e.g. "WindowWidth is 0; expected >= 1 ...").
    """
    path = Path(path)
    with _one_file(path):
        return _load_pixels(path, allowed_modalities, allow_for_processing)


def _load_pixels(path: Path, allowed_modalities: Collection[str] | None,
                 allow_for_processing: bool) -> tuple[np.ndarray, dict[str, Any]]:
    ds = _read_dataset(path)
    if "PixelData" not in ds:
        if "SOPClassUID" not in ds:
            raise BenchmarkError("corrupt or truncated DICOM: no SOP class and no pixel data could be read")
        name = getattr(ds.SOPClassUID, "name", str(ds.SOPClassUID))
        raise BenchmarkError(f"DICOM without pixel data (SOP class {name}); not an image, or truncated before the "
                             "pixels")
    modality = str(_value(ds, "Modality") or "").upper()
    if allowed_modalities is not None and modality not in {m.upper() for m in allowed_modalities}:
        raise BenchmarkError(f"Modality is '{_shown(modality) or 'missing'}', expected "
                             f"{' or '.join(sorted(allowed_modalities))}; pass allowed_modalities=None (or list it) "
                             "to read it anyway")
    if str(_value(ds, "SOPClassUID") or "") == MG_FOR_PROCESSING and not allow_for_processing:
        raise BenchmarkError("Digital Mammography For Processing (raw detector data); use For Presentation images")
    photometric = _value(ds, "PhotometricInterpretation")
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise BenchmarkError(f"PhotometricInterpretation '{_shown(photometric or 'missing')}' is not a greyscale "
                             "mammogram (MONOCHROME1 or MONOCHROME2)")
    padding = _check_header(ds)
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if syntax is not None and syntax.is_compressed:
        try:
            available = get_decoder(syntax).is_available
        except NotImplementedError:
            available = False
        if not available:
            raise BenchmarkError(f"pixel data is compressed ({syntax.name}) and no decoder is installed; "
                                 f"{_DECODER_HINT}")
    try:
        raw = ds.pixel_array
    except MemoryError:
        raise
    except Exception as exc:
        raise BenchmarkError(f"corrupt or truncated pixel data ({reason(exc, path)})") from None
    if raw.ndim != 2:
        raise BenchmarkError(f"pixel array has shape {raw.shape}; expected one 2-D greyscale image")
    valid = raw != padding if padding is not None else None
    _check_content(raw, valid, padding)
    arr = apply_modality_lut(raw, ds)
    voi = _voi_range(ds)
    # MONOCHROME1 (or a MONOCHROME2 image with an INVERSE presentation LUT) shows dense tissue dark: flip it.
    inverted = photometric == "MONOCHROME1" or _text(ds, "PresentationLUTShape") == "INVERSE"
    if voi is not None:
        arr = np.asarray(apply_voi_lut(arr, ds), dtype=np.float64)
        lo, hi = voi[:2]
        arr = np.clip((arr - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
        if inverted:
            arr = 1.0 - arr
    else:
        arr = np.asarray(arr, dtype=np.float64)
        arr = _robust_window(-arr if inverted else arr, valid)
    if valid is not None:
        arr[~valid] = 0.0
    if not np.isfinite(arr).all():
        raise BenchmarkError("non-finite intensities after the modality and VOI LUTs; check RescaleSlope, "
                             "RescaleIntercept and the window")
    spacing = _numbers(ds, "ImagerPixelSpacing") or _numbers(ds, "PixelSpacing")
    info = {"modality": modality, "sop_class_uid": str(_value(ds, "SOPClassUID") or ""),
            "photometric": str(photometric), "inverted": bool(inverted),
            "voi": voi[2] if voi is not None else "robust",
            "voi_function": (_text(ds, "VOILUTFunction") or "LINEAR") if voi is not None and voi[2] == "window" else "",
            "bits_stored": int(ds.BitsStored), "view": str(_value(ds, "ViewPosition") or ""),
            "laterality": str(_value(ds, "ImageLaterality") or _value(ds, "Laterality") or ""),
            "pixel_spacing_mm": spacing[0] if spacing else None, "original_shape": tuple(raw.shape),
            "synthetic": SYNTHETIC_COMMENT in str(_value(ds, "ImageComments") or "")}
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
    path = Path(path)
    with _one_file(path):
        arr, info = _load_pixels(path, allowed_modalities, allow_for_processing)
        out, geometry = crop_flip_resize(arr, int(size), crop=crop)
        if out.shape != (size, size) or not np.isfinite(out).all():
            raise BenchmarkError(f"preprocessing gave a non-finite or {out.shape} array; expected ({size}, {size})")
    info.update(geometry)
    return out, info
