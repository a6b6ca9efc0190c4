"""Command line: a thin layer over the library's functions.

python -m fer_core train    --model resnet18 [--data PATH] [--epochs N] [--out runs] [--resume] [--limit N]
python -m fer_core evaluate --model resnet18|ensemble|all [--split val|test] [--tta none|flip|tencrop] [--out FILE]
python -m fer_core calibrate [--data PATH] [--weights-dir weights]   # temperatures (val/) -> calibration.json
python -m fer_core export   [--model NAME ...] [--runs runs] [--weights weights]
python -m fer_core predict  PHOTO_CLIP_OR_FOLDER ... [--tta flip] [--fps 2] [--format json|csv] [-o FILE [--resume]]
python -m fer_core explain  PHOTO ... --out DIR   # each model's occlusion map of each face: PNG + .npy
python -m fer_core card     [--model NAME ...]   # weights/NAME.card.json from weights and results
python -m fer_core report   [--results results] [--write README.md]   # the README's tables from results/
python -m fer_core bench    [--weights-dir DIR] [--runs N] [--out FILE]   # app speed -> results/bench_app.json
python -m fer_core bench-fer --fer-python PY   # ours vs the fer package, side by side -> results/bench_fer.json
python -m fer_core bench-train [--model NAME ...] [--steps N]   # min/epoch per model -> results/bench_train.json
python -m fer_core bench-explain [--faces N]   # maps' faithfulness and cost -> results/bench_explain.json
python -m fer_core bench-video  [--seconds 15] # a 15 s clip, three models: speed, memory -> results/bench_video.json
python -m fer_core bench-detect [--photos 300] # detection settings: found, false, cost -> results/bench_detect.json
python -m fer_core data-stats  [--data PATH]   # split sizes, class counts, pixel mean/std
python -m fer_core models   # the registry

Every command a user runs is here; tools/ holds only developer scripts (screenshots, load and batch runs).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .data import SPLITS
from .errors import DataLayoutError, InvalidImageError, WeightsError
from .preprocess import ONE_FACE_REGIONS, TTA_MODES
from .registry import list_models


def _add_train(sub) -> None:
    from .config import add_train_flags

    p = sub.add_parser("train", help="train a model (select on val/, never on test/)")
    add_train_flags(p)  # one flag per TrainConfig field, defined there
    p.add_argument("--resume", action="store_true", help="continue OUT/MODEL/last.pt exactly")
    p.add_argument("--stop-after", type=int, help="stop this process after N epochs (continue with --resume)")


def _run_train(args: argparse.Namespace) -> int:
    from .train import TrainConfig, main

    skip = ("command", "resume", "stop_after")
    overrides = {k: v for k, v in vars(args).items() if k not in skip and v is not None}
    main(TrainConfig(**overrides), resume=args.resume, stop_after=args.stop_after)
    return 0


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="evaluate weights on a split and write a results run")
    p.add_argument(
        "--model",
        required=True,
        help=f"one of {', '.join(list_models())}, ensemble, or all (each model and the ensemble, one pass)",
    )
    p.add_argument("--data", help="data folder or fer2013.csv (default: $FER_DATA or data/fer2013)")
    p.add_argument("--split", default="val", choices=SPLITS)
    p.add_argument("--tta", default="none", choices=TTA_MODES)
    p.add_argument("--weights", help="one model's .onnx or .pt file (default: WEIGHTS_DIR/MODEL.onnx)")
    p.add_argument("--weights-dir", help="folder of NAME.onnx files (default: the repository's weights/)")
    p.add_argument("--out", default="results", help="results folder or .json file (default: results/)")
    p.add_argument("--threads", type=int)
    p.add_argument("--limit", type=int, help="evaluate the first N images only (smoke runs; the run records n)")


def _run_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate, evaluate_all
    from .results import write_run

    if args.model == "all":
        if args.weights:
            raise ValueError("--weights names one model's file; --model all uses every model in --weights-dir")
        if args.out.endswith(".json"):
            raise ValueError("--model all writes several runs: give --out a folder, not a .json file")
        runs = evaluate_all(args.split, args.tta, args.data, args.weights_dir, args.threads, limit=args.limit)
    else:
        runs = [
            evaluate(
                args.model,
                args.split,
                args.tta,
                args.data,
                args.weights,
                args.weights_dir,
                args.threads,
                limit=args.limit,
            )
        ]
    for run in runs:
        path = write_run(run, args.out)
        m = run["metrics"]
        print(
            f"{run['name']} on {args.split} ({run['data']['n']} images, TTA {args.tta}): "
            f"accuracy {m['accuracy']:.4f}, macro-F1 {m['macro']['f1']:.4f}, weighted-F1 {m['weighted']['f1']:.4f}, "
            f"{run['timing']['images_per_second']:.0f} images/s -> {path}"
        )
    return 0


def _add_calibrate(sub) -> None:
    p = sub.add_parser(
        "calibrate", help="fit each model's and the ensemble's temperature on val/ -> WEIGHTS_DIR/calibration.json"
    )
    p.add_argument("--data", help="data folder or fer2013.csv (default: $FER_DATA or data/fer2013)")
    p.add_argument("--weights-dir", help="folder of NAME.onnx files (default: the repository's weights/)")
    p.add_argument("--threads", type=int)
    p.add_argument("--limit", type=int, help="fit on the first N val images only (smoke runs)")


def _run_calibrate(args: argparse.Namespace) -> int:
    from .calibration import write_calibration
    from .evaluate import calibrate
    from .serving import DEFAULT_WEIGHTS_DIR

    folder = args.weights_dir or DEFAULT_WEIGHTS_DIR
    cal = calibrate(args.data, folder, args.threads, args.limit)
    fitted = cal.info["fitted_on"]
    print(f"calibration fitted on {fitted['split']} ({fitted['n']} images, TTA {fitted['tta']}, by NLL):")
    temps = {m: e["temperature"] for m, e in cal.models.items()}
    bends = {m: e.get("bend", 0.0) for m, e in cal.models.items()}
    if cal.ensemble:
        temps["ensemble"] = cal.ensemble["temperature"]
    for name, t in temps.items():
        row = cal.info["metrics"][fitted["split"]][name]
        before, after = row["raw"], row["calibrated"]
        print(
            f"  {name:18s} T={t:.4f} bend={bends.get(name, 0.0):.4f}  ECE {before['ece']:.4f} -> {after['ece']:.4f}  "
            f"NLL {before['nll']:.4f} -> {after['nll']:.4f}  Brier {before['brier']:.4f} -> {after['brier']:.4f}"
        )
    print(f"-> {write_calibration(cal, folder)}")
    return 0


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="turn trained checkpoints into the shipped ONNX and .pt files")
    p.add_argument("--model", nargs="*", help="models to export (default: every model with runs/NAME/best.pt)")
    p.add_argument("--runs", default="runs", help="training output folder (default: runs)")
    p.add_argument("--weights", default="weights", help="where to write NAME.onnx and NAME.pt (default: weights)")
    p.add_argument(
        "--fp32", action="store_true", help="keep the .pt all fp32 (default: fp16 weights, fp32 norms and biases)"
    )
    p.add_argument("--checkpoint", help="export this one checkpoint instead ...")
    p.add_argument("--out", help="... to this .onnx file")


def _run_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .export import export_model, export_onnx

    if args.checkpoint:
        if not args.out:
            raise ValueError("--checkpoint needs --out FILE.onnx")
        info = export_onnx(args.checkpoint, args.out)
        print(f"{args.checkpoint} -> {args.out} (ONNX vs torch max |diff| {info['max_abs_diff']:.1e})")
        return 0
    names = args.model or [m for m in list_models() if (Path(args.runs) / m / "best.pt").is_file()]
    if not names:
        raise ValueError(f"nothing to export: no {args.runs}/MODEL/best.pt; train a model first")
    for name in names:
        info = export_model(name, args.runs, args.weights, half=not args.fp32)
        print(f"{name}: {info['file']} (ONNX vs torch max |diff| {info['max_abs_diff']:.1e}) and {name}.pt")
    return 0


def _add_quantize(sub) -> None:
    from .quantize import CALIBRATION_FACES, METHODS

    p = sub.add_parser("quantize", help="int8 copies of exported ONNX files, calibrated on training faces")
    p.add_argument("--model", nargs="*", choices=list_models(), help="models to quantize (default: every one)")
    p.add_argument("--data", help="data folder or fer2013.csv (default: $FER_DATA or data/fer2013)")
    p.add_argument("--weights-dir", help="folder of the fp32 NAME.onnx files (default: the repository's weights/)")
    p.add_argument("--out", required=True, help="folder to write the int8 NAME.onnx files to (not the source folder)")
    p.add_argument(
        "--method", default="auto", choices=("auto", *METHODS), help="activation ranges (default auto: chosen on val/)"
    )
    p.add_argument("--faces", type=int, default=CALIBRATION_FACES, help=f"training faces (default {CALIBRATION_FACES})")


def _run_quantize(args: argparse.Namespace) -> int:
    from .data import load_fer2013
    from .quantize import quantize_model
    from .serving import weights_path

    if args.faces < 1:
        raise ValueError("--faces must be at least 1")
    data = load_fer2013(args.data)
    val = (data["val"].images, data["val"].labels)
    for name in args.model or list_models():
        src = weights_path(name, args.weights_dir)
        r = quantize_model(name, src, args.out, data["train"].images, val, args.method, args.faces)
        tried = ", ".join(
            [f"{m} {acc:.2%} (agrees {r['agreement'][m]:.2%})" for m, acc in r["candidates"].items()]
            + [f"{m} failed" for m in r.get("failed", {})]
        )
        print(
            f"{name}: {r['file']} ({r['bytes'] / 1e6:.1f} MB, fp32 {r['fp32_bytes'] / 1e6:.1f} MB); val accuracy "
            f"fp32 {r['fp32_val_accuracy']:.2%}, int8 {tried} -> {r['method']}"
        )
    return 0


def _add_predict(sub) -> None:
    from .video import DEFAULT_FPS, MAX_SECONDS, MAX_VIDEO_BYTES

    p = sub.add_parser("predict", help="classify the faces in photos and clips (files or folders)")
    p.add_argument("paths", nargs="+", help="image or video files, or folders (searched recursively)")
    p.add_argument("--no-detect", dest="detect", action="store_false", help="treat each image as one face")
    p.add_argument(
        "--region",
        default="centre",
        choices=ONE_FACE_REGIONS,
        help="with --no-detect: the image's centred square (default) or all of it, padded to a square",
    )
    p.add_argument(
        "--small-faces", action="store_true", help="also find faces down to ~2%% of the longer side (slower)"
    )
    p.add_argument(
        "--tta",
        default="none",
        choices=TTA_MODES,
        help="each face alone (default), averaged with its mirror (flip: more accurate, twice the model time), "
        "or ten crops",
    )
    p.add_argument(
        "--fps", type=float, default=DEFAULT_FPS, help=f"clips: frames read per second (default {DEFAULT_FPS:g})"
    )
    p.add_argument(
        "--max-seconds", type=float, default=MAX_SECONDS, help=f"clips: refuse longer ones (default {MAX_SECONDS:g})"
    )
    p.add_argument(
        "--max-video-mb",
        type=float,
        default=MAX_VIDEO_BYTES / 2**20,
        help=f"clips: refuse larger files (default {MAX_VIDEO_BYTES / 2**20:g} MiB)",
    )
    p.add_argument("--format", default="json", choices=["json", "csv"], help="json = one JSON object per line")
    p.add_argument("--weights-dir", help="folder of NAME.onnx files (default: the repository's weights/)")
    p.add_argument("--models", nargs="*", help="subset of models (default: all shipped)")
    p.add_argument("--output", "-o", help="write here instead of standard output")
    p.add_argument(
        "--resume", action="store_true", help="skip the files already in -o FILE (a killed run) and append the rest"
    )
    p.add_argument("--threads", type=int)
    p.add_argument("--no-progress", dest="progress", action="store_false")


def _run_predict(args: argparse.Namespace) -> int:
    from .batch import BatchOptions, predict_paths
    from .predict import Predictor

    options = BatchOptions(  # checked before any model is loaded
        detect=args.detect,
        region=args.region,
        small_faces=args.small_faces,
        tta=args.tta,
        fmt=args.format,
        output=args.output,
        resume=args.resume,
        progress=args.progress,
        fps=args.fps,
        max_seconds=args.max_seconds,
        max_video_bytes=int(args.max_video_mb * 2**20),
    )
    return predict_paths(args.paths, Predictor.load(args.weights_dir, args.models, args.threads), options)


def _add_explain(sub) -> None:
    from .explain import PATCH, STRIDE

    p = sub.add_parser("explain", help="where each model looked: occlusion maps of every face in photos")
    p.add_argument("paths", nargs="+", help="photo files")
    p.add_argument("--out", required=True, help="folder for PHOTO_face<i>.png, PHOTO_face<i>_<model>.npy and overlays")
    p.add_argument("--no-detect", dest="detect", action="store_false", help="treat each image as one face")
    p.add_argument("--region", default="centre", choices=ONE_FACE_REGIONS, help="with --no-detect (see predict)")
    p.add_argument("--small-faces", action="store_true", help="also find small faces (group photos; slower)")
    p.add_argument("--max-faces", type=int, default=20, help="explain at most this many faces per photo (largest)")
    p.add_argument("--patch", type=int, default=PATCH, help=f"side of the hidden square (default {PATCH})")
    p.add_argument("--stride", type=int, default=STRIDE, help=f"its step (default {STRIDE})")
    p.add_argument("--weights-dir", help="folder of NAME.onnx files (default: the repository's weights/)")


def _run_explain(args: argparse.Namespace) -> int:
    from .explain_files import explain_photos
    from .predict import Predictor

    predictor = Predictor.load(args.weights_dir)
    return explain_photos(args.paths, args.out, predictor, args)


def _add_bench_explain(sub) -> None:
    p = sub.add_parser("bench-explain", help="faithfulness and cost of the maps per patch/stride -> results/")
    p.add_argument("--data", help="data folder or fer2013.csv (default: $FER_DATA or data/fer2013)")
    p.add_argument("--faces", type=int, default=60, help="PublicTest faces to measure on (default 60)")
    p.add_argument("--weights-dir", help="folder of NAME.onnx files (default: the repository's weights/)")
    p.add_argument("--out", help="JSON file to write (default: results/bench_explain.json)")


def _add_bench_video(sub) -> None:
    p = sub.add_parser("bench-video", help="a generated 15 s clip through every model: speed and memory -> results/")
    p.add_argument("--seconds", type=float, default=15.0, help="clip length (default 15)")
    p.add_argument("--fps", type=float, help="frames read per second (default: the predict default)")
    p.add_argument("--weights-dir", help="folder of NAME.onnx files (default: the repository's weights/)")
    p.add_argument("--out", help="JSON file to write (default: results/bench_video.json)")


def _run_bench_video(args: argparse.Namespace) -> int:
    from .atomic import write_json_atomic
    from .bench_video import DEFAULT_OUT, run
    from .video import DEFAULT_FPS

    r = run(args.seconds, args.fps or DEFAULT_FPS, args.weights_dir)
    print(
        f"{r['clip']['seconds']:g} s clip, {r['frames_read']} frames read at {r['rate_fps']:g}/s "
        f"in {r['wall_s']:.2f} s: "
        f"{r['frames_per_s']:.1f} frames/s, real-time factor {r['real_time_factor']:.2f}, "
        f"{r['tracks']} track(s); peak RSS {r['peak_rss_mb']['after']:.0f} MB"
    )
    out = args.out or DEFAULT_OUT
    write_json_atomic(out, r)
    print(f"-> {out}")
    return 0


def _add_bench_detect(sub) -> None:
    p = sub.add_parser(
        "bench-detect", help="face detection settings side by side: faces found, false faces, cost -> results/"
    )
    p.add_argument("--data", help="data folder or fer2013.csv (default: $FER_DATA or data/fer2013)")
    p.add_argument("--photos", type=int, default=300, help="photos made from val/ faces (default 300)")
    p.add_argument("--out", help="JSON file to write (default: results/bench_detect.json)")


def _run_bench_detect(args: argparse.Namespace) -> int:
    from .atomic import write_json_atomic
    from .bench_detect import DEFAULT_OUT, run, summary

    if args.photos < 1:
        raise ValueError("--photos must be at least 1")
    record = run(args.data, args.photos)
    print(f"{summary(record)}\n-> {write_json_atomic(args.out or DEFAULT_OUT, record, indent=1)}")
    return 0


def _run_bench_explain(args: argparse.Namespace) -> int:
    from .atomic import write_json_atomic
    from .bench_explain import DEFAULT_OUT, run

    record = run(args.data, args.faces, args.weights_dir)
    for row in record["settings"]:
        faith = ", ".join(f"{m} {v:+.3f}" for m, v in row["faithfulness"].items())
        print(f"patch {row['patch']:2d} stride {row['stride']:2d}: {row['ms_per_face']:7.0f} ms/face; {faith}")
    print(f"-> {write_json_atomic(args.out or DEFAULT_OUT, record, indent=1)}")
    return 0


def _add_card(sub) -> None:
    p = sub.add_parser("card", help="write weights/NAME.card.json from the shipped weights and stored runs")
    p.add_argument("--model", nargs="*", help="models (default: every model with weights/NAME.onnx)")
    p.add_argument("--weights", default="weights", help="folder of NAME.onnx (default: weights)")
    p.add_argument("--results", default="results", help="folder of evaluation runs (default: results)")


def _run_card(args: argparse.Namespace) -> int:
    from .cards import shipped_models, write_card

    names = args.model or shipped_models(args.weights)
    if not names:
        raise ValueError(f"no NAME.onnx in {args.weights}; export a model first")
    for name in names:
        print(f"{name}: {write_card(name, args.weights, args.results)}")
    return 0


def _add_report(sub) -> None:
    p = sub.add_parser("report", help="print the README's results and references tables from results/")
    p.add_argument("--results", default="results", help="folder of evaluation runs (default: results)")
    p.add_argument("--write", metavar="README", help="replace the tables in this file instead of printing them")


def _run_report(args: argparse.Namespace) -> int:
    from .report import readme_tables, write_tables

    tables = readme_tables(args.results)
    if args.write:
        print(f"results and references tables of {write_tables(args.write, tables)} updated")
    else:
        print("\n\n".join(tables))
    return 0


def _add_bench(sub) -> None:
    p = sub.add_parser("bench", help="time the app: cold start, per-photo latency, memory -> results/bench_app.json")
    p.add_argument("--weights-dir", help="folder of NAME.onnx files (default: the repository's weights/)")
    p.add_argument("--out", help="JSON file to write (default: results/bench_app.json)")
    p.add_argument("--photo", help="photo to time (default: assets/astronaut.jpg)")
    p.add_argument("--runs", type=int, default=30, help="timed calls of analyze() after the warm-up (default 30)")
    p.add_argument("--side", type=int, help="resize the photo to this longer side (default 640; 0: as it is)")
    p.add_argument("--threads", type=int, help="ONNX Runtime threads per model (default: up to 2)")


def _run_bench(args: argparse.Namespace) -> int:
    from .atomic import write_json_atomic
    from .bench import DEFAULT_OUT, DEFAULT_PHOTO, PHOTO_SIDE, bench, summary

    side = PHOTO_SIDE if args.side is None else args.side or None
    record = bench(args.weights_dir, args.photo or DEFAULT_PHOTO, args.runs, args.threads, side)
    out = write_json_atomic(args.out or DEFAULT_OUT, record, indent=2)  # a killed run leaves no half file
    print(f"{summary(record)} -> {out}")
    return 0


def _add_bench_fer(sub) -> None:
    p = sub.add_parser(
        "bench-fer", help="our three models against the fer package, alternately on the same photos -> results/"
    )
    p.add_argument("--fer-python", help="an interpreter that can import fer (its own venv; default: $FER_PYTHON)")
    p.add_argument("--weights-dir", help="folder of NAME.onnx files (default: the repository's weights/)")
    p.add_argument("--rounds", type=int, default=20, help="timed calls per photo and engine (default 20)")
    p.add_argument("--out", help="JSON file to write (default: results/bench_fer.json)")


def _run_bench_fer(args: argparse.Namespace) -> int:
    from .atomic import write_json_atomic
    from .bench_fer import DEFAULT_OUT, find_fer_python, run, summary

    if args.rounds < 1:
        raise ValueError("--rounds must be at least 1")
    fer_python = find_fer_python(args.fer_python)
    if fer_python is None:
        print(
            "skipped: no interpreter that can import fer (give --fer-python or set $FER_PYTHON to a venv with "
            '`pip install fer==25.10.3 "setuptools<81" tf-keras==2.21.0`); nothing written',
            file=sys.stderr,
        )
        return 2
    record = run(fer_python, args.weights_dir, args.rounds)
    print(f"{summary(record)} -> {write_json_atomic(args.out or DEFAULT_OUT, record, indent=1)}")
    return 0


def _add_bench_train(sub) -> None:
    p = sub.add_parser(
        "bench-train", help="time a training epoch of each model on this machine -> results/bench_train.json"
    )
    p.add_argument("--model", nargs="*", choices=list_models(), help="models to time (default: every registered one)")
    p.add_argument("--steps", type=int, default=12, help="timed training steps, after 3 warm-up steps (default 12)")
    p.add_argument("--batch-size", type=int, default=64, help="images per training step (default 64)")
    p.add_argument("--output-stride", type=int, choices=[8, 16], help="the variant to time (8: a 6x6 final map)")
    p.add_argument("--out", help="JSON file to write (default: results/bench_train.json)")


def _run_bench_train(args: argparse.Namespace) -> int:
    from .atomic import write_json_atomic
    from .bench_train import DEFAULT_OUT, time_models

    arch = {"output_stride": args.output_stride} if args.output_stride else {}
    record = time_models(args.model or list_models(), args.steps, args.batch_size, **arch)
    print(f"-> {write_json_atomic(args.out or DEFAULT_OUT, record, indent=1)}")
    return 0


def _add_data_stats(sub) -> None:
    p = sub.add_parser("data-stats", help="a data set's split sizes, class counts and pixel mean/std")
    p.add_argument("--data", help="data folder or fer2013.csv (default: $FER_DATA or data/fer2013)")


def _run_data_stats(args: argparse.Namespace) -> int:
    from .data import load_fer2013, stats_lines

    print("\n".join(stats_lines(load_fer2013(args.data))))
    return 0


def _run_models(args: argparse.Namespace) -> int:
    from .registry import get_spec

    for name in list_models():
        spec = get_spec(name)
        print(f"{name:18s} {spec.title:16s} input {spec.input_size}x{spec.input_size} gray; {spec.head}")
    return 0


COMMANDS = {
    "train": _run_train,
    "evaluate": _run_evaluate,
    "calibrate": _run_calibrate,
    "export": _run_export,
    "predict": _run_predict,
    "explain": _run_explain,
    "card": _run_card,
    "report": _run_report,
    "bench": _run_bench,
    "bench-train": _run_bench_train,
    "bench-fer": _run_bench_fer,
    "quantize": _run_quantize,
    "bench-explain": _run_bench_explain,
    "bench-video": _run_bench_video,
    "bench-detect": _run_bench_detect,
    "data-stats": _run_data_stats,
    "models": _run_models,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fer_core", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_evaluate(sub)
    _add_calibrate(sub)
    _add_export(sub)
    _add_predict(sub)
    _add_explain(sub)
    _add_card(sub)
    _add_report(sub)
    _add_bench(sub)
    _add_bench_fer(sub)
    _add_quantize(sub)
    _add_bench_train(sub)
    _add_bench_explain(sub)
    _add_bench_video(sub)
    _add_bench_detect(sub)
    _add_data_stats(sub)
    sub.add_parser("models", help="list the registered models")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (InvalidImageError, DataLayoutError, WeightsError, ValueError, OSError) as exc:
        # OSError: an output folder that does not exist, a full disk, a file we may not read
        print(f"error: {exc}", file=sys.stderr)
        return 2
