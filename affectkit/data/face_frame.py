"""The canonical face frame: a scan's units, up axis, facing and head pose, found from its
geometry, so that every scan reaches the renderer the same way round.

Scanners and face models agree on none of these: Kinect, ARKit and FLAME-style meshes are
in metres, many tools export Z-up, and each scanner has its own idea of an upright head.
A model trained on upright faces gives a tilted one a confident wrong label, so every scan
is brought into one frame before it is rendered (training, evaluation and prediction
alike): **millimetres, +y up, looking along +z, the head as upright as ICT-FaceKit's mean
face** (the reference, ``reference_face.npz``, built by ``tools/build_reference_face.py``).

:func:`find_frame` finds that frame in two steps:

1. **Units** from the face's size: the spread of the scan along its two longest principal
   axes (a face is about as tall as it is wide, whatever the crop) must fit a face in one
   of mm, cm, inch or m. Units whose sizes overlap (a large cm face, a small inch one) are
   both tried in step 2; a size that fits no unit is refused.
2. **Up axis, facing and head pose together**: the reference is fitted to the scan by
   trimmed point-to-plane ICP, from each of the 24 axis-aligned orientations turned nine
   ways and, where the scan has landmarks in a layout it knows (:func:`landmark_starts`),
   from their pose. The best fits are refined beside their upside-down twins (the nose decides
   between a fit and its twin where it clearly can: :meth:`_Fit.nose_margin`; else the
   residual), on the whole face with its *rigid* points (forehead, temples, brow ridge and
   nose, which no expression moves) weighted up; yaw and roll are then corrected by the
   face's own mirror symmetry. Trimming (the worst 30% of matches never count) makes
   holes, crops, hair, necks, an open mouth and raised brows harmless, and the scan is
   only turned, moved and scaled by its unit, so an expression is never "corrected away".
   Between the two, the fit chosen and its twin are refined from a few pitches with the
   reference at its own size and nearly every match counted (:data:`CONSENSUS`): that fit
   has one clear minimum where the trimmed, resizable one has several on a face unlike the
   reference, so a face ends in the same frame whatever pose it came in.

The result, a :class:`FaceFrame`, says what was found (units, which input axis is up and
which the face looks along, yaw/pitch/roll of the head in degrees, the fit's residual) and
what it makes of the scan (:meth:`FaceFrame.apply`); it warns where the fit is poor or the
scan shows too little of the face (turned away from a one-sided scanner, cropped, holed).
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import numpy as np

from affectkit.data.mesh import Mesh
from affectkit.errors import MeshError

#: Bump when :func:`find_frame` changes its answers, so that render caches do not serve old placements.
FRAME_VERSION = 4
#: millimetres per unit
UNITS: dict[str, float] = {"mm": 1.0, "cm": 10.0, "inch": 25.4, "m": 1000.0}
#: a scan's length unit, or ``auto``: found from the face's size
Units = Literal["auto", "mm", "cm", "inch", "m"]
REFERENCE_FILE = Path(__file__).with_name("reference_face.npz")
#: the range (mm) of a face's size as :func:`face_size` measures it, from a tight face crop
#: to a whole head with neck; a size that fits no unit is refused
FACE_SIZE_MM = (90.0, 400.0)
#: a scan that covers less of the reference face than this (within COVER_MM) is warned
#: about: turned away from a one-sided scanner, cropped or holed too much to trust
MIN_COVERAGE = 0.6
COVER_MM = 5.0
#: a fit whose trimmed mean residual exceeds this (mm) is warned about: likely no face
FIT_LIMIT_MM = 4.0
#: matches kept in each ICP step (the rest, the worst, are holes, crops and outliers)
KEEP = 0.7
#: how much larger or smaller than the mean face a face may be, for the fit
SIZES = (0.8, 1.25)
#: matches farther than this (mm) never count (and cut the search short)
REACH_MM = 40.0
#: fits refined at the end, each beside its upside-down twin
FINALISTS = 3
#: a nose margin (:meth:`_Fit.nose_margin`) beyond this (mm) says a fit is the right way up;
#: such a fit wins if its residual is within this factor of the best
NOSE_MM = 2.0
COMPARABLE_FITS = 1.5
#: how much more a rigid point counts than any other point of the face in the final fit
RIGID_WEIGHT = 2.0
#: how far (mm) from a scan's median point any of its face can be
HEAD_REACH_MM = 300.0
#: the cell (mm) of the grid the coarse fitting steps look matches up in
GRID_MM = 5.0
#: scan points the fit looks at, at most (a random but fixed subset)
SCAN_POINTS = 5000
#: multi-PIE 68-point rows of the landmarks used for a landmark start: eye corners, nose
MULTI_PIE_RIGID = (27, 28, 29, 30, 31, 33, 35, 36, 39, 42, 45)
#: Bosphorus ``.lm3`` landmark names (lower case) -> Multi-PIE rows: the rigid ones
NAMED_LANDMARKS = {
    "outer left eye corner": 45, "inner left eye corner": 42, "inner right eye corner": 39,
    "outer right eye corner": 36, "left nose peak": 35, "nose tip": 30, "right nose peak": 31, "subnasal point": 33,
}  # fmt: skip
#: a Multi-PIE row -> its mirror image's (for the rows above)
MULTI_PIE_MIRROR = {45: 36, 36: 45, 42: 39, 39: 42, 35: 31, 31: 35}
#: head turns (yaw, pitch, roll) tried from each of the 24 axis-aligned orientations, and
#: around the best fits: ICP reaches about 30 degrees from where it starts
STARTS = tuple((yaw, pitch, 0) for yaw in (-35, 0, 35) for pitch in (-25, 0, 25))
#: starts kept after the first brief fit from all of them
LIKELY = 40
AROUND = ((0, 0, 0), (20, 0, 0), (-20, 0, 0), (0, 15, 0), (0, -15, 0), (0, 0, 20), (0, 0, -20))
#: pitches (degrees) the chosen fit and its upside-down twin are turned by before the last,
#: exact fit; matches kept in that fit, and its ICP steps
CONSENSUS = (-20.0, -10.0, 0.0, 10.0, 20.0)
CONSENSUS_KEEP = 0.95
CONSENSUS_STEPS = 20


@dataclass(frozen=True)
class Reference:
    points: np.ndarray  # [P, 3] rigid points of the mean face, mm, canonical frame
    face: np.ndarray  # [Q, 3] the whole face, above the chin, inside the tightest crop
    landmarks: np.ndarray  # [68, 3] its Multi-PIE landmarks
    nose_tip: np.ndarray  # [3]


@cache
def reference_face(path: Path = REFERENCE_FILE) -> Reference:
    with np.load(path, allow_pickle=False) as z:
        points, face, landmarks = (z[name].astype(np.float64) for name in ("points", "face", "landmarks"))
    return Reference(points, face, landmarks, landmarks[30])


@dataclass(frozen=True)
class FaceFrame:
    """Where a scan's face is and how it is turned; ``rotation`` and ``translation`` take
    its coordinates (in its own units) to the canonical frame (mm)."""

    units: str
    up: str  # the input axis that points up, e.g. "+y" or "+z"
    facing: str  # the input axis the face looks along
    yaw: float  # the head's pose in the input's (unit-fixed) axes, degrees: toward its left
    pitch: float  # chin down
    roll: float
    method: str  # "geometry", "landmarks", "given" (no alignment asked)
    fit_mm: float  # trimmed mean distance of the reference's points to the scan (mm)
    coverage: float  # share of the reference face that has scan surface within COVER_MM
    rotation: tuple[tuple[float, float, float], ...]
    translation: tuple[float, float, float]
    warnings: tuple[str, ...] = ()

    def apply(self, mesh: Mesh) -> Mesh:
        """``mesh`` in the canonical frame (landmarks moved with it)."""
        return moved(mesh, np.asarray(self.rotation) * UNITS[self.units], np.asarray(self.translation))

    def describe(self) -> str:
        """One line for people: ``mm, +y up, facing +z, yaw +3°, pitch -12°, roll +1° (geometry, fit 0.9 mm)``."""
        if self.method == "given":
            return f"{self.units}, taken as +y up, facing +z and upright (this model does not align scans)"
        fit = f", fit {self.fit_mm:.1f} mm"
        return (
            f"{self.units}, {self.up} up, facing {self.facing}, yaw {self.yaw:+.0f}°, pitch {self.pitch:+.0f}°, "
            f"roll {self.roll:+.0f}° ({self.method}{fit})"
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> FaceFrame:
        data = json.loads(text)
        data["rotation"] = tuple(tuple(row) for row in data["rotation"])
        return cls(**{**data, "translation": tuple(data["translation"]), "warnings": tuple(data["warnings"])})


def turned(mesh: Mesh, spread: tuple[float, float, float], seed: str) -> Mesh:
    """A canonical-frame ``mesh`` turned about its nose by a yaw, pitch and roll drawn from
    normal distributions of ``spread`` degrees (cut at 2.5 of them), seeded by ``seed``:
    the same scan always gets the same turn."""
    rng = np.random.default_rng(int(seed[:16], 16))
    angles = np.clip(rng.standard_normal(3), -2.5, 2.5) * np.asarray(spread)
    rotation, nose = head_rotation(*angles), reference_face().nose_tip
    return moved(mesh, rotation, nose - rotation @ nose)


def moved(mesh: Mesh, matrix: np.ndarray, shift: np.ndarray) -> Mesh:
    """``mesh`` with its vertices and landmarks ``p`` at ``matrix @ p + shift``."""

    def move(points: np.ndarray) -> np.ndarray:
        return points.astype(np.float64) @ matrix.T + shift

    landmarks = None if mesh.landmarks is None else move(mesh.landmarks)
    return Mesh(move(mesh.vertices), mesh.faces, mesh.colors, mesh.uv, mesh.texture, landmarks, mesh.metadata, mesh.source)


def face_size(vertices: np.ndarray) -> float:
    """The geometric mean of the scan's extents (1st to 99th percentile) along its two
    longest principal axes, stray far vertices left out: about 160-250 mm for a face,
    cropped or a whole head."""
    centred = vertices - np.median(vertices, axis=0)
    reach = np.linalg.norm(centred, axis=1)
    centred = centred[reach <= 4.0 * np.median(reach)]  # a stray vertex far out is no part of the face
    _, _, axes = np.linalg.svd(centred[:: max(1, len(centred) // 20000)], full_matrices=False)
    spans = [float(np.subtract(*np.percentile(centred @ axis, [99, 1]))) for axis in axes[:2]]
    return math.sqrt(spans[0] * spans[1])


def candidate_units(vertices: np.ndarray, source: str) -> list[str]:
    """The units in which the scan is the size of a face; refused if there are none."""
    size = face_size(vertices)
    low, high = FACE_SIZE_MM
    fitting = [name for name, mm in UNITS.items() if low <= size * mm <= high]
    if not fitting:
        sizes = ", ".join(f"{size * mm:.3g} mm in {name}" for name, mm in UNITS.items())
        raise MeshError(
            f"{source}: its size fits no unit a face is measured in (a face spans {low:.0f}-{high:.0f} mm; this one would be {sizes}); "
            "is it a face? Set its units explicitly (--units, or the dataset's units) if they are right. No prediction made"
        )
    return fitting


def given_units(vertices: np.ndarray, units: str, source: str) -> str:
    """``units``, if the scan is a face's size in them; refused otherwise."""
    size, (low, high) = face_size(vertices) * UNITS[units], FACE_SIZE_MM
    if not low <= size <= high:
        raise MeshError(f"{source}: in {units} it would be {size:.3g} mm across, and a face spans {low:.0f}-{high:.0f} mm: are its units {units}? No prediction made")
    return units


