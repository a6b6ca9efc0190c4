"""The torch side of running a network: precision, device, the logits function the shared
inference loop calls, and weight files of either kind behind one interface.

Training (`train`), evaluation (`evaluate`), distillation teachers and the benchmarks all come
here, so neither of them imports the other. torch is imported only where a torch network runs:
`open_weights` on an .onnx file needs ONNX Runtime alone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .provenance import sha256_file
from .serving import OnnxModel


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: without them bf16 is emulated and many times slower than fp32
    (measured on this project's AVX2-only EPYC: a ResNet18 step went from 0.8 s to minutes)."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = fh.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast(precision: str, device):
    """auto: fp16 on CUDA, bf16 on CPUs with native bf16, else fp32; fp32: no autocast."""
    import torch

    if precision == "fp32":
        return torch.autocast(device.type, enabled=False)
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=cpu_has_native_bf16())


def default_device(device: str | None = None):
    """`device`, else the local CUDA device (LOCAL_RANK under torchrun) if there is one, else the CPU."""
    import torch

    if device:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def torch_logits_fn(model, device, precision: str = "fp32", channels_last: bool = True):
    """Wrap a torch model as the numpy logits function `preprocess.predict_proba` expects."""
    import torch

    @torch.no_grad()
    def fn(x: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(x).to(device)
        if channels_last:
            t = t.contiguous(memory_format=torch.channels_last)
        with autocast(precision, device):
            return model(t).float().cpu().numpy()

    return fn


class TorchCheckpointModel:
    """A .pt checkpoint behind the same interface as OnnxModel (imports torch); never calibrated:
    temperatures are fitted for exported files (`python -m fer_core calibrate`)."""

    temperature = 1.0
    bend = 0.0

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        import torch

        from .checkpoint import load_checkpoint, model_from_checkpoint
        from .models import count_parameters

        if threads:
            torch.set_num_threads(threads)
        self.path = Path(path)
        ckpt = load_checkpoint(self.path)
        self.name = ckpt["model"]
        self.labels = list(ckpt["labels"])
        model = model_from_checkpoint(ckpt)
        self._fn = torch_logits_fn(model, torch.device("cpu"))
        self.meta = {k: ckpt.get(k) for k in ("best", "selected_on", "history", "epoch", "config", "init")}
        self.meta["parameters"] = count_parameters(model)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self._fn(x)

    def describe(self) -> dict[str, Any]:
        sha = sha256_file(self.path)
        return {
            "model": self.name,
            "file": self.path.name,
            "sha256": sha,
            "bytes": self.path.stat().st_size,
            "parameters": int(self.meta["parameters"]),
            "checkpoint_sha256": sha,
            "temperature": self.temperature,
            "bend": self.bend,
        }


def open_weights(path: str | os.PathLike, threads: int | None = None):
    """One weights file, .pt (torch) or .onnx (ONNX Runtime), as a logits function."""
    return TorchCheckpointModel(path, threads) if str(path).endswith(".pt") else OnnxModel(path, threads)
