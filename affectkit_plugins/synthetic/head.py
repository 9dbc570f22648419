"""The procedural head: face template mesh, identity shape parameters, and the neutral face.

Everything is in millimetres in the affectkit convention (the face looks along +z, +y is
up, the subject's left cheek is at +x). The face is a grid wrapped on a horizontal
ellipse per height (a generalised cylinder), cropped to an oval like a cropped 3D scan,
and carved with smooth height fields: brow ridge, eye sockets with eyeballs and lids,
nose, cheeks, lips, chin.

Topology depends only on the resolution (:func:`template`), so every subject, expression
and frame shares vertex order and faces (dense correspondence, as in registered 4D data).
Two pieces of topology let the face move like a face:

* a **lip seam**: a band of grid rows compressed to a fraction of a millimetre along the
  mouth line. Closed, it is a dark crease; when the lower lip or the jaw goes down it
  opens into a recessed mouth cavity (with teeth) — see :func:`finish`.
* **eyelids** as curves in the material (rest) coordinates: where a vertex falls between
  the upper and lower lid it shows the eyeball (sclera, iris, pupil), slightly recessed.
  Action units move the lids by changing the curves (:func:`finish`'s ``lids``).

Material coordinates ``(X, Y)`` of a vertex are its rest position's x and y; colours and
regions are functions of them, so they travel with the skin when it deforms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from affectkit.data.face_generator import subject_name
from affectkit.data.performances import seeded_rng, smoothstep

#: Landmark names in the order of ``Mesh.landmarks`` rows ("right" is the subject's right, -x).
LANDMARKS: tuple[str, ...] = (
    "right_brow_outer", "right_brow_middle", "right_brow_inner",
    "left_brow_inner", "left_brow_middle", "left_brow_outer",
    "right_eye_outer", "right_eye_upper", "right_eye_inner", "right_eye_lower",
    "left_eye_inner", "left_eye_upper", "left_eye_outer", "left_eye_lower",
    "nasion", "nose_tip", "subnasale", "right_alar", "left_alar",
    "right_mouth_corner", "upper_lip_top", "upper_lip_inner",
    "left_mouth_corner", "lower_lip_inner", "lower_lip_bottom",
    "chin", "right_cheek", "left_cheek",
)

SEXES = ("F", "M")
AGE_GROUPS = ("18-29", "30-49", "50+")
#: skin tone label -> base RGB (a neutral description of appearance, not an ethnicity)
SKIN_TONES: dict[str, tuple[float, float, float]] = {
    "light": (0.92, 0.77, 0.67),
    "medium": (0.84, 0.65, 0.51),
    "olive": (0.74, 0.57, 0.42),
    "brown": (0.57, 0.40, 0.28),
    "dark": (0.39, 0.26, 0.18),
}

THETA_MAX = math.radians(80.0)  # the oval reaches 80 degrees round the cheek at eye level
SEAM_HALF = 0.3  # half-height (mm) of the closed lip seam band

# random-stream tags, so each purpose draws from its own reproducible stream
TAG_IDENTITY = 11


# ---------------------------------------------------------------------------------------
# Small smooth functions
# ---------------------------------------------------------------------------------------


def gauss(x: np.ndarray, c: float, s: float) -> np.ndarray:
    return np.exp(-0.5 * ((x - c) / s) ** 2)


def gauss2(x: np.ndarray, y: np.ndarray, cx: float, cy: float, sx: float, sy: float) -> np.ndarray:
    return np.exp(-0.5 * (((x - cx) / sx) ** 2 + ((y - cy) / sy) ** 2))


def monotone_curve(x: np.ndarray, knots_x: list[float], knots_y: list[float]) -> np.ndarray:
    """Monotone cubic (Fritsch-Carlson) interpolation through sorted knots, flat outside."""
    kx, ky = np.asarray(knots_x, float), np.asarray(knots_y, float)
    order = np.argsort(kx)
    kx, ky = kx[order], ky[order]
    h = np.diff(kx)
    delta = np.diff(ky) / h
    m = np.zeros_like(ky)
    m[1:-1] = np.where(delta[:-1] * delta[1:] > 0, (delta[:-1] + delta[1:]) / 2, 0.0)
    for i in range(len(delta)):  # limit tangents so the curve does not overshoot
        if delta[i] == 0:
            m[i] = m[i + 1] = 0.0
        else:
            a, b = m[i] / delta[i], m[i + 1] / delta[i]
            r = a * a + b * b
            if r > 9:
                t = 3 / math.sqrt(r)
                m[i], m[i + 1] = t * a * delta[i], t * b * delta[i]
    xc = np.clip(x, kx[0], kx[-1])
    i = np.clip(np.searchsorted(kx, xc) - 1, 0, len(h) - 1)
    t = (xc - kx[i]) / h[i]
    t2, t3 = t * t, t * t * t
    return (
        (2 * t3 - 3 * t2 + 1) * ky[i]
        + (t3 - 2 * t2 + t) * h[i] * m[i]
        + (-2 * t3 + 3 * t2) * ky[i + 1]
        + (t3 - t2) * h[i] * m[i + 1]
    )


def bell(t: np.ndarray, peak: float) -> np.ndarray:
    """A bump on [0, 1], zero at both ends, largest at ``peak``."""
    gamma = math.log(0.5) / math.log(peak)
    tt = np.clip(t, 0.0, 1.0)
    return np.where((t > 0) & (t < 1), np.sin(np.pi * tt**gamma), 0.0)


# ---------------------------------------------------------------------------------------
# Identity
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Identity:
    """One synthetic subject: metadata, shape parameters (mm) and colours."""

    subject: str
    index: int
    sex: str
    age: int
    age_group: str
    skin_tone: str
    params: dict[str, float]
    skin_rgb: tuple[float, float, float]
    lip_rgb: tuple[float, float, float]
    brow_rgb: tuple[float, float, float]
    iris_rgb: tuple[float, float, float]
    bumps: np.ndarray = field(repr=False)  # [k, 5]: x, y, sx, sy, amplitude

    @property
    def attributes(self) -> dict[str, str]:
        return {"sex": self.sex, "age_group": self.age_group, "skin_tone": self.skin_tone}


def _anchor_params(p: dict[str, float]) -> dict[str, float]:
    """Heights of the face's horizontal landmarks from the proportions in ``p``."""
    a = dict(p)
    a["y_eye"] = 35.0
    a["y_brow"] = a["y_eye"] + p["brow_height"]
    a["y_top"] = a["y_brow"] + p["forehead"]
    a["y_tip"] = a["y_eye"] - p["nose_length"]
    a["y_sn"] = a["y_tip"] - p["columella"]
    a["y_m"] = a["y_sn"] - p["upper_lip"]
    a["y_menton"] = a["y_m"] - p["lower_face"]
    a["y_pog"] = a["y_menton"] + 12.0
    a["y_bottom"] = a["y_menton"] - 3.0
    a["x_in"] = p["eye_x"] - p["eye_w"] / 2
    a["x_out"] = p["eye_x"] + p["eye_w"] / 2
    a["brow_in"] = a["x_in"] - 3.0
    a["brow_out"] = a["x_out"] + 8.0
    return a


