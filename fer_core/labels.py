"""The one label list of the project.

Every checkpoint, ONNX file and results file carries a copy of it; readers take the labels
from the file they load, and check them against this list, never from a second list.
"""

from __future__ import annotations

# torchvision ImageFolder order (alphabetical), the order of FER2013's class folders.
EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")

# The original fer2013.csv numbers its classes differently: 0 angry, 1 disgust, 2 fear,
# 3 happy, 4 sad, 5 surprise, 6 neutral. Maps a CSV code to its index in EMOTIONS.
FER_CSV_CODE_TO_INDEX: dict[int, int] = {
    code: EMOTIONS.index(name)
    for code, name in enumerate(("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"))
}

NUM_CLASSES = len(EMOTIONS)
