"""FACS action units as smooth displacement fields over regions of the face.

Each :class:`ActionUnit` gives, at full activation (1.0, about FACS intensity E), a
displacement field ``[N, 3]`` in mm over a :class:`~.head.Face`, plus how far it moves the
eyelids and how many degrees it opens the jaw. A face is deformed by activations per side,
``{au: (right, left)}``: fields scale linearly with the activation of the side a vertex is
on (blended across the midline), lids move per eye, the jaw rotates about the
temporomandibular joint. Fields are computed once per face and cached on it, so deforming
a face again (another intensity, another frame) costs a few array operations.

Fields vanish where another mechanism owns the motion: brow fields stop above the upper
lid, cheek fields below the lower lid (the lids move by :class:`~.head.Lids`), and only
the lip-parting units (16, 25, 10, 26) move the two lips apart across the seam.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import numpy as np

from affectkit_plugins.synthetic.face_models import FaceModelStyle
from affectkit_plugins.synthetic.head import SEAM_HALF, Face, Lids, gauss, gauss2, smoothstep

Activations = Mapping[int, tuple[float, float]]  # AU -> (right, left) activation, 0..~1.3


@dataclass(frozen=True)
class ActionUnit:
    number: int
    name: str
    field: Callable[[Face], np.ndarray] | None = None
    upper_lid: float = 0.0  # mm the upper lid opens at activation 1
    lower_lid: float = 0.0  # mm the lower lid rises at activation 1
    jaw: float = 0.0  # degrees the jaw opens at activation 1


def _stack(face: Face, dx=0.0, dy=0.0, dz=0.0) -> np.ndarray:
    out = np.zeros((face.n, 3))
    out[:, 0] += dx
    out[:, 1] += dy
    out[:, 2] += dz
    return out


def _above_lid(face: Face, lo: float = 5.0, hi: float = 13.0) -> np.ndarray:
    return smoothstep(face.anchors["y_eye"] + lo, face.anchors["y_eye"] + hi, face.Y)


def _forehead_wrinkles(face: Face, x0: float, sx: float, period: float = 9.0) -> np.ndarray:
    a = face.anchors
    Y = face.Y
    band = smoothstep(a["y_brow"] + 7, a["y_brow"] + 13, Y) * smoothstep(a["y_top"] - 4, a["y_top"] - 14, Y)
    return np.cos(2 * np.pi * (Y - a["y_brow"]) / period) * band * gauss(np.abs(face.X), x0, sx)


def au1(f: Face) -> np.ndarray:  # inner brow raiser (frontalis, pars medialis)
    a, aX = f.anchors, np.abs(f.X)
    up = 8.5 * gauss2(aX, f.Y, a["brow_in"] + 4, a["y_brow"] + 6, 11, 16) * _above_lid(f)
    return _stack(f, dy=up, dz=-0.9 * _forehead_wrinkles(f, 0.0, 20.0))


def au2(f: Face) -> np.ndarray:  # outer brow raiser (frontalis, pars lateralis)
    a, aX = f.anchors, np.abs(f.X)
    up = 8.5 * gauss2(aX, f.Y, a["brow_out"] - 6, a["y_brow"] + 5, 13, 16) * _above_lid(f)
    return _stack(f, dy=up, dz=-0.8 * _forehead_wrinkles(f, 34.0, 14.0))


def au4(f: Face) -> np.ndarray:  # brow lowerer (corrugator, depressor supercilii, procerus)
    a, aX, X, Y = f.anchors, np.abs(f.X), f.X, f.Y
    region = gauss2(aX, Y, a["brow_in"] + 6, a["y_brow"] + 1, 16, 13) * _above_lid(f, 0.0, 22.0)
    medial = -4.5 * np.tanh(X / 5.0) * gauss2(aX, Y, a["brow_in"] + 8, a["y_brow"], 14, 12)
    dz = 1.8 * gauss2(aX, Y, a["brow_in"] + 5, a["y_brow"], 12, 9)
    dz += 1.5 * gauss2(aX, Y, a["eye_x"], a["y_eye"] + 9, 12, 3.5)  # lid skin bunches under the brow
    dz -= 1.8 * gauss(aX, 6.0, 1.6) * gauss(Y, a["y_brow"] - 1.0, 7.0)  # vertical glabellar furrows
    dz += 1.2 * gauss2(X, Y, 0.0, a["y_brow"] - 4.0, 3.0, 6.0)
    return _stack(f, dx=medial, dy=-6.5 * region, dz=dz)


def au5(f: Face) -> np.ndarray:  # upper lid raiser: lid skin folds up under the brow
    a = f.anchors
    up = 1.5 * gauss2(np.abs(f.X), f.Y, a["eye_x"], a["y_eye"] + 10, 12, 4) * _above_lid(f, 3.0, 7.0)
    return _stack(f, dy=up)


def au6(f: Face) -> np.ndarray:  # cheek raiser (orbicularis oculi, pars orbitalis)
    a, aX, Y = f.anchors, np.abs(f.X), f.Y
    below = smoothstep(a["y_eye"] - 4, a["y_eye"] - 15, Y)
    cheek = gauss2(aX, Y, a["eye_x"] + 6, a["y_eye"] - 19, 17, 11) * below
    # crow's feet: lines radiating from the outer eye corner
    r = np.hypot(aX - a["x_out"], Y - a["y_eye"])
    phi = np.arctan2(Y - a["y_eye"], aX - a["x_out"])
    crow = np.cos(12 * phi) * gauss(r, 11.0, 4.0) * smoothstep(a["x_out"], a["x_out"] + 4, aX)
    return _stack(f, dy=5.0 * cheek, dz=3.5 * cheek - 0.8 * crow)


def au7(f: Face) -> np.ndarray:  # lid tightener (orbicularis oculi, pars palpebralis)
    a = f.anchors
    g = gauss2(np.abs(f.X), f.Y, a["eye_x"], a["y_eye"] - 7, 10, 3)
    return _stack(f, dy=1.0 * g, dz=1.2 * g)


def au9(f: Face) -> np.ndarray:  # nose wrinkler (levator labii superioris alaeque nasi)
    a, aX, X, Y = f.anchors, np.abs(f.X), f.X, f.Y
    dy = 4.0 * gauss2(aX, Y, a["nose_w"] * 0.6, a["y_sn"] + 6, 9, 9)
    dy += 2.0 * gauss2(aX, Y, 28, a["y_sn"], 12, 10)
    dy -= 3.5 * gauss2(aX, Y, a["brow_in"] + 2, a["y_brow"], 10, 10) * _above_lid(f, 2.0, 14.0)
    dy += 2.5 * f.w_upper_lip * gauss2(X, Y, 0, a["y_m"] + 6, 18, 8)
    bridge = np.cos(2 * np.pi * (Y - a["y_eye"] + 12) / 5.0) * gauss(X, 0, 7) * gauss(Y, a["y_eye"] - 10, 6)
    dz = 1.0 * bridge - 2.0 * f.fold
    return _stack(f, dy=dy, dz=dz)


def au10(f: Face) -> np.ndarray:  # upper lip raiser
    a, aX, Y = f.anchors, np.abs(f.X), f.Y
    g = f.w_upper_lip * gauss2(aX, Y, 10, a["y_m"] + 5, 14, 9)
    return _stack(f, dy=4.0 * g, dz=1.0 * g - 1.5 * f.fold)


def au12(f: Face) -> np.ndarray:  # lip corner puller (zygomaticus major)
    a, aX, X, Y = f.anchors, np.abs(f.X), f.X, f.Y
    c = gauss2(aX, Y, a["mouth_w"], a["y_m"], 13, 11)
    cheek = gauss2(aX, Y, a["mouth_w"] + 12, a["y_m"] + 18, 13, 12)
    return _stack(f, dx=6.0 * np.tanh(X / 8.0) * c, dy=8.0 * c + 2.0 * cheek, dz=-3.0 * c + 2.5 * cheek - 1.5 * f.fold)


def au15(f: Face) -> np.ndarray:  # lip corner depressor (depressor anguli oris)
    a, aX, X, Y = f.anchors, np.abs(f.X), f.X, f.Y
    c = gauss2(aX, Y, a["mouth_w"], a["y_m"] - 2, 10, 10)
    return _stack(f, dx=1.0 * np.tanh(X / 8.0) * c, dy=-6.0 * c, dz=0.5 * c)


def au16(f: Face) -> np.ndarray:  # lower lip depressor
    a = f.anchors
    g = f.w_lower_lip * gauss2(f.X, f.Y, 0, a["y_m"] - 6, a["mouth_w"] * 0.75, 9)
    return _stack(f, dy=-6.0 * g, dz=2.5 * g)


def au17(f: Face) -> np.ndarray:  # chin raiser (mentalis)
    a, X, Y = f.anchors, f.X, f.Y
    c = gauss2(X, Y, 0, a["y_pog"], 16, 10)
    lip = f.w_lower_lip * gauss2(X, Y, 0, a["y_m"] - 6, a["mouth_w"] * 0.7, 6)
    return _stack(f, dy=3.0 * c, dz=2.5 * c + 2.0 * lip)


def _lips(f: Face) -> np.ndarray:
    """A soft weight over both lips, for fields that must not crease the lip borders."""
    a = f.anchors
    return np.clip(1.0 - (f.X / (a["mouth_w"] + 4.0)) ** 2, 0.0, 1.0) * gauss(f.Y, a["y_m"], 6.0)


def au20(f: Face) -> np.ndarray:  # lip stretcher (risorius, platysma)
    a, aX, X, Y = f.anchors, np.abs(f.X), f.X, f.Y
    c = gauss2(aX, Y, a["mouth_w"], a["y_m"] - 1, 12, 11)
    return _stack(f, dx=9.0 * np.tanh(X / 8.0) * c, dy=-2.5 * c, dz=-2.5 * c - 1.5 * _lips(f))


def au23(f: Face) -> np.ndarray:  # lip tightener (orbicularis oris)
    a, aX, X, Y = f.anchors, np.abs(f.X), f.X, f.Y
    lips = _lips(f)
    dx = -3.5 * np.tanh(X / 8.0) * gauss2(aX, Y, a["mouth_w"], a["y_m"], 9, 9)
    off = Y - a["y_m"]
    dy = -0.3 * np.sign(off) * np.maximum(np.abs(off) - SEAM_HALF, 0.0) * lips  # thin the lips; seam edges stay
    dz = -2.0 * lips + 1.5 * gauss2(X, Y, 0, a["y_m"], a["mouth_w"] + 4, 14)
    return _stack(f, dx=dx, dy=dy, dz=dz)


def au25(f: Face) -> np.ndarray:  # lips part
    a, X, Y = f.anchors, f.X, f.Y
    lower = f.w_lower_lip * gauss2(X, Y, 0, a["y_m"] - 5, a["mouth_w"] * 0.9, 12)
    upper = f.w_upper_lip * gauss2(X, Y, 0, a["y_m"] + 4, a["mouth_w"] * 0.9, 6)
    return _stack(f, dy=-3.0 * lower + 1.0 * upper)


def au26(f: Face) -> np.ndarray:  # jaw drop: the mandible glides forward as it rotates
    return _stack(f, dz=2.5 * f.w_jaw)


ACTION_UNITS: dict[int, ActionUnit] = {
    au.number: au
    for au in (
        ActionUnit(1, "inner brow raiser", au1, upper_lid=0.4),
        ActionUnit(2, "outer brow raiser", au2, upper_lid=0.5),
        ActionUnit(4, "brow lowerer", au4, upper_lid=-1.2),
        ActionUnit(5, "upper lid raiser", au5, upper_lid=3.8),
        ActionUnit(6, "cheek raiser", au6, upper_lid=-1.0, lower_lid=2.2),
        ActionUnit(7, "lid tightener", au7, upper_lid=-1.5, lower_lid=2.8),
        ActionUnit(9, "nose wrinkler", au9, upper_lid=-0.6, lower_lid=1.2),
        ActionUnit(10, "upper lip raiser", au10),
        ActionUnit(12, "lip corner puller", au12, lower_lid=0.5),
        ActionUnit(15, "lip corner depressor", au15),
        ActionUnit(16, "lower lip depressor", au16),
        ActionUnit(17, "chin raiser", au17),
        ActionUnit(20, "lip stretcher", au20),
        ActionUnit(23, "lip tightener", au23),
        ActionUnit(25, "lips part", au25),
        ActionUnit(26, "jaw drop", au26, jaw=13.0),
    )
}


def field(face: Face, number: int, style: FaceModelStyle | None = None) -> np.ndarray:
    """The cached displacement field of one action unit on ``face``, shaped as the face
    model ``style`` shapes it (None: the base face model)."""
    key = ("au", number, style.index if style else 0)
    if key not in face.cache:
        unit = ACTION_UNITS[number]
        if unit.field is None:
            face.cache[key] = np.zeros((face.n, 3))
        elif style is None:
            face.cache[key] = unit.field(face)
        else:
            shape = style.units[number]
            # the field evaluated where it would be on a face this much wider and higher
            moved = replace(face, X=face.X / shape.extent, Y=face.Y - shape.shift, cache={})
            face.cache[key] = shape.gain * unit.field(moved) @ np.asarray(shape.turn).T
    return face.cache[key]


def _left_weight(face: Face) -> np.ndarray:
    if "left" not in face.cache:
        face.cache["left"] = 1.0 / (1.0 + np.exp(-face.X / 4.0))
    return face.cache["left"]


def deform(face: Face, activations: Activations, style: FaceModelStyle | None = None) -> tuple[np.ndarray, Lids]:
    """Displace ``face.rest`` by ``activations`` as the face model ``style`` does (None: the
    base one); returns positions and the lid state."""
    left = _left_weight(face)
    pos = face.rest.copy()
    upper, lower = np.zeros(2), np.zeros(2)
    jaw = 0.0
    for number, (right_a, left_a) in sorted(activations.items()):
        if number not in ACTION_UNITS:
            raise KeyError(f"unknown action unit AU{number}; known: {sorted(ACTION_UNITS)}")
        if right_a == 0 and left_a == 0:
            continue
        unit = ACTION_UNITS[number]
        weight = right_a + (left_a - right_a) * left
        pos += field(face, number, style) * weight[:, None]
        upper += unit.upper_lid * np.array([right_a, left_a])
        lower += unit.lower_lid * np.array([right_a, left_a])
        jaw += unit.jaw * (right_a + left_a) / 2
    if style is not None:
        upper, lower, jaw = style.lids * upper, style.lids * lower, style.jaw * jaw
    if jaw:
        a = face.anchors
        pivot_y = a["y_eye"] - 25.0
        pivot_z = -0.95 * a["a_cheek"] * a["depth_ratio"]
        angle = np.radians(jaw) * face.w_jaw
        cos, sin = np.cos(angle), np.sin(angle)
        y, z = pos[:, 1] - pivot_y, pos[:, 2] - pivot_z
        pos[:, 1] = pivot_y + y * cos - z * sin
        pos[:, 2] = pivot_z + y * sin + z * cos
    return pos, Lids(upper=tuple(upper), lower=tuple(lower))


def describe() -> list[str]:
    """``AU12 lip corner puller`` lines for every known action unit."""
    return [f"AU{n} {u.name}" for n, u in sorted(ACTION_UNITS.items())]


__all__ = ["ACTION_UNITS", "ActionUnit", "Activations", "deform", "describe", "field"]
