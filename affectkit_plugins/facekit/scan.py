"""What a 3D scanner does to a face: crop, resolution, smoothing, noise, holes, pose.

Real scanners and their pipelines differ in all of these, so a model that is to transfer
between datasets must not key on any of them. :func:`simulate_scan` applies each effect
with parameters drawn from ``rng`` within the bounds of :class:`ScanRealism`; a bound of 0
(or ``None``) turns that effect off. Every step works on plain arrays: ``vertices``
``[N, 3]`` in mm, ``triangles`` ``[F, 3]``, ``landmarks`` ``[L, 3]`` (moved with the pose,
never cropped: they are annotations, as in BU-3DFE's ``.bnd`` files).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from affectkit.data.mesh import unique_rows


@dataclass(frozen=True)
class ScanRealism:
    """Bounds of each effect; every scan draws its own values inside them."""

    crop: bool  # crop to the face with a random extent of forehead, chin, ears and neck
    resolution: tuple[float, float] | None  # vertex density relative to the model's
    smoothing: int  # up to this many Laplacian smoothing passes
    noise: float  # sensor noise along the normal: std up to this many mm
    holes: float  # up to this fraction of the surface lost in round patches
    pose: float  # yaw, pitch and roll jitter up to this many degrees
    scale: float  # size jitter up to this fraction, along each axis on its own


@dataclass
class Scan:
    vertices: np.ndarray
    triangles: np.ndarray
    landmarks: np.ndarray


@dataclass(frozen=True)
class CropFrame:
    """Where the crop is placed: landmark positions (mm) of the face being scanned."""

    nose_tip: np.ndarray
    chin: np.ndarray
    brows: np.ndarray  # the brows' centre
    eye_width: float  # outer eye corner to outer eye corner


def simulate_scan(scan: Scan, realism: ScanRealism, rng: np.random.Generator, frame: CropFrame | None = None) -> Scan:
    """``scan`` as a scanner would deliver it; the crop needs ``frame``."""
    vertices, triangles = scan.vertices, scan.triangles
    # Draw every parameter up front, the same draws whatever is switched off, so turning
    # one effect off leaves the others as they were.
    u = rng.uniform(size=16)
    effects = rng.integers(2**32, size=2)  # seeds of the noise and holes draws
    low, high = realism.resolution or (1.0, 1.0)
    density = low + (high - low) * u[5]
    passes = int(u[6] * (realism.smoothing + 1))
    sigma, hole_fraction = realism.noise * u[7], realism.holes * u[8]
    angles = realism.pose * (2 * u[9:12] - 1)
    size = 1.0 + realism.scale * (2 * u[12:15] - 1)  # per axis: wider, longer, deeper faces

    if realism.crop and frame is not None:
        triangles = crop(vertices, triangles, frame, u[:5])
    vertices, triangles = compact(vertices, triangles)
    if realism.resolution:
        vertices, triangles = resample(vertices, triangles, density)
    if passes:
        vertices = smooth(vertices, triangles, passes)
    if sigma > 0:
        normals = vertex_normals(vertices, triangles)
        vertices = vertices + normals * np.random.default_rng(effects[0]).normal(0.0, sigma, (len(vertices), 1))
    if hole_fraction > 0:
        triangles = punch_holes(vertices, triangles, hole_fraction, np.random.default_rng(effects[1]))
        vertices, triangles = compact(vertices, triangles)
    transform = rotation_matrix(*angles) * size  # scale along the face's axes, then turn
    centre = vertices.mean(axis=0)

    def move(points: np.ndarray) -> np.ndarray:
        return ((points - centre) @ transform.T + centre).astype(np.float32)

    return Scan(move(vertices), triangles, move(scan.landmarks))


def crop(vertices: np.ndarray, triangles: np.ndarray, frame: CropFrame, extent: np.ndarray) -> np.ndarray:
    """The triangles inside a rounded box around the face, its size drawn from ``extent``
    (5 numbers in [0, 1]): forehead height above the brows, neck length below the chin, how
    far out toward the ears, the box's roundness, and how deep behind the nose it reaches."""
    nose, chin, brows, eyes = frame.nose_tip, frame.chin, frame.brows, frame.eye_width
    top = brows[1] + 15.0 + 45.0 * extent[0]  # 15..60 mm above the brows: hairline or below
    bottom = chin[1] - 50.0 * extent[1]  # 0..50 mm of neck below the chin
    half_width = eyes * (0.75 + 0.45 * extent[2])  # from inside the cheeks to past the ears
    roundness = 2.0 + 6.0 * extent[3]  # superellipse exponent: an oval (2) to a box (8)
    back = nose[2] - (70.0 + 60.0 * extent[4])  # 70..130 mm behind the nose tip
    centre_y, half_height = (top + bottom) / 2, (top - bottom) / 2
    centres = vertices[triangles].mean(axis=1)
    inside = (np.abs(centres[:, 0] / half_width) ** roundness + np.abs((centres[:, 1] - centre_y) / half_height) ** roundness) <= 1.0
    return triangles[inside & (centres[:, 2] >= back)]