def axis_rotations() -> list[np.ndarray]:
    """The 24 rotations that map coordinate axes to coordinate axes."""
    found = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            matrix = np.zeros((3, 3))
            matrix[range(3), perm] = signs
            if np.linalg.det(matrix) > 0:
                found.append(matrix)
    return found


def kabsch(source: np.ndarray, target: np.ndarray, weights: np.ndarray, scale: tuple[float, float] = (1.0, 1.0)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per batch row, the rotation ``[S, 3, 3]``, scale ``[S]`` (clipped to ``scale``) and
    translation ``[S, 3]`` that best take the ``weights``-weighted ``source`` points
    ``[S, K, 3]`` onto ``target`` (Umeyama's method)."""
    w = weights[..., None] / np.maximum(weights.sum(axis=1), 1e-12)[:, None, None]
    a, b = (source * w).sum(axis=1), (target * w).sum(axis=1)
    centred = source - a[:, None]
    covariance = np.einsum("ski,skj->sij", centred * w, target - b[:, None])
    u, singular, vt = np.linalg.svd(covariance)
    flip = np.sign(np.linalg.det(np.einsum("sji,skj->sik", vt, u)))
    flip[flip == 0] = 1.0
    fix = np.ones((len(flip), 3))
    fix[:, 2] = flip
    rotation = np.einsum("sji,sj,skj->sik", vt, fix, u)
    spread = np.maximum((centred**2 * w).sum(axis=(1, 2)), 1e-12)
    factor = np.clip((singular * fix).sum(axis=1) / spread, *scale)
    return rotation, factor, b - factor[:, None] * np.einsum("sij,sj->si", rotation, a)


def euler(rotation: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of ``rotation = roll_z @ pitch_x @ yaw_y``, the order
    the generators turn heads in (``affectkit_plugins.facekit.scan.rotation_matrix``)."""
    pitch = math.asin(max(-1.0, min(1.0, rotation[2, 1])))
    yaw = math.atan2(-rotation[2, 0], rotation[2, 2])
    roll = math.atan2(-rotation[0, 1], rotation[1, 1])
    return math.degrees(yaw), math.degrees(pitch), math.degrees(roll)


def head_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """``roll_z @ pitch_x @ yaw_y`` (degrees): how a head turned by these angles is rotated."""
    y, p, r = (math.radians(a) for a in (yaw, pitch, roll))
    turn = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    tilt = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    spin = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return spin @ tilt @ turn


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit normals ``[N, 3]`` (area-weighted; their sign does not matter here)."""
    corners = vertices[faces]
    face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals = np.stack([sum(np.bincount(faces[:, k], face_normals[:, axis], len(vertices)) for k in range(3)) for axis in range(3)], axis=1)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def rodrigues(vectors: np.ndarray) -> np.ndarray:
    """Rotations ``[S, 3, 3]`` by the axis-angle ``vectors`` ``[S, 3]``."""
    angle = np.linalg.norm(vectors, axis=1)
    axis = vectors / np.maximum(angle, 1e-12)[:, None]
    cross = np.zeros((len(vectors), 3, 3))
    cross[:, 0, 1], cross[:, 0, 2], cross[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
    cross -= cross.transpose(0, 2, 1)
    sin, cos = np.sin(angle)[:, None, None], np.cos(angle)[:, None, None]
    return np.eye(3) + sin * cross + (1 - cos) * cross @ cross


class _Fit:
    """Trimmed point-to-plane ICP of the reference's points onto one scan (in mm), from many
    starts at once. Point-to-plane lets the reference slide along the surface, so it
    converges in a few steps where point-to-point crawls."""

    def __init__(self, scan: np.ndarray, normals: np.ndarray) -> None:
        from scipy import ndimage
        from scipy.spatial import cKDTree

        near = np.linalg.norm(scan - np.median(scan, axis=0), axis=1) < HEAD_REACH_MM  # no face point is farther out
        scan, normals = scan[near], normals[near]
        self.scan = scan
        self.normals = normals
        self.tree = cKDTree(scan)
        self.reference = reference_face()
        # the coarse steps look matches up in a grid: each cell names the scan point nearest it
        self.origin = scan.min(axis=0) - REACH_MM
        cells = np.floor((scan - self.origin) / GRID_MM).astype(np.int64)
        self.shape = tuple(int(n) for n in np.ceil((scan.max(axis=0) + REACH_MM - self.origin) / GRID_MM).astype(np.int64) + 1)
        owner = np.full(self.shape, -1, dtype=np.int64)
        owner[tuple(cells.T)] = np.arange(len(scan))
        nearest_cell = ndimage.distance_transform_edt(owner < 0, return_distances=False, return_indices=True)
        self.grid = owner[tuple(nearest_cell)]
        self.strides = np.array([self.shape[1] * self.shape[2], self.shape[2], 1])

    def match(self, points: np.ndarray, exact: bool) -> tuple[np.ndarray, np.ndarray]:
        """(distance, index) of each point's nearest scan point (of the scan point nearest its
        grid cell, unless ``exact``); infinite beyond :data:`REACH_MM`."""
        if exact:
            distance, nearest = self.tree.query(points, distance_upper_bound=REACH_MM)
            return distance, np.minimum(nearest, len(self.scan) - 1)
        cells = ((points - self.origin) * (1.0 / GRID_MM)).astype(np.int64)  # truncation is floor inside the grid
        inside = ((cells >= 0) & (cells < self.shape)).all(axis=1)
        nearest = self.grid.ravel()[np.where(inside, cells @ self.strides, 0)]
        offset = points - self.scan[nearest]
        distance = np.sqrt(np.einsum("ij,ij->i", offset, offset))
        return np.where(inside & (distance <= REACH_MM), distance, np.inf), nearest

    def nose_start(self, rotations: np.ndarray) -> np.ndarray:
        """Translations ``[S, 3]`` putting the reference, turned by each of ``rotations``,
        with its nose tip on the scan's front-most point along the way its nose then points."""
        points = self.scan[:: max(1, len(self.scan) // 1500)]
        count = max(1, len(points) // 500)
        ahead = points @ rotations[:, :, 2].T  # [N, S]
        front = np.argpartition(-ahead, count - 1, axis=0)[:count]  # [count, S]
        tips = np.median(points[front], axis=0)  # [S, 3]
        return tips - rotations @ self.reference.nose_tip

    def run(
        self,
        rotations: np.ndarray,
        translations: np.ndarray,
        steps: int,
        points: np.ndarray,
        scales: np.ndarray | None = None,
        exact: bool = False,
        importance: np.ndarray | None = None,
        keep: float = KEEP,
        resize: bool = True,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(trimmed mean residuals ``[S]``, rotations, scales, translations) after ``steps``
        ICP steps from each start: the reference is ``scale * rotation @ p + translation``.
        It may be scaled within :data:`SIZES` to fit (unless not ``resize``), as people differ
        in size more than a rigid fit forgives. The ``keep`` share of the matches, the best,
        count; matches beyond :data:`REACH_MM` never do; ``exact``: see :meth:`match`;
        ``importance`` ``[P]`` weighs the points (1 each by default)."""
        kept = int(len(points) * keep)
        scales = np.ones(len(rotations)) if scales is None else scales.copy()
        rotations, translations = rotations.copy(), translations.copy()
        for step in range(steps + 1):
            moved = scales[:, None, None] * (points @ rotations.transpose(0, 2, 1)) + translations[:, None]
            distance, nearest = self.match(moved.reshape(-1, 3), exact)
            distance, nearest = distance.reshape(len(rotations), -1), nearest.reshape(len(rotations), -1)
            cut = np.partition(distance, kept - 1, axis=1)[:, kept - 1 : kept]
            inliers = (distance <= cut) & np.isfinite(distance)
            weights = inliers * (1.0 if importance is None else importance)
            residuals = np.where(
                inliers.sum(axis=1) >= kept * 0.9, (np.where(inliers, distance, 0.0) * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-12), np.inf
            )
            if step == steps:
                return residuals, rotations, scales, translations
            # linearised: x -> x + w × x + t + s (x - translation); minimise ((x' - p) . n)^2
            normal, target = self.normals[nearest], self.scan[nearest]
            growth = ((moved - translations[:, None]) * normal).sum(-1, keepdims=True) * resize
            columns = np.concatenate([np.cross(moved, normal), normal, growth], axis=-1)
            error = ((target - moved) * normal).sum(-1)
            weighted = (columns * weights[..., None]).transpose(0, 2, 1)
            update = np.linalg.solve(weighted @ columns + 1e-3 * np.eye(7), weighted @ error[..., None])[..., 0]
            turn = rodrigues(update[:, :3])
            grown = np.clip(scales * (1 + update[:, 6]), *SIZES) if resize else scales
            rotations = turn @ rotations
            translations = np.einsum("sij,sj->si", turn, translations) + update[:, 3:6]
            scales = grown
        raise AssertionError("unreachable")

    def nose_margin(self, rotations: np.ndarray, scales: np.ndarray, translations: np.ndarray) -> np.ndarray:
        """``[S]`` mm, positive where a fit has the nose the way noses are: its ridge slopes
        gently up to the brows while below the tip the face falls back steeply to the lip,
        so the midline 8-28 mm above the tip stands further forward than 8-28 mm below it.
        Unlike the fit's residual, this does not depend on how like the reference a face
        is; 0 where the scan has nothing there."""
        local = np.einsum("sji,snj->sni", rotations, self.scan[None] - translations[:, None]) / scales[:, None, None] - self.reference.nose_tip
        midline = (np.abs(local[..., 0]) < 8.0) & (local[..., 2] > -60.0)
        # the scan's own tip: its front-most midline point within 25 mm of the reference's
        near = midline & (np.abs(local[..., 1]) < 25.0)
        tip = np.take_along_axis(local, np.argmax(np.where(near, local[..., 2], -np.inf), axis=1)[:, None, None], axis=1)
        local = local - tip
        above = midline & (local[..., 1] > 8.0) & (local[..., 1] < 28.0)
        below = midline & (local[..., 1] < -8.0) & (local[..., 1] > -28.0)

        def depth(mask: np.ndarray) -> np.ndarray:
            return np.where(mask, local[..., 2], 0.0).sum(axis=1) / np.maximum(mask.sum(axis=1), 1)

        return np.where(above.any(axis=1) & below.any(axis=1), depth(above) - depth(below), 0.0)

    def symmetric(self, rotation: np.ndarray, scale: float, translation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The fit (reference -> scan) with its yaw and roll corrected by the face's own
        mirror symmetry, which needs no reference shape: the scan mirrored in the fit's
        midplane is fitted back onto the scan; that fit turns by twice the midplane's error.
        Pitch leaves a mirror image unchanged, so it stays the reference fit's."""
        local = (self.scan - translation) @ rotation / scale  # the scan in reference coordinates
        near = np.linalg.norm(local - self.reference.nose_tip, axis=1) < 90.0
        mirrored = local[near][:: max(1, int(near.sum()) // 500)] * np.array([-1.0, 1.0, 1.0])
        _, turned, _, _ = self.run(rotation[None], translation[None], 5, mirrored, np.array([scale]), exact=True)
        twice = rotation.T @ turned[0]  # in reference coordinates
        angle = math.acos(np.clip((np.trace(twice) - 1) / 2, -1.0, 1.0))
        if angle < 1e-9:
            return rotation, translation
        axis = np.array([twice[2, 1] - twice[1, 2], twice[0, 2] - twice[2, 0], twice[1, 0] - twice[0, 1]]) / (2 * math.sin(angle))
        half = rodrigues((axis * angle / 2 * np.array([0.0, 1.0, 1.0]))[None])[0]  # yaw (y) and roll (z) only
        corrected = rotation @ half
        nose = scale * (rotation @ self.reference.nose_tip) + translation
        return corrected, nose - scale * (corrected @ self.reference.nose_tip)


def landmark_starts(mesh: Mesh, millimetres: float) -> np.ndarray:
    """Rotations ``[L, 3, 3]`` that take the reference's landmarks onto the scan's, for
    landmarks in a layout the aligner knows (none for others):

    * the 68-point Multi-PIE layout (facekit, iBUG, the ``folder`` reader's names): eye
      corners and nose;
    * BU-3DFE's 83 points (``.bnd``), as its documentation numbers them: eyes 1-8 and 9-16,
      nose 37-48 (*unconfirmed* on real files here): the centres of both eyes and of the
      nose, once for each way round the eyes may be numbered;
    * landmarks named as Bosphorus' ``.lm3`` files name them (``metadata["landmark_names"]``,
      :data:`NAMED_LANDMARKS`; any count, in any order): eye corners and the nose, once as
      named and once with left and right swapped (whose left a file means is *unconfirmed*).

    They only add starts to the geometric fit, which keeps the better fit, so a layout read
    the wrong way costs nothing but time."""
    marks = mesh.landmarks
    if marks is None or not np.isfinite(marks).all():
        return np.zeros((0, 3, 3))
    target_marks = marks.astype(np.float64) * millimetres
    reference = reference_face().landmarks
    names = mesh.metadata.get("landmark_names")
    if names is not None and len(names) == len(marks):
        pairs = named_pairs([str(name) for name in names], reference, target_marks)
    elif len(marks) not in (68, 83):
        return np.zeros((0, 3, 3))
    elif len(marks) == 68:
        pairs = [(reference[list(MULTI_PIE_RIGID)], target_marks[list(MULTI_PIE_RIGID)])]
    else:
        right, left, nose = reference[36:42].mean(axis=0), reference[42:48].mean(axis=0), reference[27:36].mean(axis=0)
        first, second, bridge = target_marks[0:8].mean(axis=0), target_marks[8:16].mean(axis=0), target_marks[36:48].mean(axis=0)
        pairs = [(np.stack([left, right, nose]), np.stack(order)) for order in ((first, second, bridge), (second, first, bridge))]
    if not pairs:
        return np.zeros((0, 3, 3))
    sources, targets = np.stack([a for a, _ in pairs]), np.stack([b for _, b in pairs])
    rotations, _, _ = kabsch(sources, targets, np.ones(sources.shape[:2]))
    return rotations


def named_pairs(names: list[str], reference: np.ndarray, marks: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(reference points, scan points) of the named landmarks the aligner knows, as named
    and mirrored; none where fewer than three are named."""
    rows = {name.strip().lower(): i for i, name in enumerate(names)}
    known = [(rows[name], row) for name, row in NAMED_LANDMARKS.items() if name in rows]
    if len(known) < 3:
        return []
    mirrored = [(i, MULTI_PIE_MIRROR.get(row, row)) for i, row in known]
    return [(reference[[row for _, row in chosen]], marks[[i for i, _ in chosen]]) for chosen in (known, mirrored)]


def turned_about(point: np.ndarray, rotations: np.ndarray, scales: np.ndarray, translations: np.ndarray, turns: np.ndarray) -> np.ndarray:
    """Translations that keep each fit's ``point`` (of the reference) where it is once its
    rotation becomes ``turns``."""
    placed = scales[:, None] * (rotations @ point) + translations
    return placed - scales[:, None] * (turns @ point)


def search(fit: _Fit, starts: np.ndarray) -> tuple[float, np.ndarray, float, np.ndarray, int]:
    """(residual, rotation, scale, translation, the start it came from) of the best fit of
    the reference to ``fit``'s scan from ``starts`` (rotations ``[S, 3, 3]``)."""
    reference = fit.reference
    sparse, middle = reference.face[:: max(1, len(reference.face) // 100)], reference.face[:: max(1, len(reference.face) // 160)]
    final = np.concatenate([reference.face[:: max(1, len(reference.face) // 500)], reference.points])
    importance = np.repeat([1.0, RIGID_WEIGHT], [len(final) - len(reference.points), len(reference.points)])

    # every start briefly on few points, then the likeliest further
    residuals, rotations, scales, translations = fit.run(starts, fit.nose_start(starts), 2, sparse[::2])
    likely = np.argsort(residuals)[:LIKELY]
    residuals, rotations, scales, translations = fit.run(rotations[likely], translations[likely], 5, sparse, scales[likely])
    top = np.argsort(residuals)[:8]
    # refine the best, and around them, turned about the nose (ICP reaches about 30 degrees)
    around = np.stack([rotations[i] @ head_rotation(*turn) for i in top for turn in AROUND])
    sizes = np.repeat(scales[top], len(AROUND))
    shifts = np.repeat(translations[top], len(AROUND), axis=0)
    residuals, rotations, scales, translations = fit.run(around, turned_about(reference.nose_tip, np.repeat(rotations[top], len(AROUND), axis=0), sizes, shifts, around), 6, middle, sizes)
    # the best fits and each of them upside down, fitted on the whole face and, weighted up, its
    # rigid points: the whole face tells up from down, the rigid points the exact tilt
    finalists = np.argsort(residuals)[:FINALISTS]
    flipped = rotations[finalists] @ head_rotation(0.0, 0.0, 180.0)
    scores, rotations, scales, translations = fit.run(
        np.concatenate([rotations[finalists], flipped]),
        # turned about the face's middle, where an upside-down fit has it too
        np.concatenate([translations[finalists], turned_about(reference.face.mean(axis=0), rotations[finalists], scales[finalists], translations[finalists], flipped)]),
        8,
        final,
        np.concatenate([scales[finalists]] * 2),
        importance=importance,
    )
    # the best fit whose nose clearly points down, where one fits about as well as the best
    # of all; else the best fit
    pairs = len(finalists)
    with np.errstate(invalid="ignore"):
        nose_down = (fit.nose_margin(rotations, scales, translations) > NOSE_MM) & (scores < COMPARABLE_FITS * scores.min())
    chosen = int(np.argmin(np.where(nose_down, scores, np.inf)) if nose_down.any() else np.argmin(scores))
    # the chosen fit and its upside-down twin, each turned in pitch (CONSENSUS) and refined
    # with exact matches, the reference at its own size and nearly every match counted: the
    # lowest residual wins. That residual depends only on where the reference sits on the
    # face, never on how the scan came in, and without a free size (which a face unlike the
    # reference trades against pitch) or a choice of matches it has one clear minimum, so a
    # scan ends in the same frame whatever its pose. Every other point of the final fit's is as
    # consistent (a turned scan's frame within 0.05 degrees of the upright one's, 9 times in 10)
    # for two thirds of the time
    turns = np.stack([rotations[chosen] @ head_rotation(0.0, 0.0, flip) @ head_rotation(0.0, pitch, 0.0) for flip in (0.0, 180.0) for pitch in CONSENSUS])
    ones = np.ones(len(turns))
    centre = reference.face.mean(axis=0)  # turned about the face's middle, where an upside-down fit has it too
    starts = scales[chosen] * (rotations[chosen] @ centre) + translations[chosen] - turns @ centre
    consensus, turns, _, starts = fit.run(turns, starts, CONSENSUS_STEPS, final[::2], ones, exact=True, keep=CONSENSUS_KEEP, resize=False)
    best = int(np.argmin(consensus))
    rotation, scale, translation = turns[best], 1.0, starts[best]
    residual = float(fit.run(turns[[best]], starts[[best]], 0, final, ones[:1], exact=True, importance=importance)[0][0])
    if not np.isfinite(consensus[best]):  # the exact matches lost the face the grid's found: keep the grid's fit
        residual, rotation, scale, translation = scores[chosen], rotations[chosen], float(scales[chosen]), translations[chosen]
    rotation, translation = fit.symmetric(rotation, float(scale), translation)
    return float(residual), rotation, float(scale), translation, int(likely[top[finalists[chosen % pairs] // len(AROUND)]])


def find_frame(mesh: Mesh, units: Units = "auto", align: bool = True) -> FaceFrame:
    """The canonical frame of ``mesh`` (see the module docstring). ``units`` overrides the
    size test; ``align=False`` takes the mesh as Y-up, facing +z and upright (the units
    are still found unless given)."""
    source = mesh.where
    vertices = mesh.vertices.astype(np.float64)
    normals = vertex_normals(vertices, mesh.faces)
    used = np.bincount(mesh.faces.ravel(), minlength=len(vertices)) > 0  # a vertex no triangle uses is no surface
    vertices, normals = vertices[used], normals[used]
    if len(vertices) > SCAN_POINTS:
        chosen = np.sort(np.random.default_rng(0).choice(len(vertices), SCAN_POINTS, replace=False))
        vertices, normals = vertices[chosen], normals[chosen]
    tried = [given_units(vertices, units, source)] if units != "auto" else candidate_units(vertices, source)
    if not align:
        return FaceFrame(tried[0], "+y", "+z", 0.0, 0.0, 0.0, "given", 0.0, 1.0, tuple(map(tuple, np.eye(3))), (0.0, 0.0, 0.0))

    best: tuple[float, np.ndarray, float, np.ndarray, str, str, _Fit] | None = None
    for unit in tried:
        fit = _Fit(vertices * UNITS[unit], normals)
        starts = np.stack([a.T @ head_rotation(*turn) for a in axis_rotations() for turn in STARTS])
        from_landmarks = landmark_starts(mesh, UNITS[unit])
        geometric = len(starts)
        starts = np.concatenate([starts, from_landmarks])
        residual, rotation, scale, translation, start = search(fit, starts)
        if best is None or residual < best[0]:
            best = (residual, rotation, scale, translation, unit, "landmarks" if start >= geometric else "geometry", fit)
    residual, rotation, scale, translation, unit, method, fit = best  # type: ignore[misc]
    if not math.isfinite(residual):
        raise MeshError(f"{source}: no part of it fits a face, in any orientation: is it a face scan? No prediction made")
    distance, _ = fit.match(scale * fit.reference.face @ rotation.T + translation, exact=True)
    coverage = float(np.mean(distance < COVER_MM))
    # reference = R^T (scan - t) / s; the scan keeps its size, its nose where the reference's is
    to_canonical = rotation.T
    nose = fit.reference.nose_tip
    shift = nose - to_canonical @ (scale * (rotation @ nose) + translation)
    axes = max(axis_rotations(), key=lambda a: float(np.trace(to_canonical @ a.T)))
    yaw, pitch, roll = euler(axes @ to_canonical.T)
    names = ("+x", "+y", "+z", "-x", "-y", "-z")

    def axis_name(row: np.ndarray) -> str:
        index = int(np.argmax(np.abs(row)))
        return names[index + (3 if row[index] < 0 else 0)]

    warnings = []
    if residual > FIT_LIMIT_MM:
        warnings.append(f"the face fits the reference poorly ({residual:.1f} mm, usually under {FIT_LIMIT_MM:.0f}): its pose may be wrong")
    if coverage < MIN_COVERAGE:
        warnings.append(
            f"the scan shows {coverage:.0%} of the face (usually over {MIN_COVERAGE:.0%}): turned away from the scanner, cropped or holed "
            "too much for its label to be trusted"
        )
    return FaceFrame(
        units=unit,
        up=axis_name(axes[1]),
        facing=axis_name(axes[2]),
        yaw=round(yaw, 2),
        pitch=round(pitch, 2),
        roll=round(roll, 2),
        method=method,
        fit_mm=round(residual, 3),
        coverage=round(coverage, 3),
        rotation=tuple(tuple(float(x) for x in row) for row in to_canonical),
        translation=tuple(float(x) for x in shift),
        warnings=tuple(warnings),
    )
