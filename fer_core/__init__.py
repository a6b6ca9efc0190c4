"""fer_core: facial-expression recognition on FER2013 with EfficientNetV2-S, ResNet18 and VGG16.

The serving API (`Predictor`, `FacePrediction`) runs on ONNX Runtime and never imports torch;
training, evaluation of torch checkpoints and export live in submodules that do.
"""

from __future__ import annotations

from .errors import DataLayoutError, InvalidImageError, WeightsError
from .labels import EMOTIONS
from .registry import ModelSpec, get_spec, list_models

__version__ = "0.1.0"

__all__ = [
    "EMOTIONS",
    "DataLayoutError",
    "FacePrediction",
    "InvalidImageError",
    "ModelSpec",
    "Predictor",
    "WeightsError",
    "get_spec",
    "list_models",
]


def __getattr__(name: str):
    # The predictor pulls in ONNX Runtime and OpenCV; import them only when asked for.
    if name in ("Predictor", "FacePrediction"):
        from . import predict

        return getattr(predict, name)
    raise AttributeError(f"module 'fer_core' has no attribute {name!r}")