def compact(vertices: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop the vertices no triangle uses."""
    used = np.unique(triangles)
    index = np.full(len(vertices), -1, dtype=np.int64)
    index[used] = np.arange(len(used))
    return vertices[used], index[triangles]


def mean_edge(vertices: np.ndarray, triangles: np.ndarray) -> float:
    corners = vertices[triangles]
    return float(np.linalg.norm(corners - np.roll(corners, 1, axis=1), axis=2).mean())


def subdivide(vertices: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split every triangle into four at its edge midpoints (the surface stays where it is)."""
    edges = np.sort(np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]]), axis=1)
    unique, inverse = unique_rows(edges, return_inverse=True)
    mid = len(vertices) + inverse.reshape(3, -1).T  # [F, 3]: midpoints of edges 01, 12, 20
    a, b, c = triangles.T
    ab, bc, ca = mid.T
    new = np.stack([np.stack([a, ab, ca], 1), np.stack([ab, b, bc], 1), np.stack([ca, bc, c], 1), np.stack([ab, bc, ca], 1)])
    return np.concatenate([vertices, vertices[unique].mean(axis=1)]), new.reshape(-1, 3)


def cluster(vertices: np.ndarray, triangles: np.ndarray, cell: float) -> tuple[np.ndarray, np.ndarray]:
    """Vertex clustering on a grid of ``cell`` mm: the cheap decimation of scanner software."""
    keys = np.floor(vertices / cell).astype(np.int64)
    _, label, counts = unique_rows(keys - keys.min(axis=0), return_inverse=True, return_counts=True)
    label = label.reshape(-1)
    merged = np.zeros((len(counts), 3))
    np.add.at(merged, label, vertices)
    merged /= counts[:, None]
    faces = label[triangles]
    keep = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 2] != faces[:, 0])
    faces = unique_rows(faces[keep])
    return compact(merged, faces)


def resample(vertices: np.ndarray, triangles: np.ndarray, density: float) -> tuple[np.ndarray, np.ndarray]:
    """About ``density`` times as many vertices: subdivide above 1, cluster below."""
    edge = mean_edge(vertices, triangles)
    if density > 1.0:
        vertices, triangles = subdivide(vertices, triangles)
        if density >= 4.0:
            return vertices, triangles
    elif density > 0.95:
        return vertices, triangles
    return cluster(vertices, triangles, edge / math.sqrt(density))


def neighbour_mean(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    edges = np.concatenate([edges, edges[:, ::-1]])
    total = np.zeros_like(vertices, dtype=np.float64)
    np.add.at(total, edges[:, 0], vertices[edges[:, 1]])
    count = np.bincount(edges[:, 0], minlength=len(vertices))[:, None]
    return np.where(count > 0, total / np.maximum(count, 1), vertices)


def smooth(vertices: np.ndarray, triangles: np.ndarray, passes: int, weight: float = 0.5) -> np.ndarray:
    """``passes`` of uniform Laplacian smoothing, each moving a vertex ``weight`` of the way
    to its neighbours' mean."""
    for _ in range(passes):
        vertices = vertices + weight * (neighbour_mean(vertices, triangles) - vertices)
    return vertices


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    corners = vertices[triangles]
    face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals = np.zeros_like(vertices, dtype=np.float64)
    for k in range(3):
        np.add.at(normals, triangles[:, k], face_normals)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def punch_holes(vertices: np.ndarray, triangles: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """The triangles minus round patches covering about ``fraction`` of the surface."""
    corners = vertices[triangles]
    centres = corners.mean(axis=1)
    area = np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1) / 2
    patches = int(rng.integers(2, 9))
    radius = math.sqrt(fraction * area.sum() / patches / math.pi)
    drop = np.zeros(len(triangles), bool)
    for _ in range(patches * 4):  # patches overlap: add until enough is gone
        centre = centres[rng.integers(len(triangles))]
        drop |= ((centres - centre) ** 2).sum(axis=1) < (radius * rng.uniform(0.5, 1.5)) ** 2
        if area[drop].sum() >= fraction * area.sum():
            break
    return triangles[~drop]


def rotation_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Rotation by ``yaw`` about +y, ``pitch`` about +x and ``roll`` about +z, in degrees."""
    y, p, r = np.radians([yaw, pitch, roll])
    turn = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    tilt = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    spin = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return spin @ tilt @ turn
