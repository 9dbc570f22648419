"""Prediction on single meshes or sequences: the API behind ``affectkit predict`` and the app.

    predictor = Predictor.from_checkpoint("runs/affectvlm/best")
    prediction = predictor.predict(load_mesh("face.ply"))
    prediction.label, prediction.probabilities, prediction.view_weights
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from affectkit.checkpoint import CheckpointMeta, load_checkpoint
from affectkit.errors import MeshError
from affectkit.mesh import Mesh, MeshSequence, load_mesh
from affectkit.model import AffectVLM
from affectkit.render_cache import RenderCache
from affectkit.views import parse_views
from affectkit.viewset import frames_of


@dataclass
class Prediction:
    label: str
    probabilities: dict[str, float]
    view_weights: dict[str, float]
    best_prompts: list[tuple[str, float]]
    timings: dict[str, float] = field(default_factory=dict)
    views: torch.Tensor | None = None


def load_sequence(path: Path) -> MeshSequence:
    """A folder of frame files, read in name order."""
    frames = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    meshes = [load_mesh(p) for p in frames if p.suffix.lower() in _mesh_suffixes()]
    if not meshes:
        raise MeshError(f"{path}: folder holds no mesh frames ({', '.join(sorted(_mesh_suffixes()))})")
    return MeshSequence(meshes, source=str(path))


def _mesh_suffixes() -> set[str]:
    from affectkit.mesh import MESH_READERS

    return set(MESH_READERS)


def load_input(path: str | Path) -> Mesh | MeshSequence:
    path = Path(path)
    return load_sequence(path) if path.is_dir() else load_mesh(path)


class Predictor:
    """A trained model plus its renderer, views and class prompts."""

    def __init__(self, model: AffectVLM, meta: CheckpointMeta, device: str | torch.device = "cpu") -> None:
        from affectkit.pipeline import build_render_cache

        self.model = model.to(device).eval()
        self.meta = meta
        self.recipe = meta.recipe
        self.views = parse_views(self.recipe.render.views)
        self.cache: RenderCache = build_render_cache(self.recipe.model_copy(update={"render": self.recipe.render.model_copy(update={"cache_dir": None})}), device=str(device))
        self.set_class_prompts(dict(zip(meta.labels, meta.class_prompts, strict=True)))

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "cpu") -> Predictor:
        model, meta = load_checkpoint(path, device)
        return cls(model, meta, device)

    def set_class_prompts(self, class_prompts: Mapping[str, Sequence[str]]) -> None:
        """Change (or add) classes and their prompts: zero-shot, no retraining."""
        self.labels = list(class_prompts)
        self.class_prompts = [list(p) for p in class_prompts.values()]
        with torch.no_grad():
            self.prompt_embeddings = [self.model.encode_text(p) for p in self.class_prompts]
            self.class_embeddings = self.model.class_embeddings(self.class_prompts)

    @torch.no_grad()
    def predict(self, item: Mesh | MeshSequence) -> Prediction:
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        frames = frames_of(item, self.recipe.data.frames, self.recipe.data.frame_sampler)
        rendered = self.cache.render(frames)
        views = rendered.stack(self.recipe.render.maps).unsqueeze(0)  # [1, T, V, C, H, W]
        t1 = time.perf_counter()
        _, joint = self.model.encode_views(views.to(self.model.logit_scale.device))
        t2 = time.perf_counter()
        probabilities = self.model.logits(joint, self.class_embeddings).softmax(-1)[0].cpu()
        scores = [(p, float(s)) for prompts, emb in zip(self.class_prompts, self.prompt_embeddings, strict=True) for p, s in zip(prompts, (emb @ joint[0]).tolist(), strict=True)]
        t3 = time.perf_counter()
        timings.update(render=t1 - t0, encode=t2 - t1, classify=t3 - t2)
        return Prediction(
            label=self.labels[int(probabilities.argmax())],
            probabilities=dict(zip(self.labels, probabilities.tolist(), strict=True)),
            view_weights={v.name: w for v, w in zip(self.views, self.model.view_weights().tolist(), strict=True)},
            best_prompts=sorted(scores, key=lambda t: -t[1])[:5],
            timings=timings,
            views=rendered.rgb[:, :, :3],
        )

    @torch.no_grad()
    def predict_frames(self, sequence: MeshSequence, batch_size: int = 16) -> list[dict[str, float]]:
        """Class probabilities of every frame on its own: a timeline of the expression."""
        timeline: list[dict[str, float]] = []
        for start in range(0, len(sequence), batch_size):
            rendered = self.cache.render(sequence.frames[start : start + batch_size])
            views = rendered.stack(self.recipe.render.maps).unsqueeze(1)  # [F, 1, V, C, H, W]
            _, joint = self.model.encode_views(views.to(self.model.logit_scale.device))
            for row in self.model.logits(joint, self.class_embeddings).softmax(-1).cpu().tolist():
                timeline.append(dict(zip(self.labels, row, strict=True)))
        return timeline

    def predict_file(self, path: str | Path) -> Prediction:
        t0 = time.perf_counter()
        item = load_input(path)
        read = time.perf_counter() - t0
        prediction = self.predict(item)
        prediction.timings = {"read": read, **prediction.timings}
        return prediction