#: The average face, used to lay out the template's rows and oval.
CANONICAL: dict[str, float] = _anchor_params(
    {
        "brow_height": 13.0, "forehead": 45.0, "nose_length": 40.0, "columella": 11.0,
        "upper_lip": 20.0, "lower_face": 46.0, "eye_x": 31.0, "eye_w": 29.0,
    }
)


@lru_cache(maxsize=512)
def identity(seed: int, index: int) -> Identity:
    """The subject ``index`` of the population drawn from ``seed`` (deterministic)."""
    rng = seeded_rng(seed, TAG_IDENTITY, index)
    sex = "F" if rng.random() < 0.55 else "M"
    group = int(rng.choice(3, p=[0.5, 0.3, 0.2]))
    age = int(rng.integers(*((18, 30), (30, 50), (50, 71))[group]))
    tone = str(rng.choice(list(SKIN_TONES)))
    male = 1.0 if sex == "M" else 0.0
    old = float(np.clip((age - 25) / 45, 0.0, 1.0))  # 0 young .. 1 at 70

    def n(mean: float, sd: float) -> float:
        return float(mean + sd * rng.standard_normal())

    p: dict[str, float] = {
        # vertical proportions
        "brow_height": n(13.5 - 1.5 * male - 1.5 * old, 1.5),
        "forehead": n(44.0 + 2.0 * male, 3.5),
        "nose_length": n(39.0 + 2.5 * male, 2.5),
        "columella": n(11.0, 1.2),
        "upper_lip": n(19.5 + 1.0 * male + 2.0 * old, 1.8),
        "lower_face": n(45.0 + 4.0 * male, 3.0),
        # widths (half-widths of the cross-section ellipse)
        "a_top": n(57.0 + 2.0 * male, 2.5),
        "a_brow": n(65.0 + 2.0 * male, 2.5),
        "a_cheek": n(70.0 + 3.0 * male, 3.0),
        "a_jaw": n(52.0 + 5.0 * male + 2.0 * old, 3.5),
        "a_chin": n(25.0 + 3.0 * male, 2.5),
        "depth_ratio": n(1.1, 0.06),
        # eyes
        "eye_x": n(31.0 + 0.5 * male, 1.5),
        "eye_w": n(28.5 + 0.5 * male, 1.5),
        "lid_upper": n(5.6, 0.6),
        "lid_lower": n(3.6, 0.4),
        "eye_tilt": n(1.5, 1.2),
        "socket": n(8.0 + 1.5 * male, 1.2),
        "eye_bags": float(old * (1.5 + rng.random())),
        # brows
        "brow_arch": n(3.0 - 0.8 * male, 1.0),
        "brow_thick": n(4.3 + 1.2 * male, 0.7),
        "brow_ridge": n(1.5 + 2.5 * male, 0.8),
        # nose
        "nose_prot": n(18.5 + 2.0 * male, 2.2),
        "nose_w": n(16.5 + 1.5 * male, 1.4),
        "nose_tip": n(6.0 + 0.5 * male, 0.8),
        "nose_bridge": n(5.5 + 0.5 * male, 0.7),
        "nose_hump": n(0.5 * male, 1.2),
        # mouth and lower face
        "mouth_w": n(24.0 + 1.5 * male, 1.8),
        "lip_upper": n(7.0 + 0.8 * (1 - male) - 1.8 * old, 0.8),
        "lip_lower": n(8.8 + 1.0 * (1 - male) - 1.8 * old, 1.0),
        "lip_prot": n(5.0, 1.0),
        "chin_prot": n(6.0 + 2.0 * male, 1.8),
        "cheek_prom": n(4.0 + 1.0 * (1 - male) - 1.0 * old, 1.2),
        # age
        "fold": float(0.8 + 2.6 * old + 0.3 * rng.random()),
        "wrinkle": float(old**1.5 * (0.7 + 0.6 * rng.random())),
        "sag": float(old * (0.7 + 0.6 * rng.random())),
    }
    for key in ("columella", "lid_upper", "lid_lower", "brow_thick", "nose_tip", "nose_bridge", "lip_upper", "lip_lower"):
        p[key] = max(p[key], 2.0)
    p = _anchor_params(p)

    base = np.asarray(SKIN_TONES[tone]) * (1.0 + 0.05 * rng.standard_normal(3).clip(-2, 2))
    skin = np.clip(base, 0.05, 1.0)
    lip = np.clip(skin * np.array([0.86, 0.58, 0.6]) + np.array([0.06, 0.0, 0.02]), 0, 1)
    hair = rng.choice(np.array([[0.12, 0.08, 0.05], [0.25, 0.17, 0.1], [0.45, 0.33, 0.2], [0.05, 0.04, 0.04]]))
    grey = old * rng.random()
    brow = np.clip((1 - grey) * hair + grey * np.array([0.62, 0.6, 0.58]), 0, 1)
    brow = np.minimum(brow, 0.45 * skin)  # brows always read darker than the skin
    iris = rng.choice(np.array([[0.3, 0.18, 0.08], [0.18, 0.1, 0.05], [0.3, 0.45, 0.6], [0.35, 0.42, 0.25]]))

    k = 8
    bumps = np.stack(
        [
            rng.uniform(-55, 55, k),
            rng.uniform(p["y_menton"] + 10, p["y_top"] - 10, k),
            rng.uniform(8, 20, k),
            rng.uniform(8, 20, k),
            rng.normal(0, 1.0, k),
        ],
        axis=1,
    )
    return Identity(
        subject=subject_name(index), index=index, sex=sex, age=age, age_group=AGE_GROUPS[group],
        skin_tone=tone, params=p, skin_rgb=tuple(skin), lip_rgb=tuple(lip), brow_rgb=tuple(brow),
        iris_rgb=tuple(iris), bumps=bumps,
    )


