"""Classify: photos in; every face with each model's reading, the ensemble, and downloads out."""

import logging

import streamlit as st

from app_state import get_predictor, through_app
from fer_core.errors import InvalidImageError, WeightsError
from fer_core.explain import MAX_EXPLAINED_FACES, FaceMaps, overlay
from fer_core.imageio import WEB_FORMATS, WEB_SUFFIXES
from fer_core.predict import Analysis, Explanation, Predictor, export_csv, export_json
from fer_core.preprocess import ONE_FACE_REGIONS
from fer_core.registry import list_models, model_title
from ui.drawing import DISPLAY_MAX_SIDE, draw_faces, enlarge_face
from ui.examples import EXAMPLES, example_photo
from ui.figures import comparison_figure
from ui.text import escape_markdown

through_app()  # a page opened by its address still runs inside app.py's navigation

MAX_PHOTOS = 10  # per page run: every photo is held in memory until the page is drawn
MAX_PHOTO_MB = 10  # per photo (the server allows 50 MB for the Video page's clips)
ONE_FACE_CHOICES = {"centre": "its centre square", "whole": "the whole image, padded to a square"}
assert tuple(ONE_FACE_CHOICES) == ONE_FACE_REGIONS  # a caption for each region fer_core reads
log = logging.getLogger(__name__)


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def show_maps(face, maps: FaceMaps | None) -> None:
    """The models' saliency maps of one face side by side, on one colour scale."""
    if maps is None:
        st.caption(f"Saliency is shown for the {MAX_EXPLAINED_FACES} largest faces of a photo.")
        return
    cols = st.columns(len(maps.maps))
    for col, (model, saliency) in zip(cols, maps.maps.items(), strict=True):
        label = face.labels[maps.targets[model]]
        col.image(overlay(face.face, saliency, maps.scale), caption=f"{model_title(model)}: why {label}")
    st.caption(
        "Occlusion sensitivity: a gray square hides each part of the face in turn; red marks where hiding it "
        f"lowers a model's confidence in its answer the most (a drop of {maps.scale:.0%}), blue where it changes "
        "nothing. One colour scale for the three models."
    )


def verdict(face, name: str, n_models: int, key: str) -> None:
    """The answer for one face, first: the ensemble's expression, how sure, whether the models agree.
    Its container's CSS class (st-key-verdict-...) is what the browser tests and tools/loadrun.py wait for."""
    with st.container(border=True, key=key):
        thumb, text = st.columns([1, 3], vertical_alignment="center")
        if face.face is not None:
            thumb.image(enlarge_face(face.face, scale=2))
        text.markdown(f"**{name}**: **{face.label}** · {face.score:.0%}")
        if n_models == 1:
            return
        if face.agree:
            text.markdown(f":green[:material/check_circle:] all {n_models} models read {face.label}")
        else:
            others = [f"{model_title(m)} {face.top(m)[0]}" for m in face.probabilities if face.top(m)[0] != face.label]
            text.markdown(f":orange[:material/warning:] the models disagree ({', '.join(others)}): read it with care")


def details(idx: int, i: int, face, analysis: Analysis, n_models: int) -> None:
    """How each model read one face: its answer and time, then one chart comparing them all."""
    t = analysis.timings_ms
    cols = st.columns(len(face.probabilities))
    for col, model in zip(cols, face.probabilities, strict=True):
        label, score = face.top(model)
        col.markdown(f"**{model_title(model)}**: {label} · {score:.0%}")
        col.caption(f"{t[model]:.0f} ms for {plural(len(analysis.faces), 'face')}")
    ensemble = face.ensemble if n_models > 1 else None
    st.plotly_chart(
        comparison_figure(face.probabilities, face.labels, ensemble),
        key=f"probs-{idx}-{i}",
        config={"displayModeBar": False},
    )


def show_analysis(idx: int, analysis: Analysis, n_models: int, explanation: Explanation | None = None) -> None:
    """One photo: the boxed photo beside one verdict per face, then how each model read each face."""
    faces = analysis.faces
    if analysis.truncated:
        st.info(f"{analysis.faces_found} faces found; the {len(faces)} largest are shown.", icon=":material/group:")
    names = [f"Face {i}" if analysis.detected else "The image as one face" for i in range(1, len(faces) + 1)]
    photo, answers = st.columns([3, 2])
    captions = [f.label for f in faces] if analysis.detected else None  # draw_faces numbers them
    annotated = draw_faces(analysis.image, [f.box for f in faces], captions, max_side=DISPLAY_MAX_SIDE)
    photo.image(annotated, output_format="JPEG")  # JPEG: PNG of a photo costs ~100x the CPU
    t = analysis.timings_ms
    photo.caption(
        f"{analysis.image.width}×{analysis.image.height} px · decode {t['decode']:.0f} ms · "
        f"face detection {t['detect']:.0f} ms · total {t['total']:.0f} ms"
        + (" · each face read with its mirror" if analysis.tta == "flip" else "")
    )
    with answers:
        if n_models > 1:
            st.caption(f"The ensemble (mean of the {n_models} models) per face, calibrated probability:")
        for i, (face, name) in enumerate(zip(faces, names, strict=True), start=1):
            verdict(face, name, n_models, key=f"verdict-{idx}-{i}")
    for i, (face, name) in enumerate(zip(faces, names, strict=True), start=1):
        st.subheader(f"{name}: how each model read it" if n_models > 1 else name)
        details(idx, i, face, analysis, n_models)
        if explanation is not None:
            show_maps(face, explanation.maps[i - 1])
    if explanation is not None:
        n = explanation.explained
        st.caption(f"Saliency maps: {1000 * explanation.seconds:.0f} ms for {plural(n, 'face')}.")


