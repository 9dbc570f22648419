"""A disk cache of rendered views, so a second pass over a dataset renders nothing.

Each mesh is stored in its own file, named by :meth:`affectkit.data.mesh.Mesh.content_hash`,
inside a folder named by a digest of everything else that changes the images: the
renderer and its options, the view angles and the image size. The folder also holds a
readable ``settings.json`` saying what produced it.

Files are safetensors with compact types: rgb, normals and mask as uint8 (normals
mapped from [-1, 1]), depth as float16. Every result, hit or miss, goes through this
encoding, so a run computes exactly the same images whether the cache is cold, warm or
disabled. Writers put a file beside its final name and ``os.replace`` it into place, so
several processes may fill one cache at once and a reader never sees a partial file.

Before a mesh is rendered it is brought into the canonical face frame
(:mod:`affectkit.data.face_frame`) as ``frame`` says; what was found (units, pose) is stored
with its images and returned with them (``RenderedViews.frames``), so a hit costs no fit.
The frames found are also kept on their own, in ``frames/`` beside the render folders and
keyed by the mesh and the frame settings only, so rendering the same scans at another size
or from other views fits none of them again.

Every file carries, in its metadata, a digest of its tensors and of the mesh it shows; a
file whose tensors no longer match (altered, damaged, or another mesh's) is a miss: it is
rendered again, rewritten and counted in ``rejected`` (a warning names the first), so a
tampered cache can neither change results nor go unnoticed.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from affectkit.data.face_frame import FRAME_VERSION, FaceFrame, Units, find_frame, turned
from affectkit.data.mesh import Mesh
from affectkit.interfaces import RenderedViews, Renderer
from affectkit.recipe import FrameConfig
from affectkit.render.cameras import PLACEMENT, View

#: no turn: every scan as upright as the aligner makes it
NO_SPREAD = (0.0, 0.0, 0.0)

#: Bump when the stored layout changes: old entries then stop matching.
FORMAT_VERSION = 2


def renderer_id(renderer: Renderer, name: str | None = None) -> str:
    """``name:options-json:placement`` identifying a renderer, its settings and how faces
    are placed before it (:data:`affectkit.render.cameras.PLACEMENT`) for cache keys."""
    label = name or f"{type(renderer).__module__}.{type(renderer).__qualname__}"
    return f"{label}:{renderer.options.model_dump_json()}:{PLACEMENT}"


class RenderCache:
    """Renders meshes through ``renderer``, keeping each mesh's images on disk under ``root``.

    ``renderer_id`` names the renderer and its options (see :func:`renderer_id`); it is
    part of the key, so two renderers or two option sets never share entries. ``root``
    ``None`` disables the disk: every mesh is rendered (and still encoded the same way).
    ``frame`` brings each mesh into the canonical face frame first (``None``: meshes are
    rendered as they come). ``hits`` and ``misses`` count meshes served from disk and meshes
    rendered.
    """

    def __init__(
        self,
        renderer: Renderer,
        renderer_id: str,
        views: Sequence[View],
        size: int,
        root: str | Path | None,
        device: torch.device | str = "cpu",
        frame: FrameConfig | None = None,
    ) -> None:
        self.renderer = renderer
        self.renderer_id = renderer_id
        self.views = tuple(views)
        self.size = int(size)
        self.device = torch.device(device)
        self.frame = frame
        self.hits = 0
        self.misses = 0
        #: entries found on disk but refused (digest mismatch, damaged, not a file)
        self.rejected = 0
        settings = {
            "format": FORMAT_VERSION,
            "renderer": renderer_id,
            # Names do not change the pixels; angles and their order do.
            "views": [[view.yaw, view.pitch, view.roll] for view in self.views],
            "size": self.size,
            "frame": None if frame is None else {**frame.model_dump(mode="json"), "version": FRAME_VERSION},
        }
        text = json.dumps(settings, sort_keys=True)
        self.key = hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
        self.folder = None if root is None else Path(root) / self.key
        placing = json.dumps(settings["frame"], sort_keys=True)
        self.frames_folder = None if root is None or frame is None else Path(root) / "frames" / hashlib.blake2b(placing.encode(), digest_size=8).hexdigest()
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            described = self.folder / "settings.json"
            if not described.exists():
                _write_atomic(described, lambda path: path.write_text(json.dumps(settings, indent=2) + "\n"))

    def path(self, mesh: Mesh, units: Units | None = None, spread: tuple[float, float, float] = NO_SPREAD) -> Path | None:
        """Where ``mesh``'s images are (or would be) stored; ``None`` without a disk."""
        return self._path(self._digest(mesh, units, spread))

    def _digest(self, mesh: Mesh, units: Units | None, spread: tuple[float, float, float]) -> str:
        """The mesh's content hash, with the per-call placement settings where they are set."""
        digest = mesh.content_hash()
        if units is None and tuple(spread) == NO_SPREAD:
            return digest
        return hashlib.blake2b(f"{digest}:{units}:{list(spread)}".encode(), digest_size=16).hexdigest()

    def place(self, mesh: Mesh, units: Units | None = None, spread: tuple[float, float, float] = NO_SPREAD, seed: str = "") -> tuple[Mesh, FaceFrame | None]:
        """``mesh`` in the canonical frame (turned by ``spread``, seeded by ``seed``), and
        the frame found; the mesh as it is without ``frame``."""
        if self.frame is None:
            return mesh, None
        found = self.frame_of(mesh, units or self.frame.units)
        placed = found.apply(mesh)
        return (turned(placed, spread, seed) if tuple(spread) != NO_SPREAD else placed), found

    def frame_of(self, mesh: Mesh, units: Units) -> FaceFrame:
        """The canonical frame of ``mesh`` in ``units``: read from ``frames/`` where an earlier
        fit left it (and it is intact), else fitted and kept there."""
        assert self.frame is not None
        digest = mesh.content_hash()
        path = None if self.frames_folder is None else self.frames_folder / digest[:2] / f"{digest}-{units}.json"
        if path is not None and path.is_file():
            try:
                record = json.loads(path.read_text())
                if record["check"] == _frame_check(digest, units, record["frame"]):
                    return FaceFrame.from_json(record["frame"])
            except (OSError, ValueError, KeyError, TypeError):
                pass
            self._reject(path, "damaged or altered (its frame does not match its check); fitted again")
        found = find_frame(mesh, units, self.frame.align)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            text = found.to_json()
            _write_atomic(path, lambda tmp: tmp.write_text(json.dumps({"frame": text, "check": _frame_check(digest, units, text)})))
        return found

    def _place_all(self, todo: list[tuple[Mesh, str]], units: Units | None, spread: tuple[float, float, float]) -> list[tuple[Mesh, FaceFrame | None]]:
        """:meth:`place` for each (mesh, digest), on every core: the fit spends its time in
        numpy and scipy, which let other threads run."""
        if self.frame is None or len(todo) < 2:
            return [self.place(mesh, units, spread, digest) for mesh, digest in todo]
        with ThreadPoolExecutor(max_workers=min(len(todo), os.cpu_count() or 1)) as pool:
            return list(pool.map(lambda item: self.place(item[0], units, spread, item[1]), todo))

    def render(self, meshes: Sequence[Mesh], units: Units | None = None, spread: tuple[float, float, float] = NO_SPREAD) -> RenderedViews:
        """Images of ``meshes`` ``[B, V, C, H, W]`` on ``device``: hits read from disk,
        misses placed in the canonical frame (``units`` overriding the frame's; turned by
        ``spread``, see :meth:`place`), rendered together in one batch and stored. The
        frames found come back in ``RenderedViews.frames``.

        A mesh repeated within ``meshes`` is rendered once and counted as a hit after that.
        """
        digests = [self._digest(mesh, units, spread) for mesh in meshes]
        loaded = [self._load(self._path(digest), digest) for digest in digests]
        entries = [None if found is None else found[0] for found in loaded]
        frames = [None if found is None else found[1] for found in loaded]

        missing: dict[str, list[int]] = {}  # digest -> positions holding that mesh
        for index, entry in enumerate(entries):
            if entry is None:
                missing.setdefault(digests[index], []).append(index)
        if missing:
            placed = self._place_all([(meshes[positions[0]], digest) for digest, positions in missing.items()], units, spread)
            rendered = self.renderer.render([mesh for mesh, _ in placed], self.views, self.size, self.device)
            for row, ((digest, positions), (_, frame)) in enumerate(zip(missing.items(), placed, strict=True)):
                entry = _encode(rendered, row)
                path = self._path(digest)
                if path is not None and not path.is_dir():  # a folder in an entry's place: render, keep nothing
                    path.parent.mkdir(parents=True, exist_ok=True)
                    described = {"frame": frame.to_json()} if frame else {}
                    metadata = {"digest": _digest(entry, digest + described.get("frame", "")), **described}
                    _write_atomic(path, lambda tmp, entry=entry, metadata=metadata: save_file(entry, str(tmp), metadata=metadata))
                for i in positions:
                    entries[i], frames[i] = entry, frame
        self.misses += len(missing)
        self.hits += len(meshes) - len(missing)

        shape = (len(self.views), self.size, self.size)
        stacked = {
            name: torch.stack([entry[name] for entry in entries]).to(self.device)  # type: ignore[index]
            if entries
            else torch.zeros(0, shape[0], channels, *shape[1:], dtype=_STORED[name], device=self.device)
            for name, channels in RenderedViews.MAPS.items()
        }
        views = _decode(stacked)
        views.frames = None if self.frame is None else frames
        return views

    def _path(self, digest: str) -> Path | None:
        return None if self.folder is None else self.folder / digest[:2] / f"{digest}.safetensors"

    def _load(self, path: Path | None, digest: str) -> tuple[dict[str, Tensor], FaceFrame | None] | None:
        if path is None or not path.exists():
            return None
        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
                entry = {name: handle.get_tensor(name) for name in handle.keys()}
            recorded = metadata.get("digest")
            frame = FaceFrame.from_json(metadata["frame"]) if "frame" in metadata else None
        except Exception:  # truncated, foreign, a folder, a damaged frame: render again and overwrite it
            return self._reject(path, "unreadable")
        if self.frame is not None and frame is None:
            return self._reject(path, "without its face frame")
        expected = (len(self.views), self.size, self.size)
        for name, channels in RenderedViews.MAPS.items():
            t = entry.get(name)
            if t is None or t.dtype != _STORED[name] or t.shape != (expected[0], channels, *expected[1:]):
                return self._reject(path, "of another layout")
        if recorded != _digest(entry, digest + metadata.get("frame", "")):
            return self._reject(path, "altered (its tensors do not match their digest)")
        return entry, frame

    def _reject(self, path: Path, why: str) -> None:
        if not self.rejected:
            warnings.warn(f"render cache: {path} is {why}; rendered again (cache.rejected counts every such entry)", stacklevel=3)
        self.rejected += 1
        return None


