"""affectkit's Streamlit app: AffectVLM on a mesh, a 4D zip or a generated face (facekit or synthetic), live.

Start it with ``affectkit app [--checkpoint PATH]``; the settings arrive as JSON in
``AFFECTKIT_APP_CONFIG`` (see :class:`affectkit_apps.settings.AppConfig`). Moving a generated-face
control re-renders and re-predicts at once; editing the class prompts re-classifies
without retraining.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from affectkit_apps.settings import AppConfig, default_train_recipe, find_checkpoint, format_class_prompts, generated_face, parse_class_prompts, train_recipe
from affectkit_apps.uploads import read_upload

from affectkit.data.action_units import au_title
from affectkit.data.facs import LABELS, NEUTRAL
from affectkit.data.mesh import Mesh, MeshSequence
from affectkit.data.mesh_formats import mesh_suffixes
from affectkit.errors import AffectkitError
from affectkit.registry import face_generators
from affectkit.render.view_pngs import display_map
from affectkit.serve.hub import DEFAULT_MODEL
from affectkit.serve.inference import ClassPrompts, Prediction, Predictor

GENERATED, MESH_UPLOAD, SEQUENCE_UPLOAD = "Generated face", "Upload a mesh", "Upload a 4D sequence (zip)"
EXPRESSIONS = (*LABELS, NEUTRAL)
UNITS = ("auto", "mm", "cm", "inch", "m")
AGAINST_NEUTRAL = "Read against the person's neutral face"
MAX_3D_FACES = 150_000  # plotly in the browser stays interactive below this


@st.cache_resource(show_spinner="Loading the model...")
def load_predictor(checkpoint: str, stamp: float, device: str) -> Predictor:
    """Once per checkpoint version and process, shared by every browser session."""
    return Predictor.from_checkpoint(checkpoint, device)


@st.cache_resource(show_spinner=False, max_entries=64)
def encode_classes(_predictor: Predictor, checkpoint: str, stamp: float, text: str) -> ClassPrompts:
    return _predictor.encode_classes(parse_class_prompts(text))


def main() -> None:
    st.set_page_config(page_title="affectkit: 3D/4D expression recognition", layout="wide")
    st.title("affectkit: 3D/4D facial expression recognition")
    try:
        config = AppConfig.from_env()
    except AffectkitError as exc:
        st.error(str(exc))
        st.stop()
    checkpoint = config.checkpoint or find_checkpoint(config.runs_dir)
    shipped = checkpoint is None
    if shipped:
        checkpoint = DEFAULT_MODEL
        with st.sidebar.expander("Train your own model"):
            offer_training(config)
    try:
        stamp = (Path(checkpoint) / "checkpoint.json").stat().st_mtime
        predictor = load_predictor(str(checkpoint), stamp, config.device)
    except (AffectkitError, OSError) as exc:
        st.error(f"Cannot load the model: {str(exc).replace(str(Path(checkpoint).parent) + '/', '')}")  # no server path
        st.stop()
    if "trained" in st.session_state:
        st.success(st.session_state.pop("trained"))
    recipe = predictor.meta.recipe
    if shipped:
        st.caption(f"Model: {DEFAULT_MODEL.name}, shipped with affectkit (AffectVLM trained on the embedded facekit scans; docs: Use a model)")
    else:
        st.caption(f"Model {Path(checkpoint).name} (epoch {predictor.meta.epoch + 1}" + (f", recipe {recipe.name!r})" if recipe else ")"))  # no server path

    classes = edit_class_prompts(predictor, str(checkpoint), stamp)
    try:
        started = time.perf_counter()
        item = choose_input(predictor, config)
        neutral, against = choose_neutral(predictor, item, config)
        if item is None:
            st.info("Upload a file in the sidebar to see its prediction.")
            return
        read = time.perf_counter() - started
        chosen = st.session_state.get("units", "auto") if st.session_state.get("source") != GENERATED else "auto"  # generated faces are in mm
        units = None if chosen == "auto" else chosen
        prediction = predictor.predict(item, classes, units, neutral=neutral)
        prediction.timings = {"read": read, **prediction.timings}
        timeline = predictor.predict_frames(item, classes=classes, units=units, neutral=neutral) if isinstance(item, MeshSequence) else []
    except AffectkitError as exc:
        st.error(str(exc))
        return
    show_prediction(prediction, item, timeline, predictor, against)


def offer_training(config: AppConfig) -> None:
    recipe = config.train_recipe or default_train_recipe()
    st.info(
        f"No model of yours under `{config.runs_dir}`, so the shipped one answers. Train one with `affectkit run {recipe}` "
        "(a few minutes on 2 CPU cores), or start the app with `affectkit app --checkpoint PATH`."
    )
    if not Path(recipe).is_file():
        st.error(f"The quick recipe {recipe} is not here, so the app cannot train it; run `affectkit run RECIPE` yourself.")
        return
    if st.button(f"Train {Path(recipe).name} now"):
        bar = st.progress(0.0, text="Rendering the training scans and starting Ray...")

        started = time.perf_counter()

        def progress(done: int, total: int) -> None:
            bar.progress(done / total, text=f"Training: epoch {done} of {total}")
            st.session_state.trained = f"{done} of {total} epochs"

        try:
            checkpoint = train_recipe(Path(recipe), config.runs_dir, progress)
        except AffectkitError as exc:
            st.error(str(exc))
            return
        st.session_state.trained = f"Trained {checkpoint.parent.name}: {st.session_state.trained} in {time.perf_counter() - started:.0f} s; model in {checkpoint}"
        st.rerun()


def edit_class_prompts(predictor: Predictor, checkpoint: str, stamp: float) -> ClassPrompts | None:
    """The sidebar's prompt editor; None (the checkpoint's classes) until the text changes."""
    trained = format_class_prompts(dict(zip(predictor.meta.labels, predictor.meta.class_prompts, strict=True)))
    with st.sidebar.expander("Class prompts (zero-shot)", expanded=False):
        st.caption("One class a line: `label: a prompt | another prompt`. Add or reword classes; no retraining.")
        text = st.text_area("Classes and prompts", value=trained, height=260, key="class_prompts")
        st.button("Reset to the trained prompts", on_click=lambda: st.session_state.update(class_prompts=trained))
    if text == trained:
        return None
    try:
        return encode_classes(predictor, checkpoint, stamp, text)
    except AffectkitError as exc:
        st.error(f"{exc}. Using the trained classes until it is fixed.")
        return None


def choose_input(predictor: Predictor, config: AppConfig) -> Mesh | MeshSequence | None:
    source = st.sidebar.radio("Input", (GENERATED, MESH_UPLOAD, SEQUENCE_UPLOAD), key="source")
    if source == GENERATED:
        st.sidebar.caption("Move a control: the face is re-rendered and re-classified at once.")
        trained = predictor.trained_on
        generators = face_generators()
        default = generators.index(trained.name) if trained and trained.name in generators else generators.index("facekit")
        generator = st.sidebar.selectbox(
            "Face model", generators, index=default, key="generator",
            help="facekit: ICT-FaceKit identities as a 3D scanner sees them; synthetic: the procedural faces",
        )
        population = trained.options.get("subjects") if trained and trained.name == generator else None
        subject = st.sidebar.slider("Subject", 1, 100, (population or 0) + 1 if population and population < 100 else 1, key="subject")
        if population:
            st.sidebar.caption(f"Subjects 1 to {population} are the training recipe's population (some held out); above {population}, faces the model never saw.")
        expression = st.sidebar.selectbox("Expression", EXPRESSIONS, index=EXPRESSIONS.index("happiness"), key="expression")
        intensity = st.sidebar.slider("Intensity", 1, 4, 4, key="intensity", disabled=expression == "neutral")
        sequence = st.sidebar.checkbox("4D sequence (neutral to apex and back)", key="sequence")
        return generated_face(trained, generator, subject, expression, intensity, sequence, frames=15)
    limits = f"up to {config.max_upload_mb:g} MiB and {config.max_vertices:,} vertices"
    if source == MESH_UPLOAD:
        upload = st.sidebar.file_uploader(f"Mesh file ({limits})", key="mesh_upload")
        st.sidebar.caption(f"Formats: {', '.join(mesh_suffixes())}")
    else:
        upload = st.sidebar.file_uploader(f"Zip of frame files, read in name order ({limits}, {config.max_frames} frames)", type=["zip"], key="zip_upload")
    st.sidebar.selectbox(
        "Units", UNITS, key="units", help="The scan's length unit. auto: found from the face's size (a face is about 20 cm across)"
    )
    if upload is None:
        return None
    return read_upload(upload.name, upload.getvalue(), config)


def choose_neutral(predictor: Predictor, item: Mesh | MeshSequence | None, config: AppConfig) -> tuple[Mesh | None, str | None]:
    """The sidebar's neutral reference: (the scan the input is read against, what it is), or
    (None, None). A sequence's is its first frame, a generated face's the same face at rest,
    an uploaded scan's an upload of the same person's neutral scan."""
    if not predictor.calibrated:
        st.sidebar.checkbox(AGAINST_NEUTRAL, key="against_neutral", disabled=True, help="This model has no mean neutral to read scans against: affectkit neutral --help")
        return None, None
    explained = "What the person's face at rest adds to every expression is taken away: read each scan against it (docs: Use a model)"
    if not st.sidebar.checkbox(AGAINST_NEUTRAL, key="against_neutral", help=explained):
        return None, None
    if isinstance(item, MeshSequence):
        return item.frames[0], "its first frame (a sequence starts at rest)"
    if st.session_state.get("source") == GENERATED:
        state = st.session_state
        return generated_face(predictor.trained_on, state["generator"], state["subject"], NEUTRAL, 1, False), "the same face at rest"
    upload = st.sidebar.file_uploader(f"The same person's neutral scan (up to {config.max_upload_mb:g} MiB)", key="neutral_upload")
    if upload is None:
        if item is not None:
            st.warning("Upload the person's neutral scan in the sidebar to read the scan against it; until then it is read as it is.")
        return None, None
    neutral = read_upload(upload.name, upload.getvalue(), config)
    if isinstance(neutral, MeshSequence):
        raise AffectkitError(f"{upload.name}: a neutral scan is one mesh file, not a sequence")
    return neutral, f"the neutral scan {upload.name}"


def show_prediction(
    prediction: Prediction, item: Mesh | MeshSequence, timeline: list[dict[str, float]], predictor: Predictor, against: str | None
) -> None:
    confidence = prediction.probabilities[prediction.label]
    st.markdown(f"## Predicted: **{prediction.label}** ({confidence:.1%})")
    frames = f", {len(item)} frames" if isinstance(item, MeshSequence) else ""
    timings = " · ".join(f"{stage} {seconds * 1000:.0f} ms" for stage, seconds in prediction.timings.items())
    st.caption(f"Input: {item.source}{frames} · {timings}")
    if against is not None:
        st.caption(f"Read against {against}, placed at the mean neutral of the model's training people")
    if prediction.frame is not None:
        st.caption(f"Face frame (units, up axis and head pose found from the scan, then turned upright): {prediction.frame.describe()}")
    for warning in prediction.warnings:
        st.warning(warning)

    left, right = st.columns([3, 2])
    with left:
        st.subheader("Rendered views")
        names = list(prediction.view_weights)
        for map_name in dict.fromkeys(["rgb", *predictor.inputs.maps]):
            images = [np.ascontiguousarray(image.permute(1, 2, 0).numpy()) for image in display_map(prediction.views, map_name)]
            seen = " (the model's input)" if map_name in predictor.inputs.maps else ""
            st.image(images, caption=[f"{name} · {map_name}{seen}" for name in names], width=180)
        st.subheader("Class probabilities")
        ranked = sorted(prediction.probabilities.items(), key=lambda t: t[1])
        bars = go.Figure(go.Bar(x=[p for _, p in ranked], y=[label for label, _ in ranked], orientation="h", marker_color="#4c78a8"))
        bars.update_layout(height=40 + 32 * len(ranked), margin=dict(l=0, r=0, t=10, b=0), xaxis=dict(range=[0, 1], tickformat=".0%"))
        st.plotly_chart(bars, width="stretch")
        if prediction.action_units:
            st.subheader("Action units")
            st.caption("The probability of each FACS action unit being present: what the face does, beside what it is read as.")
            units = sorted(prediction.action_units.items(), key=lambda t: t[1])
            colours = ["#54a24b" if p >= 0.5 else "#bab0ac" for _, p in units]
            chart = go.Figure(go.Bar(x=[p for _, p in units], y=[au_title(name) for name, _ in units], orientation="h", marker_color=colours))
            chart.update_layout(height=40 + 24 * len(units), margin=dict(l=0, r=0, t=10, b=0), xaxis=dict(range=[0, 1], tickformat=".0%"))
            st.plotly_chart(chart, width="stretch")
    with right:
        st.subheader("3D scan")
        st.plotly_chart(mesh_figure(item.frames[len(item.frames) // 2] if isinstance(item, MeshSequence) else item), width="stretch")
        st.subheader("Learned view weights")
        weights = go.Figure(go.Bar(x=list(prediction.view_weights), y=list(prediction.view_weights.values()), marker_color="#f58518"))
        weights.update_layout(height=220, margin=dict(l=0, r=0, t=10, b=0), yaxis=dict(range=[0, 1]))
        st.plotly_chart(weights, width="stretch")
        st.subheader("Best-matching prompts")
        st.dataframe({"prompt": [p for p, _ in prediction.best_prompts], "cosine": [round(s, 3) for _, s in prediction.best_prompts]}, hide_index=True)
    if timeline:
        st.subheader("Per-frame probabilities")
        frames = list(range(1, len(timeline) + 1))
        lines = go.Figure([go.Scatter(x=frames, y=[frame[label] for frame in timeline], name=label, mode="lines") for label in timeline[0]])
        lines.update_layout(height=320, margin=dict(l=0, r=0, t=10, b=0), xaxis_title="frame", yaxis=dict(range=[0, 1], tickformat=".0%"))
        st.plotly_chart(lines, width="stretch")


def mesh_figure(mesh: Mesh) -> go.Figure:
    """The scan as a plotly surface seen from the front (y up, z toward the viewer)."""
    faces = mesh.faces if len(mesh.faces) <= MAX_3D_FACES else mesh.faces[:: -(-len(mesh.faces) // MAX_3D_FACES)]
    v = mesh.vertices.astype(np.float32)
    colors = None if mesh.colors is None else [f"rgb({r},{g},{b})" for r, g, b in np.clip(mesh.colors * 255, 0, 255).astype(int)]
    surface = go.Mesh3d(
        x=v[:, 0], y=v[:, 1], z=v[:, 2], i=faces[:, 0], j=faces[:, 1], k=faces[:, 2],
        vertexcolor=colors, color=None if colors else "#d9b8a0", flatshading=False,
        lighting=dict(ambient=0.45, diffuse=0.8, specular=0.1), hoverinfo="skip",
    )
    figure = go.Figure(surface)
    axis = dict(visible=False)
    figure.update_layout(
        height=420, margin=dict(l=0, r=0, t=0, b=0),
        scene=dict(xaxis=axis, yaxis=axis, zaxis=axis, aspectmode="data", camera=dict(up=dict(x=0, y=1, z=0), eye=dict(x=0, y=0, z=1.8))),
    )
    return figure


if __name__ == "__main__":  # Streamlit runs the page as __main__; importing it runs nothing
    main()
