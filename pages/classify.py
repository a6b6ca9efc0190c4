"""Classify: photos in; every face with each model's reading, the ensemble, and downloads out."""

import logging

import streamlit as st

from app_state import SAMPLE_PHOTO, get_predictor
from fer_core.errors import InvalidImageError, WeightsError
from fer_core.imageio import WEB_FORMATS, WEB_SUFFIXES
from fer_core.predict import Analysis, Predictor, export_csv, export_json
from fer_core.preprocess import ONE_FACE_REGIONS
from fer_core.registry import list_models, model_title
from ui.drawing import DISPLAY_MAX_SIDE, draw_faces, enlarge_face
from ui.figures import probability_figure
from ui.text import escape_markdown

MAX_PHOTOS = 10  # per page run: every photo is held in memory until the page is drawn
ONE_FACE_CHOICES = {"centre": "its centre square", "whole": "the whole image, padded to a square"}
assert tuple(ONE_FACE_CHOICES) == ONE_FACE_REGIONS  # a caption for each region fer_core reads
log = logging.getLogger(__name__)


def show_analysis(idx: int, analysis: Analysis, n_models: int) -> None:
    """One photo: the boxed image, then per face its crop, each model's reading and the ensemble."""
    faces = analysis.faces
    if analysis.truncated:
        st.info(f"{analysis.faces_found} faces found; the {len(faces)} largest are shown.", icon=":material/group:")
    captions = [f.label for f in faces] if analysis.detected else None
    annotated = draw_faces(analysis.image, [f.box for f in faces], captions, max_side=DISPLAY_MAX_SIDE)
    st.image(annotated, width="content", output_format="JPEG")  # JPEG: PNG of a photo costs ~100x the CPU
    t = analysis.timings_ms
    st.caption(
        f"{analysis.image.width}×{analysis.image.height} px · decode {t['decode']:.0f} ms · "
        f"face detection {t['detect']:.0f} ms · total {t['total']:.0f} ms"
        + (" · each face read with its mirror" if analysis.tta == "flip" else "")
    )
    for i, face in enumerate(faces, start=1):
        st.subheader(f"Face {i}" if analysis.detected else "The image as one face")
        cols = st.columns([1] + [2] * len(face.probabilities))
        if face.face is not None:
            cols[0].image(enlarge_face(face.face), caption="what the models see: 48×48 gray")
        for col, (model, probs) in zip(cols[1:], face.probabilities.items(), strict=True):
            label, score = face.top(model)
            with col:
                st.markdown(f"**{model_title(model)}**: {label} · {score:.0%}")
                st.plotly_chart(
                    probability_figure(probs, face.labels),
                    key=f"probs-{idx}-{i}-{model}",
                    config={"displayModeBar": False},
                )
                st.caption(f"{t[model]:.0f} ms for {len(faces)} face(s)")
        if n_models > 1:  # one model is its own ensemble: nothing to add
            verdict = f"all {n_models} models agree" if face.agree else "the models disagree, so read it with care"
            st.markdown(f"**Ensemble** (mean of the {n_models} models): **{face.label}** · {face.score:.0%}, {verdict}")


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

uploads = st.file_uploader("Photos", type=list(WEB_SUFFIXES), accept_multiple_files=True)
left, right = st.columns(2)  # two toggles a row: four in one row cut their labels short
use_sample = left.toggle("Use the sample photo (NASA astronaut, public domain)")
use_camera = right.toggle("Use the camera")
left, right = st.columns(2)
small_faces = left.toggle("Find small faces (group photos; slower)")
mirror = right.toggle(
    "Read each face with its mirror too (more accurate; slower)",
    help="Each model reads the face and its mirror image and averages the two: more accurate on FER2013 "
    "(the Benchmarks page compares TTA none and flip), twice the models' time.",
)
tta = "flip" if mirror else "none"

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
if use_sample:
    sources.append((SAMPLE_PHOTO.name, SAMPLE_PHOTO.read_bytes()))
if not sources:
    st.info("Upload a photo, take one with the camera, or use the sample photo.", icon=":material/add_a_photo:")
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
    show_analysis(idx, analysis, len(predictor.model_names))
    done.append((name, analysis))

if done:
    st.divider()
    left, right = st.columns(2)
    left.download_button(
        "Download results (JSON)", export_json(done), "expressions.json", "application/json", on_click="ignore"
    )
    right.download_button("Download results (CSV)", export_csv(done), "expressions.csv", "text/csv", on_click="ignore")
