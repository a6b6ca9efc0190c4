"""Tiny stand-ins for the exported weights, written without torch or the `onnx` package.

The serving and app tests need a `weights/` folder (NAME.onnx + NAME.card.json for every
registered model) but none of what a real export costs: torch, a training step, ~0.3 GB of files.
Each file here is a ~4 KB ONNX graph of three ops,

    faces (B, 1, 48, 48) -> AveragePool 6x6, stride 6 -> (B, 1, 8, 8) -> Flatten -> Gemm -> logits (B, 7)

with the metadata a real export carries (`fer_core.export.onnx_metadata`: model name, labels,
registry spec, selection, a one-epoch training record), so the loader's checks, the cards, the
results files and the About page see the same fields as with real weights. `parameters` is the
registry's count of the network a file stands in for, as a real export records it.

The weights are a closed-form "trained" reader of the synthetic faces of `conftest.synthetic_faces`
(class k: a bright band at rows 4+6k..8+6k, which the pool puts in rows k and k+1 of its 8x8 map),
weighted unevenly across the face and with noise seeded by the model's name: the three models read
the synthetic faces mostly right and disagree on some, a face and its mirror read differently,
and the same name always gives the same bytes.

The ONNX protobuf is written here, field by field, from the numbers in onnx.proto (only the fields
these graphs use); `test_tiny_onnx.py` checks in the torch tier that `onnx` parses each file into
exactly the model its helper API builds, and that its checker passes it.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from fer_core.labels import EMOTIONS
from fer_core.preprocess import FACE_SIZE
from fer_core.registry import get_spec, list_models
from fer_core.serving import META_KEY, ONNX_FORMAT

IR_VERSION = 8  # what torch's exporter writes at opset 18
OPSET = 18
INPUT, OUTPUT = "faces", "logits"
GRID = 8  # the side of the pooled map
POOL = FACE_SIZE // GRID  # 6: the pool's kernel and stride
K = len(EMOTIONS)

# onnx.proto's enum values used here
FLOAT = 1  # TensorProto.DataType.FLOAT
ATTR_INT, ATTR_INTS = 2, 7  # AttributeProto.AttributeType

# The one-epoch training run the metadata describes (TrainConfig's fields, as conftest's
# trained_weights_dir trains them); test_tiny_onnx.py checks the keys against a real export.
CONFIG: dict[str, Any] = {
    "model": None,  # the model's name, filled in per file
    "data": None,
    "out": "runs",
    "epochs": 1,
    "batch_size": 16,
    "optimizer": "sgd",
    "lr": 0.01,
    "weight_decay": 0.0005,
    "momentum": 0.9,
    "warmup": 0.15,
    "schedule": "onecycle",
    "plateau_factor": 0.75,
    "plateau_patience": 5,
    "ema": 0.0,
    "label_smoothing": 0.1,
    "mixup": 0.0,
    "augment": {
        "rotate_deg": 10.0,
        "scale": [0.9, 1.1],
        "translate": 0.08,
        "flip": 0.5,
        "brightness": 0.1,
        "contrast": 0.2,
        "erase_p": 0.25,
        "erase_area": [0.02, 0.2],
    },
    "crop": None,
    "output_stride": None,
    "drop_path": None,
    "dropout": None,
    "seed": 0,
    "limit": None,
    "val_limit": None,
    "pretrained": False,
    "init": None,
    "teacher": None,
    "distill": 0.0,
    "distill_temp": 2.0,
    "precision": "auto",
    "channels_last": True,
    "threads": 2,
    "device": None,
    "progress": False,
}
HISTORY_ROW = {
    "epoch": 1,
    "train_loss": 1.9,
    "train_acc": 0.25,
    "lr": 0.0093,
    "seconds": 1.0,
    "cpu_seconds": 2.0,
    "val_loss": 1.8,
    "val_acc": 0.5,
    "eval_seconds": 0.1,
}


# ---- protobuf wire format: varints and length-delimited fields ----------------------------------


def _varint(n: int) -> bytes:
    if n < 0:
        raise ValueError("only non-negative integers are written here")
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _int(field: int, value: int) -> bytes:
    """An int32/int64/enum field (wire type 0)."""
    return _varint(field << 3) + _varint(value)


def _bytes(field: int, value: bytes | str) -> bytes:
    """A string, bytes or embedded-message field (wire type 2)."""
    data = value.encode("utf-8") if isinstance(value, str) else value
    return _varint(field << 3 | 2) + _varint(len(data)) + data


# ---- the ONNX messages these graphs need, fields in field-number order -------------------------


def _value_info(name: str, shape: list[int | str]) -> bytes:
    """ValueInfoProto of a float tensor; a str dimension is symbolic (dim_param)."""
    dims = b"".join(_bytes(1, _int(1, d) if isinstance(d, int) else _bytes(2, d)) for d in shape)
    tensor_type = _int(1, FLOAT) + _bytes(2, dims)  # TypeProto.Tensor: elem_type, shape
    return _bytes(1, name) + _bytes(2, _bytes(1, tensor_type))  # name, type.tensor_type


def _tensor(name: str, array: np.ndarray) -> bytes:
    """TensorProto of float32 values in raw_data (little-endian, as ONNX requires)."""
    dims = b"".join(_int(1, d) for d in array.shape)
    return dims + _int(2, FLOAT) + _bytes(8, name) + _bytes(9, np.asarray(array, "<f4").tobytes())


def _attribute(name: str, value: int | list[int]) -> bytes:
    if isinstance(value, int):
        return _bytes(1, name) + _int(3, value) + _int(20, ATTR_INT)
    return _bytes(1, name) + b"".join(_int(8, v) for v in value) + _int(20, ATTR_INTS)


def _node(op_type: str, inputs: list[str], outputs: list[str], **attributes: int | list[int]) -> bytes:
    fields = [_bytes(1, i) for i in inputs] + [_bytes(2, o) for o in outputs] + [_bytes(4, op_type)]
    fields += [_bytes(5, _attribute(k, v)) for k, v in attributes.items()]
    return b"".join(fields)


# ---- the models ---------------------------------------------------------------------------------


def tiny_parameters(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The Gemm's weight (64, 7) and bias (7,) of model `name`; see the module docstring."""
    get_spec(name)
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    band = np.zeros((GRID, GRID, K))
    for k in range(K):
        band[k : k + 2, :, k] = 1.0
    columns = rng.uniform(0.2, 1.8, size=GRID)  # uneven across the face: its mirror reads differently
    weight = 1.5 * band * columns[None, :, None] + rng.normal(0.0, 0.5, size=(GRID, GRID, K))
    bias = rng.normal(0.0, 0.2, size=K)
    return weight.reshape(GRID * GRID, K).astype(np.float32), bias.astype(np.float32)


