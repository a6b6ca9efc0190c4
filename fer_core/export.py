"""Export trained checkpoints to what ships in weights/: ONNX for serving, a slim .pt for fine-tuning.

    python -m fer_core export [--model NAME ...] [--runs runs] [--weights weights]
    python -m fer_core export --checkpoint runs/resnet18/best.pt --out /tmp/resnet18.onnx

For each model: OUT/NAME.onnx (fp32, dynamic batch, self-describing metadata) and OUT/NAME.pt
(the checkpoint without optimizer state, fp16 unless --fp32). Every export is checked: ONNX
Runtime and torch must agree on random inputs to max |diff| <= 1e-4 on the logits.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .atomic import atomic_path
from .checkpoint import load_checkpoint, model_from_checkpoint, save_atomic, slim
from .errors import WeightsError
from .models import count_parameters
from .preprocess import FACE_SIZE
from .provenance import sha256_file
from .serving import META_KEY, ONNX_FORMAT, OnnxModel

OPSET = 18
MAX_ABS_DIFF = 1e-4


def onnx_metadata(ckpt: dict[str, Any], checkpoint_sha256: str, parameters: int) -> dict[str, Any]:
    return {
        "format": ONNX_FORMAT,
        "model": ckpt["model"],
        "labels": list(ckpt["labels"]),
        "spec": ckpt["spec"],
        "arch": ckpt.get("arch") or {},
        "input": {"name": "faces", "shape": ["batch", 1, FACE_SIZE, FACE_SIZE], "range": [0, 1]},
        "parameters": parameters,
        "epoch": ckpt["epoch"],
        "best": ckpt["best"],
        "selected_on": ckpt["selected_on"],
        "config": ckpt["config"],
        "data": ckpt.get("data"),
        "history": ckpt["history"],
        "init": ckpt.get("init"),
        "teachers": ckpt.get("teachers"),
        "checkpoint_sha256": checkpoint_sha256,
        "torch_version": ckpt.get("torch_version"),
    }


def require_val_selected(ckpt: dict[str, Any], path: str | os.PathLike) -> None:
    """Only checkpoints chosen on val ship: one chosen on test would report a biased test score."""
    if ckpt.get("selected_on") != "val":
        raise WeightsError(f"{path} was selected on {ckpt.get('selected_on')!r}; only val-selected checkpoints ship")


def export_onnx(checkpoint: str | os.PathLike, out: str | os.PathLike) -> dict[str, Any]:
    """Checkpoint -> ONNX file with metadata, checked against torch. Returns the check figures."""
    import onnx

    ckpt = load_checkpoint(checkpoint)
    require_val_selected(ckpt, checkpoint)
    model = model_from_checkpoint(ckpt)
    meta = onnx_metadata(ckpt, sha256_file(checkpoint), count_parameters(model))
    out = Path(out)
    dummy = torch.rand(2, 1, FACE_SIZE, FACE_SIZE)
    with atomic_path(out) as tmp_path:
        tmp = str(tmp_path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's deprecation chatter
            torch.onnx.export(
                model,
                (dummy,),
                tmp,
                input_names=["faces"],
                output_names=["logits"],
                dynamic_axes={"faces": {0: "batch"}, "logits": {0: "batch"}},
                opset_version=OPSET,
                dynamo=False,
            )
        proto = onnx.load(tmp)
        proto.doc_string = f"fer_core {ckpt['model']}: (B,1,48,48) gray in [0,1] -> (B,7) logits"
        entry = proto.metadata_props.add()
        entry.key, entry.value = META_KEY, json.dumps(meta)
        onnx.checker.check_model(proto)
        onnx.save(proto, tmp)
    return check_onnx_matches(out, model)


def check_onnx_matches(
    onnx_path: str | os.PathLike, model: torch.nn.Module, n: int = 16, seed: int = 0
) -> dict[str, Any]:
    """Max |logit difference| between ONNX Runtime and torch on random faces.

    Raises if it exceeds 1e-4 for logits up to 10 in magnitude (trained and fresh networks);
    beyond that the bound grows with the logits, since float32 spacing alone is 6e-5 at 600.
    """
    x = torch.rand(n, 1, FACE_SIZE, FACE_SIZE, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        ref = model.float().eval()(x).numpy()
    got = OnnxModel(onnx_path, verify=False)(x.numpy())  # a new file: its card is not written yet
    diff = float(np.abs(ref - got).max())
    bound = MAX_ABS_DIFF * max(1.0, float(np.abs(ref).max()) / 10)
    if diff > bound:
        raise RuntimeError(f"{onnx_path}: ONNX and torch logits differ by {diff:.2e} > {bound:.1e}")
    return {"file": str(onnx_path), "max_abs_diff": diff, "bound": bound, "n": n}


def export_model(
    name: str, runs: str | os.PathLike = "runs", weights: str | os.PathLike = "weights", half: bool = True
) -> dict[str, Any]:
    """runs/NAME/best.pt -> weights/NAME.onnx and weights/NAME.pt (slim)."""
    best = Path(runs) / name / "best.pt"
    ckpt = load_checkpoint(best)
    require_val_selected(ckpt, best)
    info = export_onnx(best, Path(weights) / f"{name}.onnx")
    save_atomic(slim(ckpt, half=half), Path(weights) / f"{name}.pt")
    return info
