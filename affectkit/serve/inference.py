"""Prediction on single meshes or sequences: the API behind ``affectkit predict`` and the app.

    predictor = Predictor.from_pretrained()  # the shipped model; or a folder, a run, a hub id
    prediction = predictor.predict(load_mesh("face.ply"))
    prediction.label, prediction.probabilities, prediction.view_weights
    prediction.action_units  # {"AU12": 0.97, ...} for a model trained on action units
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from affectkit.data.action_units import au_name
from affectkit.data.face_frame import FaceFrame, Units
from affectkit.data.mesh import Mesh, MeshSequence
from affectkit.data.mesh_formats import load_input
from affectkit.errors import AffectkitError, MeshError
from affectkit.interfaces import RenderedViews
from affectkit.model.affectvlm import AffectVLM
from affectkit.model.checkpoint import CheckpointMeta, load_checkpoint
from affectkit.recipe import ComponentRef, TestTime
from affectkit.render.cameras import View, parse_views
from affectkit.render.model_inputs import frames_of
from affectkit.render.render_cache import RenderCache


@dataclass
class Prediction:
    label: str
    probabilities: dict[str, float]
    view_weights: dict[str, float]
    best_prompts: list[tuple[str, float]]
    timings: dict[str, float] = field(default_factory=dict)
    #: the rendered views of the (middle sampled) frame, every map: what the model saw
    views: RenderedViews | None = None
    #: how the (middle sampled) frame was placed: units, up axis, head pose (None for a
    #: model that takes scans as they come)
    frame: FaceFrame | None = None
    #: what the face frame found doubtful, in any sampled frame (poor fit, head turned far)
    warnings: list[str] = field(default_factory=list)
    #: the probability of each action unit being present (``AU12``, or a zero-shot query's
    #: name), for a model trained on AUs; empty for others
    action_units: dict[str, float] = field(default_factory=dict)

    def top_action_units(self, count: int = 5, threshold: float = 0.5) -> list[tuple[str, float]]:
        """The likeliest AUs present: at most ``count``, each at least ``threshold``."""
        ranked = sorted(self.action_units.items(), key=lambda t: -t[1])
        return [(name, score) for name, score in ranked[:count] if score >= threshold]


@dataclass(frozen=True)
class ClassPrompts:
    """Classes, their prompt ensembles and the text embeddings: what a prediction compares to.

    Immutable, so one predictor can serve many prompt sets at once (the app's users each
    edit their own) without retraining anything.
    """

    labels: tuple[str, ...]
    prompts: tuple[tuple[str, ...], ...]
    prompt_embeddings: tuple[torch.Tensor, ...]
    class_embeddings: torch.Tensor


@dataclass(frozen=True)
class ActionUnitPrompts:
    """Action units (or zero-shot AU queries), their prompt ensembles and embeddings."""

    names: tuple[str, ...]
    prompts: tuple[tuple[str, ...], ...]
    embeddings: torch.Tensor  # [A, D]


#: the least share of a view's pixels the face must cover for a prediction to mean anything
MIN_COVERAGE = 0.01


def depth_curvature(rendered: RenderedViews, view: int) -> torch.Tensor:
    """``[B]``: whether view ``view`` sees a dome (> 0) or a bowl (< 0).

    The covered pixels' depth is fitted with a quadratic in the image coordinates (both in
    [-1, 1]); the sum of its ``x²`` and ``y²`` coefficients is half its Laplacian. A face
    seen from the front is a dome: nose and cheeks nearer than the edge (+1.0 to +2.2 on
    unseen facekit and procedural faces, ``benchmarks/input_checks.py``); a face shell
    seen from behind is a bowl. It needs no face detector and no assumption about the
    mesh's triangle winding, which scanners do not agree on.
    """
    size = rendered.depth.shape[-1]
    steps = (torch.arange(size, dtype=torch.float32, device=rendered.depth.device) + 0.5) / size * 2 - 1
    ys, xs = torch.meshgrid(-steps, steps, indexing="ij")
    curvatures = []
    for depth, mask in zip(rendered.depth[:, view, 0].float(), rendered.mask[:, view, 0] > 0.5, strict=True):
        x, y, d = xs[mask], ys[mask], depth[mask]
        if len(d) < 6:
            curvatures.append(torch.zeros(()))  # on the CPU, as the fits are
            continue
        basis = torch.stack([torch.ones_like(x), x, y, x * x, y * y, x * y], dim=1)
        fit = torch.linalg.lstsq(basis.cpu(), d.cpu()[:, None]).solution[:, 0]
        curvatures.append(fit[3] + fit[4])
    return torch.stack(curvatures)


def frontal_view(views: Sequence[View]) -> int:
    """The index of the view that looks most nearly along the face's nose."""
    return min(range(len(views)), key=lambda v: abs(views[v].yaw) + abs(views[v].pitch))