def metadata(name: str) -> dict[str, Any]:
    """The "fer_core" metadata of the tiny `name`.onnx, with the keys `fer_core.export` writes."""
    spec = get_spec(name)
    weight, bias = tiny_parameters(name)
    return {
        "format": ONNX_FORMAT,
        "model": name,
        "labels": list(EMOTIONS),
        "spec": spec.to_dict(),
        "arch": {},
        "input": {"name": INPUT, "shape": ["batch", 1, spec.input_size, spec.input_size], "range": [0, 1]},
        "parameters": spec.parameters,
        "epoch": 1,
        "best": {"metric": "accuracy", "split": "val", "value": HISTORY_ROW["val_acc"], "epoch": 1},
        "selected_on": "val",
        "config": {**CONFIG, "model": name},
        "data": {"path": "synthetic", "layout": "folders", "notes": [], "sizes": {"train": 16, "val": 8, "test": 8}},
        "history": [dict(HISTORY_ROW)],
        "init": None,
        "teachers": None,
        # no checkpoint was trained: the hash of the parameters stands in for the .pt's
        "checkpoint_sha256": hashlib.sha256(weight.tobytes() + bias.tobytes()).hexdigest(),
        "torch_version": None,
    }


def doc_string(name: str) -> str:
    return f"fer_core tests: tiny {name} stand-in, (B,1,48,48) gray in [0,1] -> (B,7) logits"


def tiny_onnx_bytes(name: str) -> bytes:
    """The serialized ModelProto of the tiny `name`.onnx: deterministic, ~4 KB."""
    weight, bias = tiny_parameters(name)
    nodes = [
        _node("AveragePool", [INPUT], ["pooled"], kernel_shape=[POOL, POOL], strides=[POOL, POOL]),
        _node("Flatten", ["pooled"], ["features"], axis=1),
        _node("Gemm", ["features", "weight", "bias"], [OUTPUT]),
    ]
    graph = b"".join(_bytes(1, n) for n in nodes)  # GraphProto.node
    graph += _bytes(2, f"tiny_{name}")  # name
    graph += _bytes(5, _tensor("weight", weight)) + _bytes(5, _tensor("bias", bias))  # initializer
    graph += _bytes(11, _value_info(INPUT, ["batch", 1, FACE_SIZE, FACE_SIZE]))  # input
    graph += _bytes(12, _value_info(OUTPUT, ["batch", K]))  # output
    model = _int(1, IR_VERSION)  # ModelProto.ir_version
    model += _bytes(2, "fer_core tests")  # producer_name
    model += _bytes(6, doc_string(name))  # doc_string
    model += _bytes(7, graph)  # graph
    model += _bytes(8, _bytes(1, "") + _int(2, OPSET))  # opset_import: the default domain
    model += _bytes(14, _bytes(1, META_KEY) + _bytes(2, json.dumps(metadata(name))))  # metadata_props
    return model


def write_tiny_weights(folder: str | Path) -> Path:
    """NAME.onnx and NAME.card.json for every registered model in `folder` (as `weights/` holds them)."""
    from fer_core.cards import write_card

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    no_runs = folder / "no-results"  # a fresh export's card: no evaluation runs yet
    for name in list_models():
        (folder / f"{name}.onnx").write_bytes(tiny_onnx_bytes(name))
        write_card(name, folder, no_runs)
    return folder