# ---------------------------------------------------------------------------------------
# Template topology
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Template:
    """Grid topology shared by every face at one resolution.

    Rows run bottom to top in three segments: ``n_below`` rows from under the chin to the
    lower lip edge, ``n_band`` seam rows, ``n_above`` rows from the upper lip edge to the
    forehead. ``row_seg``/``row_frac`` place a row inside its segment; ``vrow``/``vcol``
    give each kept vertex's grid cell; ``sigma`` is -1 below the seam, +1 above, and in
    between inside it. ``band`` is ``[K, n_band + 2]`` vertex ids of the seam columns,
    lower edge first.
    """

    n_rows: int
    n_cols: int
    n_below: int
    n_band: int
    n_above: int
    row_seg: np.ndarray
    row_frac: np.ndarray
    vrow: np.ndarray
    vcol: np.ndarray
    u: np.ndarray
    sigma: np.ndarray
    faces: np.ndarray
    band: np.ndarray

    @property
    def n_vertices(self) -> int:
        return len(self.vrow)


def _oval(y_canonical: np.ndarray) -> np.ndarray:
    """Largest |u| kept at each canonical height: the cropped-face oval."""
    c = CANONICAL
    knots = [
        (c["y_bottom"], 0.56), (c["y_menton"] + 4, 0.64), (c["y_pog"] + 4, 0.7),
        (c["y_m"] - 14, 0.76), (c["y_m"], 0.86), (c["y_sn"], 0.95), (c["y_eye"] - 25, 1.0),
        (c["y_eye"] + 5, 1.0), (c["y_brow"] + 12, 0.93), (c["y_top"] - 13, 0.75), (c["y_top"], 0.5),
    ]
    return monotone_curve(y_canonical, [k[0] for k in knots], [k[1] for k in knots])


