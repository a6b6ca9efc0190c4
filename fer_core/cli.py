"""Command line: a thin layer over the library's functions.

python -m fer_core train    --model resnet18 [--data PATH] [--epochs N] [--out runs] [--resume] [--limit N]
python -m fer_core evaluate --model resnet18|ensemble|all [--split val|test] [--tta none|flip|tencrop] [--out FILE]
python -m fer_core export   [--model NAME ...] [--runs runs] [--weights weights]
python -m fer_core predict  PHOTO_OR_FOLDER ... [--no-detect] [--tta none|flip] [--format json|csv] [-o FILE [--resume]]
python -m fer_core card     [--model NAME ...]   # weights/NAME.card.json from weights and results
python -m fer_core models   # the registry
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .errors import DataLayoutError, InvalidImageError, WeightsError
from .registry import list_models
from .schedule import SCHEDULES


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model (select on val/, never on test/)")
    p.add_argument("--model", required=True, choices=list_models())
    p.add_argument("--data", help="data folder or fer2013.csv (default: $FER_DATA or data/fer2013)")
    p.add_argument("--epochs", type=int, help="schedule length (default: the registry recipe)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float, help="peak learning rate (default: the registry recipe)")
    p.add_argument("--optimizer", choices=["sgd", "adamw"])
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--label-smoothing", type=float)
    p.add_argument("--mixup", type=float, help="mixup alpha (0 = off)")
    p.add_argument("--crop", type=int, help="train on random 44x44 crops, serve the centre crop (default: whole face)")
    p.add_argument("--schedule", choices=SCHEDULES, help="lr schedule (default onecycle)")
    p.add_argument("--warmup", type=float, help="share of steps rising to the peak lr (onecycle, cosine)")
    p.add_argument("--plateau-factor", type=float, help="plateau: lr multiplier on a plateau (default 0.75)")
    p.add_argument("--plateau-patience", type=int, help="plateau: epochs without a better val accuracy (default 5)")
    p.add_argument("--ema", type=float, help="EMA decay of the weights, e.g. 0.999 (default 0 = off); EMA ships")
    p.add_argument("--seed", type=int)
    p.add_argument("--out", help="run folders go to OUT/MODEL (default: runs)")
    p.add_argument("--resume", action="store_true", help="continue OUT/MODEL/last.pt exactly")
    p.add_argument("--stop-after", type=int, help="stop this process after N epochs (continue with --resume)")
    p.add_argument("--limit", type=int, help="train on a seeded subset of N images")
    p.add_argument("--val-limit", type=int, help="validate on N val images (smoke runs)")
    p.add_argument("--pretrained", action="store_true", help="ImageNet init (needs torchvision's weight file)")
    p.add_argument(
        "--init",
        metavar="CHECKPOINT",
        help="start from a fer_core checkpoint's weights, e.g. weights/resnet18.pt (fine-tuning; new schedule)",
    )
    p.add_argument(
        "--teacher",
        nargs="+",
        metavar="WEIGHTS",
        help="distill the mean softmax of these .onnx/.pt files, e.g. weights/*.onnx (needs --distill)",
    )
    p.add_argument("--distill", type=float, help="share of the loss on the teacher's soft targets, 0-1 (default 0)")
    p.add_argument("--distill-temp", type=float, help="distillation temperature (default 2)")
    p.add_argument("--precision", choices=["auto", "fp32"])
    p.add_argument("--threads", type=int)
    p.add_argument("--device")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None)


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
    p.add_argument("--split", default="val", choices=["train", "val", "test"])
    p.add_argument("--tta", default="none", choices=["none", "flip", "tencrop"])
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


def _add_predict(sub) -> None:
    p = sub.add_parser("predict", help="classify the faces in photos (files or folders)")
    p.add_argument("paths", nargs="+", help="image files or folders (searched recursively)")
    p.add_argument("--no-detect", dest="detect", action="store_false", help="treat each image as one face")
    p.add_argument(
        "--region",
        default="centre",
        choices=["centre", "whole"],
        help="with --no-detect: the image's centred square (default) or all of it, padded to a square",
    )
    p.add_argument(
        "--small-faces", action="store_true", help="also find faces down to ~2%% of the longer side (slower)"
    )
    p.add_argument(
        "--tta",
        default="none",
        choices=["none", "flip", "tencrop"],
        help="each face alone (default), averaged with its mirror (flip: more accurate, twice the model time), "
        "or ten crops",
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
    from .batch import predict_paths

    return predict_paths(
        args.paths,
        detect=args.detect,
        region=args.region,
        fmt=args.format,
        weights_dir=args.weights_dir,
        models=args.models,
        output=args.output,
        threads=args.threads,
        progress=args.progress,
        resume=args.resume,
        small_faces=args.small_faces,
        tta=args.tta,
    )


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


COMMANDS = {
    "train": _run_train,
    "evaluate": _run_evaluate,
    "export": _run_export,
    "predict": _run_predict,
    "card": _run_card,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fer_core", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_evaluate(sub)
    _add_export(sub)
    _add_predict(sub)
    _add_card(sub)
    sub.add_parser("models", help="list the registered models")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command in COMMANDS:
            return COMMANDS[args.command](args)
        if args.command == "models":
            from .registry import get_spec

            for name in list_models():
                spec = get_spec(name)
                print(f"{name:18s} {spec.title:16s} input {spec.input_size}x{spec.input_size} gray; {spec.head}")
            return 0
    except (InvalidImageError, DataLayoutError, WeightsError, ValueError, OSError) as exc:
        # OSError: an output folder that does not exist, a full disk, a file we may not read
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 1