def check_visible(rendered: RenderedViews, views: Sequence[View], source: str) -> None:
    """Refuse to predict from views that show (nearly) nothing, or the back of a face. The
    model would still answer, confidently and meaninglessly.

    Blank: a mesh collapsed to a point, one vertex far out (the face shrinks to a dot), a
    scale far from a face's. Turned away: the most frontal view sees a bowl where a face
    is a dome (:func:`depth_curvature`)."""
    coverage = float(rendered.mask.flatten(2).mean(-1).max())
    if coverage < MIN_COVERAGE:
        raise MeshError(
            f"{source}: renders blank (the surface covers {coverage:.2%} of the best view, less than {MIN_COVERAGE:.0%}); "
            "is it collapsed to a point, scaled far from a face's size, or one vertex far from the rest? No prediction made"
        )
    frontal = frontal_view(views)
    away = int((depth_curvature(rendered, frontal) < 0).sum())
    if away:
        which = "" if len(rendered.depth) == 1 else f" in {away} of {len(rendered.depth)} frames"
        raise MeshError(
            f"{source}: faces away from the cameras{which}: the {views[frontal].name or 'most frontal'} view sees a hollow "
            "surface, as the back of a face shell is. affectkit's cameras look along -z at a face whose nose points to +z: "
            "turn the mesh to face +z. No prediction made"
        )