def _layout(n_rows: int, n_cols: int) -> Template:
    c = CANONICAL
    n_band = max(3, round(n_rows / 18))
    below_h, above_h = c["y_m"] - c["y_bottom"], c["y_top"] - c["y_m"]
    n_below = max(4, round((n_rows - n_band) * below_h / (below_h + above_h)))
    n_above = n_rows - n_band - n_below
    seg = np.concatenate([np.zeros(n_below, int), np.ones(n_band, int), np.full(n_above, 2)])
    frac = np.concatenate(
        [np.linspace(0, 1, n_below), np.arange(1, n_band + 1) / (n_band + 1), np.linspace(0, 1, n_above)]
    )
    y_canon = np.where(
        seg == 0, c["y_bottom"] + frac * (c["y_m"] - c["y_bottom"]),
        np.where(seg == 1, c["y_m"], c["y_m"] + frac * (c["y_top"] - c["y_m"])),
    )
    y_canon[n_below - 1] = y_canon[n_below + n_band] = c["y_m"]  # seam edges share the band's oval
    u_col = np.linspace(-1.0, 1.0, n_cols)
    keep = np.abs(u_col)[None, :] <= _oval(y_canon)[:, None] + 1e-9

    centre = n_cols // 2
    r, cc = np.nonzero(keep[:-1, :-1] & keep[1:, :-1] & keep[:-1, 1:] & keep[1:, 1:])
    gid = lambda rr, ci: rr * n_cols + ci  # noqa: E731
    v00, v01, v10, v11 = gid(r, cc), gid(r, cc + 1), gid(r + 1, cc), gid(r + 1, cc + 1)
    right = cc >= centre  # mirror the diagonal so the mesh is left-right symmetric
    tri_a = np.where(right[:, None], np.stack([v00, v01, v11], 1), np.stack([v00, v01, v10], 1))
    tri_b = np.where(right[:, None], np.stack([v00, v11, v10], 1), np.stack([v01, v11, v10], 1))
    faces_grid = np.concatenate([tri_a, tri_b])
    faces_grid = faces_grid[np.argsort(np.minimum(np.minimum(faces_grid[:, 0], faces_grid[:, 1]), faces_grid[:, 2]), kind="stable")]

    used = np.zeros(n_rows * n_cols, bool)
    used[faces_grid.ravel()] = True
    remap = np.full(n_rows * n_cols, -1, np.int64)
    remap[used] = np.arange(used.sum())
    grid_ids = np.flatnonzero(used)
    vrow, vcol = grid_ids // n_cols, grid_ids % n_cols
    rows_sigma = np.concatenate([np.full(n_below, -1.0), 2 * frac[n_below:n_below + n_band] - 1, np.ones(n_above)])

    band_rows = np.arange(n_below - 1, n_below + n_band + 1)
    cols = [ci for ci in range(n_cols) if used[gid(band_rows, ci)].all()]
    band = np.array([[remap[gid(rr, ci)] for rr in band_rows] for ci in cols], np.int64).reshape(-1, len(band_rows))
    return Template(
        n_rows=n_rows, n_cols=n_cols, n_below=n_below, n_band=n_band, n_above=n_above,
        row_seg=seg, row_frac=frac, vrow=vrow, vcol=vcol, u=u_col[vcol], sigma=rows_sigma[vrow],
        faces=remap[faces_grid], band=band,
    )


@lru_cache(maxsize=8)
def template(vertices: int) -> Template:
    """The smallest grid with at least ``vertices`` vertices (columns ~ rows, odd)."""
    n = max(24, int(math.sqrt(vertices / 0.78)))
    layout = _layout(n, n | 1)
    while layout.n_vertices < vertices:
        n += 1
        layout = _layout(n, n | 1)
    while n > 24:
        smaller = _layout(n - 1, (n - 1) | 1)
        if smaller.n_vertices < vertices:
            break
        n, layout = n - 1, smaller
    return layout


# ---------------------------------------------------------------------------------------
# Neutral face
# ---------------------------------------------------------------------------------------


@dataclass(eq=False)
class Face:
    """One subject's neutral face on a template, with everything expressions need.

    ``rest`` ``[N, 3]`` is the neutral surface without the lid-dependent eye carving
    (:func:`finish` adds it); ``X``, ``Y`` are material coordinates; ``anchors`` holds the
    subject's landmark heights and widths (mm); the ``w_*`` arrays are per-vertex weights
    of the regions action units move; ``fold`` is the nasolabial groove shape.
    """

    template: Template
    identity: Identity
    X: np.ndarray
    Y: np.ndarray
    rest: np.ndarray
    colors: np.ndarray
    anchors: dict[str, float]
    mouth: np.ndarray  # 1 across the mouth opening, 0 beyond the corners
    w_jaw: np.ndarray
    w_lower_lip: np.ndarray
    w_upper_lip: np.ndarray
    vermilion: np.ndarray
    fold: np.ndarray
    eye_idx: np.ndarray  # vertices near the eyes (lid carving is evaluated there only)
    landmark_ids: dict[str, int]
    cache: dict = field(default_factory=dict, repr=False)

    @property
    def n(self) -> int:
        return len(self.X)


def _rows_y(t: Template, a: dict[str, float]) -> np.ndarray:
    lo, hi = a["y_m"] - SEAM_HALF, a["y_m"] + SEAM_HALF
    return np.where(
        t.row_seg == 0, a["y_bottom"] + t.row_frac * (lo - a["y_bottom"]),
        np.where(t.row_seg == 1, lo + t.row_frac * (hi - lo), hi + t.row_frac * (a["y_top"] - hi)),
    )