st.title("Classify facial expressions")
st.caption(
    "Upload photos: each face is found, cropped to 48×48 gray like a FER2013 face, and read by three networks "
    "and their ensemble. Photos are processed in memory and never stored."
)

predictor: Predictor | None = get_predictor()
if predictor is None:
    st.stop()
missing = [model_title(m) for m in list_models() if m not in predictor.model_names]
if missing:
    st.info(
        f"Not shipped yet: {', '.join(missing)} (still to be trained). Showing "
        f"{', '.join(model_title(m) for m in predictor.model_names)} only.",
        icon=":material/pending:",
    )

uploads = st.file_uploader("Photos", type=list(WEB_SUFFIXES), accept_multiple_files=True, max_upload_size=MAX_PHOTO_MB)
example = st.pills("Or try an example", list(EXAMPLES), format_func=EXAMPLES.get, key="example")
left, right = st.columns(2)  # two short toggles a row: their labels stay whole on a phone
use_camera = left.toggle("Use the camera")
small_faces = right.toggle("Find small faces", help="For group photos: faces down to ~2 % of the photo; slower.")
left, right = st.columns(2)
mirror = left.toggle(
    "Read the mirror too",
    help="Each model reads the face and its mirror image and averages the two: more accurate on FER2013 "
    "(the Benchmarks page compares TTA none and flip), twice the models' time.",
)
tta = "flip" if mirror else "none"
explain = right.toggle(
    "Show where models looked",
    help=f"Saliency maps (occlusion sensitivity) of each model, for the {MAX_EXPLAINED_FACES} largest faces "
    "of a photo: ~0.4 s more per face.",
)

uploads = uploads or []
if len(uploads) > MAX_PHOTOS:
    st.warning(
        f"{len(uploads)} photos uploaded; the first {MAX_PHOTOS} are shown. Remove some to see the others.",
        icon=":material/photo_library:",
    )
sources: list[tuple[str, bytes]] = [(f.name, f.getvalue()) for f in uploads[:MAX_PHOTOS]]
if use_camera:
    shot = st.camera_input("Take a photo")
    if shot is not None:
        sources.append(("camera photo", shot.getvalue()))
if example is not None:
    sources.append(example_photo(example))
if not sources:
    st.info("Upload a photo, take one with the camera, or try an example.", icon=":material/add_a_photo:")
    st.stop()

done: list[tuple[str, Analysis]] = []
for idx, (name, raw) in enumerate(sources):
    shown = escape_markdown(name)  # a file name is user input: show it, never render it
    st.header(shown, divider="gray")
    try:
        analysis = predictor.analyze(raw, detect=True, small_faces=small_faces, formats=WEB_FORMATS, tta=tta)
        if not analysis.faces:
            st.warning(f"No face found in {shown}.", icon=":material/face_retouching_off:")
            region = st.radio(
                "Classify it anyway, as one face:",
                ONE_FACE_CHOICES,
                index=None,
                format_func=ONE_FACE_CHOICES.get,
                horizontal=True,
                key=f"one-face-{idx}-{name}",
            )
            if region is None:
                continue
            analysis = predictor.analyze(raw, detect=False, formats=WEB_FORMATS, region=region, tta=tta)
    except (InvalidImageError, WeightsError) as exc:
        st.error(f"{shown}: {escape_markdown(exc)}", icon=":material/broken_image:")
        continue
    except Exception as exc:
        # A bug, not the user's fault: one photo must not take the page down, and the log gets the
        # traceback for us, never the photo's bytes or its name (both are the user's).
        log.exception("analysing upload %d of %d failed", idx + 1, len(sources))
        st.error(
            f"{shown} could not be analysed: {type(exc).__name__}. This is a bug on our side, not a problem "
            "with your photo; the other photos are unaffected.",
            icon=":material/error:",
        )
        continue
    explanation = predictor.explain_analysis(analysis) if explain and analysis.faces else None
    show_analysis(idx, analysis, len(predictor.model_names), explanation)
    done.append((name, analysis))

if done:
    st.divider()
    left, right = st.columns(2)
    left.download_button(
        "Download results (JSON)", export_json(done), "expressions.json", "application/json", on_click="ignore"
    )
    right.download_button("Download results (CSV)", export_csv(done), "expressions.csv", "text/csv", on_click="ignore")