class Predictor:
    """A trained model plus its renderer, views and class prompts."""

    def __init__(self, model: AffectVLM, meta: CheckpointMeta, device: str | torch.device = "cpu") -> None:
        from affectkit.factory import build_render_cache

        self.model = model.to(device).eval()
        self.meta = meta
        self.inputs = meta.inference.input
        self.views = parse_views(self.inputs.views)
        self.cache: RenderCache = build_render_cache(self.inputs, device=str(device))
        #: the content hash of the last neutral scan read against, its units and its views (:meth:`neutral_views`)
        self._neutral: tuple[str, Units | None, torch.Tensor] | None = None
        self.set_class_prompts(dict(zip(meta.labels, meta.class_prompts, strict=True)))
        inference = meta.inference
        self.action_units: ActionUnitPrompts | None = (
            self.encode_action_units({au_name(code): prompts for code, prompts in zip(inference.action_units, inference.au_prompts, strict=True)})
            if inference.action_units
            else None
        )

    @property
    def trained_on(self) -> ComponentRef | None:
        """The dataset the model was trained on, as recorded in its checkpoint (or ``None``)."""
        if self.meta.provenance.get("dataset"):
            return ComponentRef.model_validate(self.meta.provenance["dataset"])
        return self.meta.recipe.data.dataset if self.meta.recipe is not None else None

    @property
    def calibrated(self) -> bool:
        """Whether the model can read scans against the person's neutral scan (``neutral=``)."""
        return self.model.neutral_features is not None

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, device: str | torch.device = "cpu", trust_unverified: bool = False, test_time: list[TestTime] | None = None
    ) -> Predictor:
        model, meta = load_checkpoint(path, device, trust_unverified, test_time)
        return cls(model, meta, device)

    @classmethod
    def from_pretrained(
        cls,
        source: str | Path | None = None,
        revision: str | None = None,
        device: str | torch.device = "cpu",
        trust_unverified: bool = False,
        test_time: list[TestTime] | None = None,
    ) -> Predictor:
        """The model affectkit ships (``source=None``), a model or run folder, or a Hugging
        Face hub id (``owner/name``, at ``revision``; downloaded once, then cached).
        ``trust_unverified``: load a model whose weights carry no digest. ``test_time``:
        test-time augmentations instead of the model's own (``["mirror"]``, or ``[]``)."""
        from affectkit.serve.hub import resolve_model

        return cls.from_checkpoint(resolve_model(source, revision), device, trust_unverified, test_time)

    def encode_classes(self, class_prompts: Mapping[str, Sequence[str]]) -> ClassPrompts:
        """Embed a set of classes and prompts (new or reworded ones too: zero-shot)."""
        empty = [label for label, prompts in class_prompts.items() if not [p for p in prompts if p.strip()]]
        if not class_prompts or empty:
            raise AffectkitError(f"class prompts: every class needs at least one prompt (empty: {', '.join(empty) or 'no classes given'})")
        if not self.model.prompts_can_change and list(class_prompts) != list(self.meta.labels):
            raise AffectkitError(
                f"class prompts: this model has a learned classifier, so it scores only its training labels "
                f"({', '.join(self.meta.labels)}) in that order; prompts can be reworded but classes cannot change"
            )
        prompts = tuple(tuple(p for p in ps if p.strip()) for ps in class_prompts.values())
        with torch.no_grad():
            return ClassPrompts(
                labels=tuple(class_prompts),
                prompts=prompts,
                prompt_embeddings=tuple(self.model.encode_text(list(p)) for p in prompts),
                class_embeddings=self.model.class_embeddings([list(p) for p in prompts]),
            )

    def encode_action_units(self, queries: Mapping[str, Sequence[str]]) -> ActionUnitPrompts:
        """Embed action units by name and prompts: the model's own reworded, or new ones
        (zero-shot: ``{"AU14": ["dimpled mouth corners"]}``, any name), for a model trained on AUs."""
        if not self.model.knows_action_units:
            raise AffectkitError("this model was not trained on action units, so it cannot score them (train it with an action_units loss term)")
        empty = [name for name, prompts in queries.items() if not [p for p in prompts if p.strip()]]
        if not queries or empty:
            raise AffectkitError(f"action units: every AU needs at least one prompt (empty: {', '.join(empty) or 'no AUs given'})")
        prompts = tuple(tuple(p for p in ps if p.strip()) for ps in queries.values())
        with torch.no_grad():
            return ActionUnitPrompts(tuple(queries), prompts, self.model.au_embeddings([list(p) for p in prompts]))

    @property
    def au_prompts(self) -> dict[str, list[str]]:
        """The model's AUs and their prompts (empty for a model without AUs): extend or reword
        them for zero-shot AU queries, e.g. ``encode_action_units({**predictor.au_prompts, "AU14": [...]})``."""
        known = self.action_units
        return {} if known is None else {name: list(prompts) for name, prompts in zip(known.names, known.prompts, strict=True)}

    def set_class_prompts(self, class_prompts: Mapping[str, Sequence[str]]) -> None:
        """Make these classes the default of every later prediction."""
        self.classes = self.encode_classes(class_prompts)

    @property
    def labels(self) -> list[str]:
        return list(self.classes.labels)

    @property
    def class_prompts(self) -> dict[str, list[str]]:
        """The current classes and their prompts: extend or reword them for zero-shot use,
        e.g. ``encode_classes({**predictor.class_prompts, "contempt": ["..."]})``."""
        return {label: list(prompts) for label, prompts in zip(self.classes.labels, self.classes.prompts, strict=True)}

    @torch.no_grad()
    def predict(
        self, item: Mesh | MeshSequence, classes: ClassPrompts | None = None, units: Units | None = None,
        action_units: ActionUnitPrompts | None = None, neutral: Mesh | None = None,
    ) -> Prediction:  # fmt: skip
        """The class (and AU) probabilities of a scan or sequence; ``units`` overrides the
        units the model's face frame finds from the face's size; ``action_units``: AUs to
        score other than the model's own (:meth:`encode_action_units`); ``neutral``: the
        same person's neutral scan, to read the scan against (a calibrated model,
        :mod:`affectkit.model.neutral_reference`)."""
        classes = classes or self.classes
        aus = action_units or self.action_units
        t0 = time.perf_counter()
        frames = frames_of(item, self.inputs.frames, self.inputs.frame_sampler)
        rendered = self.cache.render(frames, units)
        check_visible(rendered, self.views, item.source or "<in-memory mesh>")
        views = rendered.stack(self.inputs.maps).unsqueeze(0)  # [1, T, V, C, H, W]
        t1 = time.perf_counter()
        reference = None if neutral is None else self.neutral_views(neutral, units)
        joint, logits = self.model.classify(views.to(self.model.logit_scale.device), classes.class_embeddings, reference)
        t2 = time.perf_counter()
        probabilities = logits.softmax(-1)[0].cpu()
        scores = [
            (prompt, float(score))
            for prompts, embeddings in zip(classes.prompts, classes.prompt_embeddings, strict=True)
            for prompt, score in zip(prompts, (embeddings @ joint[0]).tolist(), strict=True)
        ]
        au_scores = {} if aus is None else dict(zip(aus.names, self.model.au_logits(joint, aus.embeddings)[0].sigmoid().tolist(), strict=True))
        t3 = time.perf_counter()
        middle = len(frames) // 2
        placed = rendered.frames or [None] * len(frames)
        return Prediction(
            label=classes.labels[int(probabilities.argmax())],
            probabilities=dict(zip(classes.labels, probabilities.tolist(), strict=True)),
            view_weights={v.name: w for v, w in zip(self.views, self.model.view_weights().tolist(), strict=True)},
            best_prompts=sorted(scores, key=lambda t: -t[1])[:5],
            timings={"render": t1 - t0, "encode": t2 - t1, "classify": t3 - t2},
            views=RenderedViews(**{name: getattr(rendered, name)[middle : middle + 1] for name in RenderedViews.MAPS}),
            frame=placed[middle],
            warnings=sorted({warning for frame in placed if frame is not None for warning in frame.warnings}),
            action_units=au_scores,
        )

    def neutral_views(self, neutral: Mesh, units: Units | None = None) -> torch.Tensor:
        """``[1, 1, V, C, H, W]`` the views of a neutral scan to read scans against; the
        last neutral scan's are kept, since one person's scans are read against the same one
        (by content: the app reads an upload anew on every interaction)."""
        self.model.calibrated_neutral()
        digest = neutral.content_hash()
        if self._neutral is None or self._neutral[0] != digest or self._neutral[1] != units:
            rendered = self.cache.render([neutral], units)
            check_visible(rendered, self.views, neutral.source or "<in-memory neutral mesh>")
            self._neutral = (digest, units, rendered.stack(self.inputs.maps)[None].to(self.model.logit_scale.device))
        return self._neutral[2]

    @torch.no_grad()
    def predict_frames(
        self, sequence: MeshSequence, batch_size: int = 16, classes: ClassPrompts | None = None, units: Units | None = None,
        neutral: Mesh | None = None,
    ) -> list[dict[str, float]]:  # fmt: skip
        """Class probabilities of every frame on its own (each read against ``neutral``, as
        :meth:`predict`): a timeline of the expression."""
        classes = classes or self.classes
        reference = None if neutral is None else self.neutral_views(neutral, units)
        timeline: list[dict[str, float]] = []
        for start in range(0, len(sequence), batch_size):
            rendered = self.cache.render(sequence.frames[start : start + batch_size], units)
            views = rendered.stack(self.inputs.maps).unsqueeze(1)  # [F, 1, V, C, H, W]
            _, logits = self.model.classify(views.to(self.model.logit_scale.device), classes.class_embeddings, reference)  # one neutral, broadcast
            for row in logits.softmax(-1).cpu().tolist():
                timeline.append(dict(zip(classes.labels, row, strict=True)))
        return timeline

    def predict_file(
        self, path: str | Path, classes: ClassPrompts | None = None, units: Units | None = None,
        action_units: ActionUnitPrompts | None = None, neutral: Mesh | None = None,
    ) -> Prediction:  # fmt: skip
        t0 = time.perf_counter()
        item = load_input(path)
        read = time.perf_counter() - t0
        prediction = self.predict(item, classes, units, action_units, neutral)
        prediction.timings = {"read": read, **prediction.timings}
        return prediction
