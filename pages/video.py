"""Video: a clip in; each person's expression over time, as each model and the ensemble read it."""

import logging

import numpy as np
import streamlit as st
from PIL import Image

from app_state import get_predictor, through_app
from fer_core.errors import InvalidImageError
from fer_core.predict import VideoFrame, video_csv, video_json
from fer_core.registry import model_title
from fer_core.video import MAX_SECONDS, MAX_VIDEO_BYTES, WEB_VIDEO_SUFFIXES, probe, scaled_box
from ui.drawing import draw_faces, enlarge_face
from ui.figures import models_over_time_figure, timeline_figure
from ui.tables import track_summaries
from ui.text import escape_markdown

through_app()  # a page opened by its address still runs inside app.py's navigation

RATES = (1, 2, 3, 5)  # frames read per second of clip: 2 keeps a clip's analysis faster than real time
MAX_TRACKS_SHOWN = 6  # the people seen in the most frames; the CSV and JSON hold every track
STRIP_EVERY_S = 5.0  # one frame of the strip every 5 s of clip: at most 12 for a 60-s clip
STRIP_SIDE = 320  # px, the strip's frames
log = logging.getLogger(__name__)

st.title("Expressions over time")
st.caption(
    f"Upload a clip (MP4, MOV or WebM; up to {MAX_VIDEO_BYTES // 2**20} MB and {MAX_SECONDS:.0f} s). Frames are read "
    "at the rate you choose, each face is followed from frame to frame, and each person gets a timeline of what "
    "the three models and their ensemble read. The clip is decoded in memory and never stored."
)
predictor = get_predictor()
if predictor is None:
    st.stop()

clip = st.file_uploader("Clip", type=list(WEB_VIDEO_SUFFIXES), max_upload_size=MAX_VIDEO_BYTES // 2**20)
fps = st.select_slider("Frames read per second", options=RATES, value=2, help="More frames: finer timelines, slower.")
if clip is None:
    st.info("Upload a clip with a face in it.", icon=":material/movie:")
    st.stop()

name, raw = escape_markdown(clip.name), clip.getvalue()
frames: list[VideoFrame] = []
strip: list[tuple[float, np.ndarray]] = []
try:
    info = probe(raw)
    bar = st.progress(0.0, text="Reading the clip…")
    for frame in predictor.analyze_video(raw, fps=fps, keep_images=True):
        if not strip or frame.time_s >= strip[-1][0] + STRIP_EVERY_S:
            boxes = [scaled_box(f.box, 1 / frame.scale) for f in frame.faces]  # onto the analysed copy
            shown = draw_faces(Image.fromarray(frame.image), boxes, [f"P{t}" for t in frame.tracks], STRIP_SIDE)
            strip.append((frame.time_s, np.asarray(shown)))
        frames.append(VideoFrame(frame.index, frame.time_s, frame.faces, frame.tracks, frame.seconds))  # no pixels
        done = frame.time_s / info.duration_s if info.duration_s else 0.0
        bar.progress(min(1.0, done), text=f"{frame.time_s:.1f} s of the clip read")
    bar.empty()
except InvalidImageError as exc:  # InvalidVideoError: what was wrong with the clip
    st.error(f"{name}: {escape_markdown(exc)}", icon=":material/broken_image:")
    st.stop()
except Exception as exc:
    log.exception("analysing a clip failed")  # never the clip's name or bytes: they are the visitor's
    st.error(f"{name} could not be analysed: {type(exc).__name__}. This is a bug on our side.", icon=":material/error:")
    st.stop()

seconds = sum(f.seconds for f in frames)
tracks = track_summaries(frames, MAX_TRACKS_SHOWN)
n_tracks = len({t for f in frames for t in f.tracks})
st.header(name, divider="gray")
if not tracks:
    st.warning(f"No face found in the {len(frames)} frames read from {name}.", icon=":material/face_retouching_off:")
else:
    people = f"{n_tracks} {'person' if n_tracks == 1 else 'people'}"
    st.markdown(
        f"**{people}** in {len(frames)} frames read ({frames[-1].time_s:.1f} s of clip at {fps} per second). "
        + "; ".join(f"**Person {t['track']}**: mostly **{t['label']}** ({t['share']:.0%} of frames)" for t in tracks)
        + "."
    )
st.caption(
    f"{info.width}×{info.height} px · {len(frames)} frames read · models {1000 * seconds / max(1, len(frames)):.0f} ms "
    "per frame · the ensemble's probabilities are calibrated; no smoothing: each point is one frame"
)
for t in tracks:
    st.subheader(f"Person {t['track']}")
    left, right = st.columns([1, 5], vertical_alignment="center")
    if t["face"] is not None:
        left.image(enlarge_face(t["face"], scale=2))
    right.markdown(
        f"Seen from {t['start']:.1f} s to {t['end']:.1f} s in {t['n']} frames; mostly **{t['label']}** "
        f"({t['share']:.0%} of them); all models agree on {t['agree_share']:.0%}."
    )
    st.plotly_chart(timeline_figure(t["times"], t["ensemble"], t["label_names"]), key=f"timeline-{t['track']}")
    k = list(t["label_names"]).index(t["label"])
    per_model = {m: [p[k] for p in ps] for m, ps in t["models"].items()}
    st.caption(f"Each model's probability of {t['label']} for Person {t['track']}:")
    st.plotly_chart(
        models_over_time_figure(t["times"], per_model, t["label"], [p[k] for p in t["ensemble"]]),
        key=f"models-{t['track']}",
    )
if n_tracks > len(tracks):
    st.info(f"{n_tracks} people found; the {len(tracks)} seen longest are shown (the downloads hold all).")

if strip:
    st.subheader("Frames, each person numbered (P1, P2, …)")
    cols = st.columns(min(4, len(strip)))
    for i, (time_s, image) in enumerate(strip):
        cols[i % len(cols)].image(image, caption=f"{time_s:.1f} s")

models = list(predictor.model_names)
st.divider()
left, right = st.columns(2)
left.download_button(
    "Download per frame (CSV)", video_csv(clip.name, frames, models), "clip.csv", "text/csv", on_click="ignore"
)
right.download_button(
    "Download per frame (JSON)", video_json(clip.name, frames, fps), "clip.json", "application/json", on_click="ignore"
)
st.caption(f"{', '.join(model_title(m) for m in models)}; one row per face per frame read, with its time and person.")
