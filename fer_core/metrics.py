"""Classification metrics, computed with scikit-learn (no hand-rolled counting)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    multilabel_confusion_matrix,
    precision_recall_fscore_support,
)

from .labels import EMOTIONS


def classification_metrics(
    y_true: Sequence[int] | np.ndarray, probs: np.ndarray, labels: Sequence[str] = EMOTIONS
) -> dict[str, Any]:
    """Accuracy, macro/weighted P/R/F1, per-class P/R/F1/specificity/support, confusion matrix.

    The confusion matrix has rows = true class, columns = predicted class, in `labels` order.
    Specificity is TN / (TN + FP) per class, from scikit-learn's one-vs-rest matrices.
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(probs).argmax(axis=1)
    idx = list(range(len(labels)))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=idx, zero_division=0)
    ovr = multilabel_confusion_matrix(y_true, y_pred, labels=idx)  # [[tn, fp], [fn, tp]] per class
    tn, fp = ovr[:, 0, 0], ovr[:, 0, 1]
    spec = np.divide(tn, tn + fp, out=np.zeros(len(idx)), where=(tn + fp) > 0)
    out: dict[str, Any] = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "per_class": {
            name: {
                "precision": float(p[i]),
                "recall": float(r[i]),
                "f1": float(f[i]),
                "specificity": float(spec[i]),
                "support": int(s[i]),
            }
            for i, name in enumerate(labels)
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=idx).tolist(),
    }
    for avg in ("macro", "weighted"):
        ap, ar, af, _ = precision_recall_fscore_support(y_true, y_pred, labels=idx, average=avg, zero_division=0)
        out[avg] = {"precision": float(ap), "recall": float(ar), "f1": float(af)}
    return out