def lip_heights(X: np.ndarray, a: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Heights of the upper and lower vermilion above/below the mouth line at ``X``."""
    q = np.clip(1.0 - (X / a["mouth_w"]) ** 2, 0.0, 1.0) ** 0.55
    bow = 1.0 * gauss(np.abs(X), 5.0, 2.5) - 0.5 * gauss(X, 0.0, 1.8)  # cupid's bow
    return a["lip_upper"] * q + bow * q, a["lip_lower"] * q


def brow_curve(X: np.ndarray, a: dict[str, float]) -> np.ndarray:
    """Height of the brow's centre line at ``X`` (mirrored)."""
    t = (np.abs(X) - a["brow_in"]) / (a["brow_out"] - a["brow_in"])
    return a["y_brow"] + a["brow_arch"] * bell(np.clip(t, 0.001, 0.999), 0.6) - 0.8 * t


def _nose(X: np.ndarray, Y: np.ndarray, a: dict[str, float]) -> np.ndarray:
    ye, yt, ys, prot = a["y_eye"], a["y_tip"], a["y_sn"], a["nose_prot"]
    hk = [
        (ye + 9, 0.0), (ye + 1, 3.5), (ye - 10, 7.0 + 0.5 * a["nose_hump"]), ((ye + yt) / 2, 10.5 + a["nose_hump"]),
        (yt + 6, prot * 0.86), (yt, prot), (yt - 4, prot * 0.8), (ys + 1.5, 2.5), (ys - 3, 0.0),
    ]
    wk = [
        (ye + 9, 7.0), (ye + 1, a["nose_bridge"]), ((ye + yt) / 2, a["nose_bridge"] + 1.0),
        (yt + 6, a["nose_tip"] + 1.0), (yt, a["nose_tip"] + 1.5), (ys, a["nose_tip"] + 1.0), (ys - 3, 5.0),
    ]
    h = monotone_curve(Y, [k[0] for k in hk], [k[1] for k in hk])
    w = monotone_curve(Y, [k[0] for k in wk], [k[1] for k in wk])
    z = h * np.exp(-0.5 * (X / w) ** 2)
    ala_y = ys + 4.5
    z += 7.0 * gauss2(np.abs(X), Y, a["nose_w"] - 6.0, ala_y, 5.0, 5.0)
    # the alar groove that separates the ala from the cheek
    r = np.hypot(np.abs(X) - (a["nose_w"] - 6.0), Y - ala_y)
    z -= 1.6 * gauss(r, 6.5, 1.4) * (np.abs(X) > a["nose_w"] - 6.0)
    return z


def _fold(X: np.ndarray, Y: np.ndarray, a: dict[str, float]) -> np.ndarray:
    """The nasolabial groove: distance to the segment from the ala to past the mouth corner."""
    p0 = np.array([a["nose_w"] + 1.5, a["y_sn"] + 3.0])
    p1 = np.array([a["mouth_w"] + 9.0, a["y_m"] - 12.0])
    d = p1 - p0
    q = np.stack([np.abs(X), Y], 1) - p0
    t = np.clip(q @ d / (d @ d), 0.0, 1.0)
    dist = np.linalg.norm(q - t[:, None] * d, axis=1)
    return gauss(dist, 0.0, 2.6) * smoothstep(0.0, 0.15, t) * smoothstep(1.0, 0.8, t)


@lru_cache(maxsize=8)
def neutral_face(vertices: int, seed: int, index: int) -> Face:
    """Subject ``index`` of ``seed`` on the template with about ``vertices`` vertices."""
    t = template(vertices)
    ident = identity(seed, index)
    a = ident.params
    Y = _rows_y(t, a)[t.vrow]
    # half-width of the head's cross-section at each height
    wk = [
        (a["y_bottom"], 0.8 * a["a_chin"]), (a["y_menton"], 0.9 * a["a_chin"]), (a["y_pog"], a["a_chin"] + 3.0),
        (a["y_m"] - 16, a["a_jaw"]),
        (a["y_m"], a["a_jaw"] + 4.0), (a["y_sn"], (a["a_jaw"] + a["a_cheek"]) / 2 + 3.0),
        (a["y_eye"] - 15, a["a_cheek"]), (a["y_eye"], a["a_cheek"] - 1.0), (a["y_brow"], a["a_brow"]),
        (a["y_brow"] + 25, a["a_brow"] - 3.0), (a["y_top"], a["a_top"]),
    ]
    half_w = monotone_curve(Y, [k[0] for k in wk], [k[1] for k in wk])
    theta = t.u * THETA_MAX
    X = half_w * np.sin(theta)
    z = half_w * a["depth_ratio"] * (np.cos(theta) - 1.0)
    # profile: forehead slopes back, the surface turns under the chin
    above = np.clip((Y - a["y_brow"]) / (a["y_top"] - a["y_brow"]), 0.0, None)
    z -= 22.0 * above**2
    under = np.clip((a["y_menton"] + 8.0 - Y) / 11.0, 0.0, None)
    z -= 12.0 * under**2

    aX = np.abs(X)
    ye, ym = a["y_eye"], a["y_m"]
    # forehead, brow ridge, temples
    z += 2.0 * gauss2(aX, Y, 24.0, a["y_brow"] + 28.0, 18.0, 14.0)
    z += a["brow_ridge"] * gauss2(aX, Y, 26.0, a["y_brow"] - 1.0, 20.0, 6.0)
    z += 0.8 * a["brow_ridge"] * gauss2(X, Y, 0.0, a["y_brow"] - 4.0, 10.0, 7.0)
    z -= 4.0 * gauss2(aX, Y, 62.0, a["y_brow"] + 4.0, 9.0, 16.0)
    # eye sockets and the eyeballs under the lids
    z -= a["socket"] * gauss2(aX, Y, a["eye_x"], ye + 1.0, 13.0, 10.0)
    z += 4.0 * gauss2(aX, Y, a["eye_x"], ye, 9.0, 6.5)
    z += a["eye_bags"] * gauss2(aX, Y, a["eye_x"] + 2.0, ye - 9.5, 10.0, 3.5)
    # upper lid crease
    tt = (aX - a["x_in"]) / (a["x_out"] - a["x_in"])
    crease = ye + a["eye_tilt"] * (tt - 0.5) + (a["lid_upper"] + 3.5) * bell(np.clip(tt * 0.9 + 0.05, 0, 1), 0.45)
    z -= 1.3 * gauss(Y, crease, 1.2) * smoothstep(-0.1, 0.1, tt) * smoothstep(1.1, 0.9, tt)
    # cheeks, nose, nasolabial fold
    z += a["cheek_prom"] * gauss2(aX, Y, a["eye_x"] + 12.0, ye - 17.0, 15.0, 10.0)
    z += 3.0 * gauss2(aX, Y, 38.0, ym + 6.0, 14.0, 14.0)
    z += _nose(X, Y, a)
    fold = _fold(X, Y, a)
    z -= a["fold"] * fold
    # mouth: the dental arch pushes the mouth region forward; lips roll out of it
    z += 8.0 * gauss2(X, Y, 0.0, ym + 2.0, 30.0, 24.0)
    hu, hl = lip_heights(X, a)
    up_t = (Y - ym) / np.maximum(hu, 0.5)
    lo_t = (ym - Y) / np.maximum(hl, 0.5)
    side = np.clip(1.0 - (X / (a["mouth_w"] + 3.0)) ** 2, 0.0, 1.0) ** 0.5
    z += 0.8 * a["lip_prot"] * side * np.sqrt(np.clip(1.0 - (2 * up_t - 0.9) ** 2, 0, 1))
    z += a["lip_prot"] * side * np.sqrt(np.clip(1.0 - (2 * lo_t - 1.0) ** 2, 0, 1))
    z -= 0.9 * gauss(X, 0.0, 2.6) * smoothstep(ym + hu, ym + hu + 2, Y) * smoothstep(a["y_sn"], a["y_sn"] - 3, Y)
    z -= 2.5 * gauss(X, 0.0, 14.0) * gauss(Y, ym - a["lip_lower"] - 6.0, 3.0)  # mentolabial sulcus
    z += a["chin_prot"] * gauss2(X, Y, 0.0, a["y_pog"], 13.0, 9.0)
    # age: sagging jowls and static wrinkles
    sag = a["sag"]
    Yd = Y - sag * 3.0 * gauss2(aX, Y, 44.0, ym - 12.0, 14.0, 12.0)
    z += sag * 2.0 * gauss2(aX, Y, 44.0, ym - 16.0, 12.0, 10.0)
    forehead = smoothstep(a["y_brow"] + 8, a["y_brow"] + 14, Y) * smoothstep(a["y_top"] - 6, a["y_top"] - 14, Y)
    z -= a["wrinkle"] * 0.7 * (0.5 + 0.5 * np.cos(2 * np.pi * (Y - a["y_brow"]) / 8.5)) * forehead * gauss(X, 0, 35)
    # identity-specific bumps
    for bx, by, sx, sy, amp in ident.bumps:
        z += amp * gauss2(X, Y, bx, by, sx, sy)
    rest = np.stack([X, Yd, z], 1)

    # region weights
    mouth = np.clip(1.0 - np.abs(X / a["mouth_w"]) ** 3, 0.0, 1.0)  # lens-shaped opening, finite slope at the corners
    sharp = (1.0 - t.sigma) / 2.0
    w_jaw = mouth * sharp + (1 - mouth) * smoothstep(ym + 12.0, ym - 24.0, Y)
    w_lower_lip = mouth * sharp + (1 - mouth) * smoothstep(ym + 4.0, ym - 8.0, Y)
    w_upper_lip = mouth * (1.0 - sharp) + (1 - mouth) * smoothstep(ym - 4.0, ym + 8.0, Y)
    spacing = (a["y_top"] - a["y_bottom"]) / t.n_rows  # mm between grid rows
    edge = max(0.7, 0.5 * spacing)  # colour edges no sharper than the mesh can show
    vermilion = np.clip(smoothstep(-edge, edge, np.minimum(Y - ym + SEAM_HALF + 0.5, ym + hu - Y))
                        + smoothstep(-edge, edge, np.minimum(ym + SEAM_HALF + 0.5 - Y, Y - (ym - hl))), 0, 1)
    vermilion *= np.abs(X) < a["mouth_w"] + 1.0

    colors = _base_colors(X, Y, ident, vermilion, fold, edge)
    # the lips darken toward the seam so the lip line reads at any resolution
    colors *= (1.0 - 0.35 * mouth * gauss(Y, ym, max(0.8, 0.6 * spacing)))[:, None]
    eye_idx = np.flatnonzero((np.abs(Y - ye) < 14.0) & (aX > a["x_in"] - 6.0) & (aX < a["x_out"] + 6.0))
    face = Face(
        template=t, identity=ident, X=X, Y=Y, rest=rest, colors=colors, anchors=a, mouth=mouth,
        w_jaw=w_jaw, w_lower_lip=w_lower_lip, w_upper_lip=w_upper_lip, vermilion=vermilion,
        fold=fold, eye_idx=eye_idx, landmark_ids={},
    )
    face.landmark_ids.update(_fixed_landmarks(face))
    return face


def _base_colors(X, Y, ident: Identity, vermilion, fold, edge: float) -> np.ndarray:
    a = ident.params
    skin = np.broadcast_to(np.asarray(ident.skin_rgb), (len(X), 3)).copy()
    aX = np.abs(X)
    blush = gauss2(aX, Y, a["eye_x"] + 8, a["y_eye"] - 22, 14, 10) + 0.6 * gauss2(X, Y, 0, a["y_tip"], 6, 6)
    skin += blush[:, None] * np.array([0.03, -0.02, -0.02])
    skin += (a["eye_bags"] * 0.02 * gauss2(aX, Y, a["eye_x"] + 2, a["y_eye"] - 9, 10, 3))[:, None] * -1.0
    skin -= (0.03 * a["fold"] * fold)[:, None]
    # brows: hair colour along the brow curve, thicker medially
    tb = (aX - a["brow_in"]) / (a["brow_out"] - a["brow_in"])
    thick = a["brow_thick"] * (1.15 - 0.4 * np.clip(tb, 0, 1))
    inside = smoothstep(-0.05, 0.04, tb) * smoothstep(1.05, 0.95, tb)
    brow = smoothstep(edge + 0.3, -edge, np.abs(Y - brow_curve(X, a)) - thick / 2) * inside
    out = skin + brow[:, None] * (np.asarray(ident.brow_rgb) - skin)
    out += vermilion[:, None] * (np.asarray(ident.lip_rgb) - out)
    # nostrils under the tip
    nostril = gauss2(aX, Y, 5.5, a["y_sn"] + 2.0, 2.4, 1.4)
    out *= 1.0 - 0.6 * nostril[:, None]
    return np.clip(out, 0.0, 1.0)


def _nearest(face: Face, x: float, y: float, among: np.ndarray | None = None) -> int:
    ids = np.arange(face.n) if among is None else among
    d = (face.X[ids] - x) ** 2 + (face.Y[ids] - y) ** 2
    return int(ids[np.argmin(d)])


def _fixed_landmarks(face: Face) -> dict[str, int]:
    a = face.anchors
    t = face.template
    out: dict[str, int] = {}
    for side, s in (("right", -1.0), ("left", 1.0)):
        for name, x in (("brow_inner", a["brow_in"] + 2), ("brow_middle", a["eye_x"]), ("brow_outer", a["brow_out"] - 2)):
            out[f"{side}_{name}"] = _nearest(face, s * x, float(brow_curve(np.array([x]), a)[0]))
        out[f"{side}_eye_inner"] = _nearest(face, s * a["x_in"], a["y_eye"] - 0.5 * a["eye_tilt"])
        out[f"{side}_eye_outer"] = _nearest(face, s * a["x_out"], a["y_eye"] + 0.5 * a["eye_tilt"])
        out[f"{side}_alar"] = _nearest(face, s * (a["nose_w"] - 1.0), a["y_sn"] + 4.5)
        out[f"{side}_cheek"] = _nearest(face, s * (a["eye_x"] + 10), a["y_eye"] - 22)
    out["nasion"] = _nearest(face, 0.0, a["y_eye"] + 1.0)
    out["nose_tip"] = _nearest(face, 0.0, a["y_tip"])
    out["subnasale"] = _nearest(face, 0.0, a["y_sn"])
    centre = np.argmin(np.abs(face.X[t.band[:, 0]]))
    out["lower_lip_inner"] = int(t.band[centre, 0])
    out["upper_lip_inner"] = int(t.band[centre, -1])
    mid = t.band[:, t.band.shape[1] // 2]
    out["right_mouth_corner"] = _nearest(face, -a["mouth_w"], a["y_m"], mid)
    out["left_mouth_corner"] = _nearest(face, a["mouth_w"], a["y_m"], mid)
    hu, hl = lip_heights(np.zeros(1), a)
    out["upper_lip_top"] = _nearest(face, 0.0, a["y_m"] + float(hu[0]))
    out["lower_lip_bottom"] = _nearest(face, 0.0, a["y_m"] - float(hl[0]))
    out["chin"] = _nearest(face, 0.0, a["y_pog"])
    return out


# ---------------------------------------------------------------------------------------
# Finishing a deformed face: eyes, mouth cavity, colours, landmarks
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lids:
    """Lid movements in mm per eye, ``[right, left]``: + opens the upper lid, + raises the lower."""

    upper: tuple[float, float] = (0.0, 0.0)
    lower: tuple[float, float] = (0.0, 0.0)


def _lid_curves(face: Face, ids: np.ndarray, lids: Lids):
    a = face.anchors
    X, Y = face.X[ids], face.Y[ids]
    left = (X > 0).astype(int)
    up = np.asarray(lids.upper)[left]
    lo = np.asarray(lids.lower)[left]
    t = (np.abs(X) - a["x_in"]) / (a["x_out"] - a["x_in"])
    axis = a["y_eye"] + a["eye_tilt"] * (t - 0.5)
    hu = np.maximum(a["lid_upper"] + up, 0.25)
    hl = np.maximum(a["lid_lower"] - lo, 0.25)
    y_up = axis + hu * bell(t, 0.45)
    y_lo = axis - hl * bell(t, 0.58)
    return X, Y, t, axis, y_up, y_lo


def finish(face: Face, positions: np.ndarray, lids: Lids) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Carve the eyes for ``lids`` and shape the mouth seam of deformed ``positions``.

    Returns ``(vertices, colors, landmarks)``; ``positions`` is not modified.
    """
    a = face.anchors
    t = face.template
    pos = positions.copy()
    colors = face.colors.copy()

    # eyes: what lies between the lids is eyeball, set slightly back
    ids = face.eye_idx
    X, Y, tt, axis, y_up, y_lo = _lid_curves(face, ids, lids)
    inside = np.where((tt > 0) & (tt < 1), np.minimum(y_up - Y, Y - y_lo), -5.0)
    fissure = smoothstep(-0.2, 0.8, inside)
    iris_c = a["y_eye"] + 0.3
    r = np.hypot(np.abs(X) - a["eye_x"], Y - iris_c)
    iris = fissure * smoothstep(5.9, 5.1, r)
    pupil = fissure * smoothstep(2.5, 1.9, r)
    pos[ids, 2] += -1.2 * fissure + 0.8 * iris * np.sqrt(np.clip(1 - (r / 6.0) ** 2, 0, 1))
    sclera = np.array([0.93, 0.91, 0.87]) - 0.15 * smoothstep(0.3, 0.0, np.minimum(tt, 1 - tt))[:, None] * np.array([0.0, 0.4, 0.4])
    eye_rgb = sclera + iris[:, None] * (np.asarray(face.identity.iris_rgb) - sclera)
    eye_rgb = eye_rgb * (1 - 0.92 * pupil[:, None])
    colors[ids] += fissure[:, None] * (eye_rgb - colors[ids])
    # lid margins: a thin dark line of lashes on the upper lid
    lash = gauss(Y - y_up, 0.6, 0.7) * (tt > 0.05) * (tt < 1.0)
    colors[ids] *= (1 - 0.55 * lash)[:, None]

    # mouth seam: the band interpolates its lip edges and sinks into a cavity as they part
    band = t.band
    lo, hi = pos[band[:, 0]], pos[band[:, -1]]
    min_gap = SEAM_HALF
    bad = hi[:, 1] - lo[:, 1] < min_gap
    lo[bad, 1] = hi[bad, 1] - min_gap
    pos[band[:, 0]] = lo
    gap = np.linalg.norm(hi - lo, axis=1)
    s = np.arange(1, band.shape[1] - 1) / (band.shape[1] - 1)  # 0 at the lower edge .. 1 upper
    sigma = 2 * s - 1
    interior = lo[:, None, :] + s[None, :, None] * (hi - lo)[:, None, :]
    open_w = face.mouth[band[:, 0]]
    depth = (1.2 + 0.9 * gap)[:, None] * np.clip(1 - np.abs(sigma) ** 3, 0, 1)[None, :] * open_w[:, None]
    interior[:, :, 2] -= depth
    pos[band[:, 1:-1]] = interior
    openness = (smoothstep(1.0, 4.0, gap) * open_w)[:, None]
    cavity = np.array([0.32, 0.07, 0.07]) * (1 - 0.5 * (1 - np.abs(sigma)))[None, :, None]
    crease = np.asarray(face.identity.lip_rgb) * 0.45
    teeth = smoothstep(0.35, 0.55, np.abs(sigma))[None, :, None] * smoothstep(4.0, 8.0, gap)[:, None, None]
    inner = crease + openness[:, :, None] * (cavity - crease)
    inner = inner + teeth * (np.array([0.9, 0.88, 0.8]) - inner)
    lip_line = smoothstep(0.0, 0.25, open_w)[:, None, None]  # beyond the corners the seam is skin
    skin = colors[band[:, 1:-1]]
    colors[band[:, 1:-1]] = skin + lip_line * (inner - skin)

    landmarks = _landmarks(face, pos, lids)
    return pos, np.clip(colors, 0.0, 1.0), landmarks


def _landmarks(face: Face, pos: np.ndarray, lids: Lids) -> np.ndarray:
    a = face.anchors
    ids = dict(face.landmark_ids)
    t_mid = 0.45
    for side, s, k in (("right", -1.0, 0), ("left", 1.0, 1)):
        x = a["x_in"] + t_mid * (a["x_out"] - a["x_in"])
        axis = a["y_eye"] + a["eye_tilt"] * (t_mid - 0.5)
        hu = max(a["lid_upper"] + lids.upper[k], 0.25)
        hl = max(a["lid_lower"] - lids.lower[k], 0.25)
        ids[f"{side}_eye_upper"] = _nearest(face, s * x, axis + hu * float(bell(np.array([t_mid]), 0.45)[0]), face.eye_idx)
        ids[f"{side}_eye_lower"] = _nearest(face, s * x, axis - hl * float(bell(np.array([t_mid]), 0.58)[0]), face.eye_idx)
    return pos[[ids[name] for name in LANDMARKS]]