#: How each map is stored on disk.
_STORED = {"rgb": torch.uint8, "depth": torch.float16, "normal": torch.uint8, "mask": torch.uint8}


def _frame_check(mesh_digest: str, units: str, frame: str) -> str:
    """A digest binding a stored frame to the mesh and units it was found for."""
    return hashlib.blake2b(f"{mesh_digest}:{units}:{frame}".encode(), digest_size=16).hexdigest()


def _digest(entry: dict[str, Tensor], mesh_digest: str) -> str:
    """A digest binding an entry's tensors to the mesh they show (and the frame found)."""
    hasher = hashlib.blake2b(mesh_digest.encode(), digest_size=16)
    for name in sorted(entry):
        hasher.update(name.encode())
        hasher.update(entry[name].contiguous().numpy().tobytes())
    return hasher.hexdigest()


def _encode(rendered: RenderedViews, row: int) -> dict[str, Tensor]:
    """One mesh's maps ``[V, C, H, W]`` in their stored types (:data:`_STORED`), on the CPU."""

    def to_u8(x: Tensor) -> Tensor:
        return (x.detach().float().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).cpu().contiguous()

    return {
        "rgb": to_u8(rendered.rgb[row]),
        "depth": rendered.depth[row].detach().to(torch.float16).cpu().contiguous(),
        "normal": to_u8((rendered.normal[row] + 1.0) / 2.0),
        "mask": to_u8(rendered.mask[row]),
    }


def _decode(stored: dict[str, Tensor]) -> RenderedViews:
    """Stored maps (any leading shape) back to float32 ``RenderedViews``."""
    mask = stored["mask"].float() / 255.0
    normal = (stored["normal"].float() / 255.0 * 2.0 - 1.0) * (mask > 0)
    return RenderedViews(rgb=stored["rgb"].float() / 255.0, depth=stored["depth"].float(), normal=normal, mask=mask)


def _write_atomic(path: Path, write) -> None:
    """Call ``write(tmp)`` on a fresh file beside ``path``, then move it into place."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
