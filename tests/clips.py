"""Short clips the video tests build themselves (fer_core.bench_video's generator: the sample
photo sliding across the frame, encoded in memory with PyAV; nothing downloaded, nothing from
FER2013)."""

from fer_core.bench_video import encode, moving_face_clip, moving_face_frames

__all__ = ["encode", "moving_face_clip", "moving_face_frames"]
