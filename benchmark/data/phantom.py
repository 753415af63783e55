"""Procedural synthetic mammograms: breast outline, 1/f^beta parenchyma, masses, calcification clusters, noise.

Model, in display intensity (MONOCHROME2: bright = dense, zero background):
- geometry in millimetres: a compressed breast 9-14 cm deep with a skin roll-off, CC or MLO (tilted, axillary
  tail, pectoral triangle), chest wall on the left for L and on the right for R. The default 256 px at 0.8 mm/px
  (a 20 cm field) keeps masses several pixels wide at 64 px; finer grids (e.g. 2048 px at 0.1 mm) work the same.
- parenchyma: a Gaussian 1/f^beta field (beta drawn in 2.6-3.3 per image) soft-clipped into a glandular fraction
  whose level sets the BI-RADS-like density A-D; label and density are independent.
- positives: a mass (circumscribed or spiculated, 12-30 mm by default, denser than glandular tissue) and/or a
  cluster of >= 5 specks. Negatives and positives alike get vessels, lymph-node-like ovals and as many isolated
  specks as a cluster has, so that a classifier has to look at morphology.
- the label is kept out of global statistics: a mass is tone-remapped back to the lesion-free histogram (a
  monotone, histogram-based tone curve, as vendor processing does) apart from a small density excess, and cluster
  specks keep apart so that they do not pile up into brighter pixels.
- quantum noise (stronger in dense tissue) and a slight detector blur.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

from benchmark.data.texture import fit_beta, power_law_field

__all__ = ["DENSITIES", "LESION_TYPES", "MASK_MASS", "MASK_CALCIFICATION", "SynthConfig", "BreastCase",
           "SyntheticMammogram", "draw_case", "render_view", "generate", "power_law_field", "fit_beta"]

DENSITIES = ("A", "B", "C", "D")  # BI-RADS-like breast density classes
LESION_TYPES = ("mass", "calcification", "mass+calcification")
MASK_MASS, MASK_CALCIFICATION = 1, 2  # values in SyntheticMammogram.lesion_mask

_DENSITY_P = (0.1, 0.4, 0.4, 0.1)
_DENSITY_LEVEL = {"A": -1.3, "B": -0.6, "C": 0.1, "D": 0.8}  # offset of the gland field before the soft clip
_LESION_P = (0.5, 0.25, 0.25)
_MU_FAT, _MU_GLAND, _MU_PECTORAL = 0.30, 0.74, 0.80  # display intensity of full-thickness tissue
_MU_MASS = 0.88  # denser than glandular tissue: high-density masses are the suspicious ones
_MASS_CONTRAST = (0.09, 0.13)  # density excess over the densest tissue, kept after the tone remap
_MASS_FILL = (0.45, 0.65)  # fraction of the beam path through the mass at its centre
_CALC_CONTRAST = (0.32, 0.50)
_SPECKS = (5, 16)  # specks per image: clustered in positives with calcifications, scattered otherwise
_CASE, _VIEW, _LABELS = 1, 2, 3  # random streams


@dataclass(frozen=True)
class SynthConfig:
    """Generator settings; the field of view is native_size * pixel_spacing_mm (about 20 cm by default)."""

    native_size: int = 256
    pixel_spacing_mm: float = 0.8
    positive_fraction: float = 0.5
    mlo_fraction: float = 0.5
    mass_diameter_mm: tuple[float, float] = (12.0, 30.0)
    # Real calcifications are 0.1-0.5 mm, far below one pixel at 0.8 mm; specks are drawn at least this many
    # native pixels wide (FWHM) so that they survive downsampling. The data set entry raises it for small outputs.
    min_speck_px: float = 1.5


@dataclass(frozen=True)
class BreastCase:
    """One breast (one synthetic patient): label, density, lesion and shape, shared by its CC and MLO views."""

    patient: int
    label: int
    laterality: str
    density: str
    lesion_type: str  # "none" or one of LESION_TYPES
    mass_margin: str  # "circumscribed", "spiculated" or "" without a mass
    mass_diameter_mm: float  # 0.0 without a mass
    n_specks: int
    views: tuple[str, ...]
    depth_mm: float  # chest wall to nipple
    half_height_mm: float
    shape_power: float


@dataclass
class SyntheticMammogram:
    """One rendered view: display intensity in [0,1] (MONOCHROME2, zero background) and its lesion mask."""

    image: np.ndarray  # float32 (S, S)
    lesion_mask: np.ndarray  # uint8 (S, S): 0, MASK_MASS or MASK_CALCIFICATION
    breast_mask: np.ndarray  # bool (S, S)
    case: BreastCase
    view: str
    beta: float
    index: int


def _rng(seed: int, stream: int, *keys: int) -> np.random.Generator:
    """An independent generator per (seed, stream, keys); keys never end in 0 (SeedSequence drops trailing 0s)."""
    return np.random.default_rng([stream, int(seed) % 2 ** 32, *(k + 1 for k in keys)])


def draw_case(config: SynthConfig, seed: int, patient: int) -> BreastCase:
    """The breast-level draws for one patient; depends only on (seed, patient), not on the count."""
    rng = _rng(seed, _CASE, patient)
    u = _rng(seed, _LABELS).random()
    f = config.positive_fraction
    # Low-discrepancy labels: every prefix of patients holds the requested fraction of positives.
    label = int(math.floor((patient + 1) * f + u) - math.floor(patient * f + u))
    density = DENSITIES[rng.choice(4, p=_DENSITY_P)]
    laterality = "L" if rng.random() < 0.5 else "R"
    lesion = LESION_TYPES[rng.choice(3, p=_LESION_P)] if label else "none"
    has_mass = "mass" in lesion
    lo, hi = config.mass_diameter_mm
    margin = ("spiculated" if rng.random() < 0.5 else "circumscribed") if has_mass else ""
    diameter = float(rng.uniform(lo, hi)) if has_mass else 0.0
    m = config.mlo_fraction
    r = rng.random()  # pair views so that the expected MLO fraction is exactly mlo_fraction
    views = ("MLO", "MLO") if r < max(0.0, 2 * m - 1) else ("CC", "CC") if r > min(1.0, 2 * m) else ("CC", "MLO")
    return BreastCase(patient, label, laterality, density, lesion, margin, diameter,
                      int(rng.integers(_SPECKS[0], _SPECKS[1] + 1)), views,
                      float(rng.uniform(90, 140)), float(rng.uniform(62, 85)), float(rng.uniform(1.8, 2.5)))


@lru_cache(maxsize=8)
def _grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:n, 0:n].astype(np.float32)
    y.flags.writeable = x.flags.writeable = False
    return y, x


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-np.clip(z, -40, 40)))


def _window(n: int, cy: float, cx: float, r: float) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray]:
    """Slices of the square of half-side r around (cy, cx) clipped to the image, and coordinates relative to it."""
    y0, x0 = min(n, max(0, int(cy - r))), min(n, max(0, int(cx - r)))
    y1, x1 = max(y0, min(n, int(cy + r) + 2)), max(x0, min(n, int(cx + r) + 2))
    dy = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(cy)
    dx = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(cx)
    return (slice(y0, y1), slice(x0, x1)), dy, dx


def _pick(rng: np.random.Generator, allowed: np.ndarray, fallback: np.ndarray,
          border: float = 0) -> tuple[float, float]:
    """A random pixel position (with sub-pixel jitter) from allowed at least border px from the edges, else fallback."""
    b = int(math.ceil(border))
    if b:
        allowed = allowed.copy()
        allowed[:b], allowed[-b:], allowed[:, :b], allowed[:, -b:] = False, False, False, False
    flat = np.flatnonzero(allowed)
    if flat.size == 0:
        flat = np.flatnonzero(fallback)
    k = flat[rng.integers(flat.size)]
    n = allowed.shape[1]
    return float(k // n + rng.random()), float(k % n + rng.random())


def _splat_lines(canvas: np.ndarray, p0: np.ndarray, p1: np.ndarray, w0: np.ndarray, w1: np.ndarray) -> None:
    """Add segments p0->p1 ((K,2) arrays of y,x) as weighted line densities (weight w0 tapering to w1 per pixel)."""
    length = np.hypot(*(p1 - p0).T)
    steps = np.maximum(2, np.ceil(length * 2).astype(int))
    seg = np.repeat(np.arange(len(p0)), steps)
    t = (np.arange(steps.sum()) - np.repeat(np.cumsum(steps) - steps, steps) + 0.5) / np.repeat(steps, steps)
    pts = p0[seg] + t[:, None] * (p1 - p0)[seg]
    weight = (w0[seg] + t * (w1 - w0)[seg]) * (length / steps)[seg]
    iy, ix = np.rint(pts).astype(int).T
    ok = (iy >= 0) & (iy < canvas.shape[0]) & (ix >= 0) & (ix < canvas.shape[1])
    np.add.at(canvas, (iy[ok], ix[ok]), weight[ok])


def _add_mass(img: np.ndarray, mask: np.ndarray, rng: np.random.Generator, cy: float, cx: float,
              radius: float, margin: str) -> tuple[tuple[slice, slice], np.ndarray]:
    """Draw a circumscribed (lobulated, sharp) or spiculated (irregular core with radiating spicules) mass.

    The tissue-replacing part is added to img; the part that makes the mass denser than any tissue is returned
    (window, values) so that the caller can add it after the tone remap.
    """
    spiculated = margin == "spiculated"
    reach = radius * (3.2 if spiculated else 1.3) + 3
    sl, dy, dx = _window(img.shape[0], cy, cx, reach)
    dist, theta = np.hypot(dy, dx), np.arctan2(dy, dx)
    ks = np.arange(2, 8 if spiculated else 5)
    amps = rng.uniform(0.04, 0.12 if spiculated else 0.05, ks.size) / np.sqrt(ks - 1)
    phases = rng.uniform(0, 2 * np.pi, ks.size)
    edge_r = radius * (1 + (amps[:, None, None] * np.cos(ks[:, None, None] * theta + phases[:, None, None])).sum(0))
    contrast, fill = rng.uniform(*_MASS_CONTRAST), rng.uniform(*_MASS_FILL)
    inside = _sigmoid((edge_r - dist) / (1.2 if spiculated else 0.5))
    core = inside * (0.6 + 0.4 * np.sqrt(np.clip(1 - (dist / edge_r) ** 2, 0, 1)))  # sphere-like path length
    local = img[sl]
    # The mass replaces part of the tissue along the beam: conspicuous over fat, faint over dense tissue.
    add = core * fill * np.maximum(_MU_MASS - local, 0)
    extra = core * contrast
    if spiculated:  # thin tapering spicules radiating from the core, drawn as blurred lines
        k = int(rng.integers(6, 15))
        ang = rng.uniform(0, 2 * np.pi, k)
        unit = np.stack([np.sin(ang), np.cos(ang)], 1)
        length = radius * rng.uniform(0.6, 1.6, k)
        origin = np.array([-dy[0, 0], -dx[0, 0]])  # the mass centre in window coordinates
        lines = np.zeros(add.shape, np.float32)
        _splat_lines(lines, origin + 0.7 * radius * unit, origin + (radius + length)[:, None] * unit,
                     np.ones(k), np.full(k, 0.15))
        sigma = max(0.6, 0.25 * math.sqrt(radius))
        lines = ndimage.gaussian_filter(lines, sigma) * (math.sqrt(2 * math.pi) * sigma)
        lines = (1 - inside) * np.minimum(lines, 1)
        add += 0.3 * fill * np.maximum(_MU_MASS - local, 0) * lines
        extra += 0.6 * contrast * lines
    img[sl] += add
    mask[sl][dist <= edge_r] = MASK_MASS
    return sl, extra


def _add_specks(img: np.ndarray, rng: np.random.Generator, centers: np.ndarray, fwhm: np.ndarray) -> None:
    """Add bright Gaussian specks (calcifications) of the given FWHM in pixels; overlaps take the maximum."""
    n, specks = img.shape[0], np.zeros_like(img)
    for (cy, cx), w, c in zip(centers, fwhm, rng.uniform(*_CALC_CONTRAST, len(centers))):
        sigma = w / 2.355
        sl, dy, dx = _window(n, cy, cx, 3 * sigma + 1)
        np.maximum(specks[sl], c * np.exp(-(dy ** 2 + dx ** 2) / (2 * sigma ** 2)), out=specks[sl])
    img += specks


def _cluster(rng: np.random.Generator, count: int, radius: float, spacing: float) -> np.ndarray:
    """count points in a disk (relative to its centre), at least spacing apart while they fit (dart throwing)."""
    points: list[np.ndarray] = []
    for attempt in range(60 * count):
        r, a = radius * math.sqrt(rng.random()), rng.uniform(0, 2 * np.pi)
        p = np.array([r * math.sin(a), r * math.cos(a)])
        if attempt >= 59 * count or all(np.hypot(*(p - q)) >= spacing for q in points):
            points.append(p)  # the last tries give up on the spacing, for crowded clusters
            if len(points) == count:
                break
    return np.array(points)


def _add_vessels(img: np.ndarray, rng: np.random.Generator, starts: list[tuple[float, float]], length: float,
                 width: float) -> None:
    """Faint winding vessels: random-walk polylines heading to the nipple, with a Gaussian cross-section."""
    steps, canvas = 10, np.zeros_like(img)
    for start in starts:
        turns = np.cumsum(rng.normal(0, 0.25, steps)) + rng.uniform(-0.6, 0.6)
        pts = np.cumsum(np.stack([np.sin(turns), np.cos(turns)], 1) * (length * rng.uniform(0.6, 1.2) / steps), 0)
        pts = np.vstack([[0.0, 0.0], pts]) + start
        c = rng.uniform(0.03, 0.06)
        _splat_lines(canvas, pts[:-1], pts[1:], np.full(steps, c), np.full(steps, c))
    ys, xs = np.nonzero(canvas.any(1))[0], np.nonzero(canvas.any(0))[0]
    if ys.size:  # blur only the box around the vessels
        m = int(4 * width) + 1
        box = (slice(max(0, ys[0] - m), ys[-1] + m + 1), slice(max(0, xs[0] - m), xs[-1] + m + 1))
        img[box] += ndimage.gaussian_filter(canvas[box], width) * np.float32(math.sqrt(2 * math.pi) * width)


def _add_node(img: np.ndarray, rng: np.random.Generator, cy: float, cx: float, length: float) -> None:
    """A benign lymph-node-like oval with a lucent fatty hilum notch."""
    sl, dy, dx = _window(img.shape[0], cy, cx, length)
    a = rng.uniform(0, np.pi)
    u, v = dx * np.cos(a) + dy * np.sin(a), -dx * np.sin(a) + dy * np.cos(a)
    body = _sigmoid((1 - (u / (length / 2)) ** 2 - (v / (length / 3.2)) ** 2) * 6)
    hilum = _sigmoid((1 - ((u - length / 3) / (length / 4)) ** 2 - (v / (length / 8)) ** 2) * 4)
    img[sl] += rng.uniform(0.05, 0.08) * np.clip(body - 0.8 * hilum, 0, None)


def _match_histogram(img: np.ndarray, region: np.ndarray, reference: np.ndarray) -> None:
    """Monotone tone remap of img inside region so that its values are exactly those of reference (same count)."""
    values = img[region]
    out = np.empty_like(values)
    out[np.argsort(values, kind="stable")] = np.sort(reference)
    img[region] = out


def _geometry(case: BreastCase, view: str, n: int, sp: float, rng: np.random.Generator):
    """Normalised breast radius rho (<1 inside), thickness profile and pectoral weight, chest wall at x = 0."""
    y, x = _grid(n)
    b, a = case.depth_mm / sp, case.half_height_mm / sp
    if view == "CC":
        cy = n / 2 + rng.uniform(-0.04, 0.04) * n
        xr, yr = x, y - cy
    else:  # MLO: longer, tilted so the nipple points down, running off the top edge into the axilla
        a, b = a * 1.2, b * 1.05
        cy, tilt = n * rng.uniform(0.40, 0.48), rng.uniform(0.12, 0.30)
        xr = x * math.cos(tilt) + (y - cy) * math.sin(tilt)
        yr = -x * math.sin(tilt) + (y - cy) * math.cos(tilt)
    theta = np.arctan2(yr, xr)
    wobble = sum(rng.uniform(0, 0.025) * np.cos(k * theta + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 4))
    p = case.shape_power
    if view == "MLO":  # the upper half reaches past the top edge: the axillary tail along the pectoral muscle
        a = np.where(yr < 0, np.float32(max(a, 1.4 * cy)), np.float32(a))
    rho = (np.abs(xr / b) ** p + np.abs(yr / a) ** p) ** (1 / p) * (1 + wobble)
    rolloff = rng.uniform(10, 18) / sp / b  # skin roll-off width (mm) in rho units
    s = np.clip((1 - rho) / rolloff, 0, 1)
    thickness = np.sqrt(1 - (1 - s) ** 2)
    pectoral = np.zeros_like(rho)
    if view == "MLO":
        pw, ph = b * rng.uniform(0.30, 0.45), n * rng.uniform(0.45, 0.75)
        q = rng.uniform(1.0, 1.4)
        d = (x / pw + (y / ph) ** q - 1) * pw  # ~ signed distance in px, negative inside the muscle
        pectoral = _sigmoid(-d / (1.5 / sp))
    return rho, thickness, pectoral, b


def render_view(config: SynthConfig, seed: int, case: BreastCase, view: str, index: int,
                findings: bool = True) -> SyntheticMammogram:
    """Render one view of a breast; findings=False leaves out lesions, vessels, nodes and specks (texture only)."""
    n, sp = config.native_size, config.pixel_spacing_mm
    rng = _rng(seed, _VIEW, case.patient, 1 + (view == "MLO") + 2 * (index % 2))
    rho, thickness, pectoral, depth = _geometry(case, view, n, sp, rng)
    breast = rho < 1
    beta = float(rng.uniform(2.6, 3.3))
    field = power_law_field(rng, n, beta, rng.uniform(0.6, 1.0))
    gland = 0.5 * (1 + np.tanh(_DENSITY_LEVEL[case.density] + rng.uniform(0.7, 1.0) * field))
    envelope = np.clip((1 - rho) / 0.3, 0, 1) ** 0.6
    # Fat lobules and ligaments carry the same 1/f^beta texture at a low level, so fatty breasts keep it too.
    tissue = _MU_FAT + 0.03 * field + (_MU_GLAND - _MU_FAT) * gland * envelope
    muscle = rng.uniform(-0.04, 0.04) + _MU_PECTORAL + 0.03 * field
    img = thickness * (tissue * (1 - pectoral) + muscle * pectoral)
    img += 0.04 * np.exp(-(((1 - rho) * depth) / (1.6 / sp)) ** 2) * breast  # skin line
    img = img.astype(np.float32)
    mask = np.zeros((n, n), np.uint8)
    if findings:
        interior = breast & (pectoral < 0.01)
        starts = [_pick(rng, interior & (rho > 0.5) & (rho < 0.8), interior) for _ in range(rng.integers(1, 4))]
        _add_vessels(img, rng, starts, 0.45 * depth, max(0.7, rng.uniform(0.4, 0.8) / sp))  # both classes
        if rng.random() < 0.4:  # benign lymph-node-like oval, both classes
            cy, cx = _pick(rng, interior & (rho < 0.85), interior)
            _add_node(img, rng, cy, cx, rng.uniform(4, 8) / sp)
        if "mass" in case.lesion_type:
            radius = case.mass_diameter_mm / 2 / sp
            cy, cx = _pick(rng, interior & (rho < 1 - (1.4 * radius + 4) / depth), interior, 1.4 * radius + 4)
            # Tone-remap the tissue-replacing part back to the lesion-free histogram, so that the label cannot
            # be read off global intensity statistics; only a small density excess is kept on top.
            before = img[breast]
            sl, extra = _add_mass(img, mask, rng, cy, cx, radius, case.mass_margin)
            _match_histogram(img, breast, before)
            img[sl] += extra
        fwhm = np.maximum(rng.uniform(0.1, 0.5, case.n_specks) / sp, config.min_speck_px)
        if "calcification" in case.lesion_type:
            # Specks keep apart by about one output pixel, so that a cluster is told from scattered specks by
            # its arrangement, not by specks piling up into brighter pixels (which a histogram would see).
            gap = 1.4 * config.min_speck_px
            rc = max(rng.uniform(4, 9) / sp, 1.25 * gap * math.sqrt(case.n_specks / math.pi))
            cy, cx = _pick(rng, interior & (rho < 1 - (rc + 4) / depth), interior, rc + 4)
            centers = _cluster(rng, case.n_specks, 0.9 * rc, gap) + [cy, cx]
            sl, dy, dx = _window(n, cy, cx, rc + 1)
            mask[sl][(dy ** 2 + dx ** 2 <= rc ** 2) & (mask[sl] == 0)] = MASK_CALCIFICATION
        else:  # isolated benign specks scattered over the breast, as many as a cluster would have
            flat = np.flatnonzero(interior & (rho < 0.9))
            k = flat[rng.integers(flat.size, size=case.n_specks)]
            centers = np.stack([k // n, k % n], 1) + rng.random((case.n_specks, 2))
        _add_specks(img, rng, centers, fwhm)
    # Quantum noise (variance grows where fewer photons pass, i.e. in dense tissue), then detector blur.
    dose = rng.uniform(3000, 8000)
    img += rng.standard_normal((n, n), dtype=np.float32) * (np.exp(1.5 * img) / (3 * math.sqrt(dose)))
    img = ndimage.gaussian_filter(img, rng.uniform(0.5, 0.8)) * breast
    img = np.clip(img, 0, 1, out=img)
    mask[~breast] = 0
    if case.laterality == "R":  # right breasts are shown with the chest wall on the right
        img, mask, breast = img[:, ::-1].copy(), mask[:, ::-1].copy(), breast[:, ::-1].copy()
    return SyntheticMammogram(img, mask, breast, case, view, beta, index)


def generate(config: SynthConfig, count: int, seed: int) -> Iterator[SyntheticMammogram]:
    """Yield count views, two per breast (patient); image i is identical for every count > i."""
    for i in range(count):
        case = draw_case(config, seed, i // 2)
        yield render_view(config, seed, case, case.views[i % 2], i)

