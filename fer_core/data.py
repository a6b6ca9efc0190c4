"""FER2013 loading: three on-disk layouts -> compact in-memory uint8 arrays, decoded once.

Layouts read (`load_fer2013(path)` tells them apart):

1. image folders `train/ val/ test/`, one sub-folder per class (the layout of ../shared/fer2013);
2. the two-folder release `train/ test/`: `test/` is split into PublicTest (val) and
   PrivateTest (test) by file name when names carry those prefixes, otherwise a stratified,
   seeded 10 % of `train/` becomes val and the whole `test/` is test (and the source says so);
3. the original `fer2013.csv` (`emotion,pixels,Usage`), given as the file or its folder.

Decoded arrays are cached as one .npz per data set (outside the data folder, in
$FER_CACHE_DIR or ~/.cache/fer_core), keyed by every file's name, size and mtime, so an edit
to the data invalidates the cache and an epoch never re-decodes JPEGs.

Print a data set's split sizes, class counts and train pixel statistics:
    python -m fer_core data-stats [--data PATH]
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .atomic import write_atomic
from .errors import DataLayoutError
from .imageio import IMAGE_SUFFIXES
from .labels import EMOTIONS, FER_CSV_CODE_TO_INDEX
from .preprocess import FACE_SIZE, resize_face

DEFAULT_DATA = Path("data/fer2013")
SPLITS = ("train", "val", "test")
CARVE_FRACTION = 0.1  # share of train/ that becomes val when a release has no PublicTest split
CARVE_SEED = 0
CACHE_VERSION = 1


@dataclass
class Split:
    """One split as arrays: faces (N, 48, 48) uint8, labels (N,) int64 into EMOTIONS, ids."""

    images: np.ndarray
    labels: np.ndarray
    ids: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> Split:
        return Split(self.images[index], self.labels[index], [self.ids[i] for i in index])

    def class_counts(self) -> list[int]:
        return np.bincount(self.labels, minlength=len(EMOTIONS)).tolist()


@dataclass
class FERData:
    """The three splits of a data set, and where they came from."""

    path: str
    layout: str  # "folders", "two-folder", "csv"
    splits: dict[str, Split]
    notes: list[str] = field(default_factory=list)

    def __getitem__(self, split: str) -> Split:
        if split not in self.splits:
            raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        return self.splits[split]

    def describe(self) -> dict:
        """Plain-type description, stored in checkpoints and results files."""
        return {
            "path": self.path,
            "layout": self.layout,
            "notes": list(self.notes),
            "sizes": {name: len(s) for name, s in self.splits.items()},
        }


def resolve_data_path(path: str | os.PathLike | None = None) -> Path:
    """--data PATH, else $FER_DATA, else data/fer2013."""
    if path:
        return Path(path)
    env = os.environ.get("FER_DATA")
    return Path(env) if env else DEFAULT_DATA


def load_fer2013(path: str | os.PathLike | None = None, cache: bool = True) -> FERData:
    """Load a FER2013 copy in any supported layout (see module docstring)."""
    root = resolve_data_path(path)
    if not root.exists():
        raise DataLayoutError(
            f"no FER2013 data at {root}: pass --data PATH or set FER_DATA to a folder with "
            "train/ val/ test/ (or train/ test/) class folders, or to fer2013.csv"
        )
    csv_file = _find_csv(root)
    if csv_file is not None:
        return _cached(csv_file, "csv", [csv_file], cache, lambda: _load_csv(csv_file))
    sub = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    if "train" in sub and "test" in sub:
        files = {name: _class_files(sub[name]) for name in ("train", "val", "test") if name in sub}
        all_files = [f for per in files.values() for f, _ in per]
        layout = "folders" if "val" in files else "two-folder"
        return _cached(root, layout, all_files, cache, lambda: _load_folders(root, files))
    found = ", ".join(sorted(p.name for p in root.iterdir())[:12]) or "nothing"
    raise DataLayoutError(
        f"{root} is not a FER2013 layout. Expected either class folders train/ val/ test/ "
        f"(or train/ test/), each holding {', '.join(EMOTIONS)}; or fer2013.csv. Found: {found}"
    )


def _find_csv(root: Path) -> Path | None:
    if root.is_file():
        if root.suffix.lower() != ".csv":
            raise DataLayoutError(f"{root} is a file but not a .csv; expected fer2013.csv")
        return root
    candidate = root / "fer2013.csv"
    return candidate if candidate.is_file() and not (root / "train").is_dir() else None


def _class_files(split_dir: Path) -> list[tuple[Path, int]]:
    """(file, label index) for every image of a split folder; the class folders must be ours."""
    dirs = {p.name.lower(): p for p in split_dir.iterdir() if p.is_dir()}
    if set(dirs) != set(EMOTIONS):
        raise DataLayoutError(
            f"{split_dir} must hold exactly the class folders {', '.join(EMOTIONS)}; "
            f"found: {', '.join(sorted(dirs)) or 'no folders'}"
        )
    out = []
    for label, name in enumerate(EMOTIONS):
        for f in sorted(dirs[name].iterdir()):
            if f.suffix.lower() in IMAGE_SUFFIXES:
                out.append((f, label))
    if not out:
        raise DataLayoutError(f"{split_dir} has class folders but no images in them")
    return out


def _decode(file: Path) -> np.ndarray:
    try:
        with Image.open(file) as im:
            gray = np.asarray(im.convert("L"))
    except Exception as exc:
        raise DataLayoutError(f"cannot decode {file}: {exc}; remove or replace the file") from exc
    return gray if gray.shape == (FACE_SIZE, FACE_SIZE) else resize_face(gray)


def _split_from_files(files: Sequence[tuple[Path, int]], root: Path) -> Split:
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        images = list(pool.map(_decode, [f for f, _ in files], chunksize=256))
    return Split(
        images=np.stack(images).astype(np.uint8),
        labels=np.array([label for _, label in files], dtype=np.int64),
        ids=[f.relative_to(root).as_posix() for f, _ in files],
    )


def _load_folders(root: Path, files: dict[str, list[tuple[Path, int]]]) -> FERData:
    notes: list[str] = []
    if "val" in files:
        splits = {name: _split_from_files(files[name], root) for name in SPLITS}
        return FERData(str(root), "folders", splits, notes)
    train = _split_from_files(files["train"], root)
    test_all = _split_from_files(files["test"], root)
    names = [Path(i).name for i in test_all.ids]
    public = np.array([n.startswith("PublicTest_") for n in names])
    private = np.array([n.startswith("PrivateTest_") for n in names])
    if public.any() and private.any() and (public | private).all():
        notes.append("test/ split by file name: PublicTest_* -> val, PrivateTest_* -> test")
        val, test = test_all.subset(np.flatnonzero(public)), test_all.subset(np.flatnonzero(private))
    else:
        train, val = _carve_val(train)
        test = test_all
        notes.append(
            f"no PublicTest split found: val is a stratified {CARVE_FRACTION:.0%} of train/ "
            f"(seed {CARVE_SEED}); test is all of test/"
        )
    return FERData(str(root), "two-folder", {"train": train, "val": val, "test": test}, notes)


def _carve_val(train: Split) -> tuple[Split, Split]:
    rng = np.random.default_rng(CARVE_SEED)
    val_idx = []
    for label in range(len(EMOTIONS)):
        idx = np.flatnonzero(train.labels == label)
        n = int(round(len(idx) * CARVE_FRACTION))
        val_idx.extend(rng.choice(idx, size=n, replace=False).tolist())
    val_mask = np.zeros(len(train), dtype=bool)
    val_mask[val_idx] = True
    return train.subset(np.flatnonzero(~val_mask)), train.subset(np.flatnonzero(val_mask))


CSV_USAGE = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}


def _load_csv(file: Path) -> FERData:
    rows: dict[str, tuple[list, list, list]] = {s: ([], [], []) for s in SPLITS}
    with open(file, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"emotion", "pixels", "Usage"} - set(reader.fieldnames or [])
        if missing:
            raise DataLayoutError(
                f"{file} lacks the column(s) {', '.join(sorted(missing))}; expected the original "
                "fer2013.csv with columns emotion,pixels,Usage"
            )
        for line_no, row in enumerate(reader, start=2):
            split = CSV_USAGE.get(row["Usage"].strip())
            if split is None:
                raise DataLayoutError(
                    f"{file} line {line_no}: Usage {row['Usage']!r} is not one of {', '.join(CSV_USAGE)}"
                )
            try:
                label = FER_CSV_CODE_TO_INDEX[int(row["emotion"])]
                pixels = np.array(row["pixels"].split(), dtype=np.uint8)
                face = pixels.reshape(FACE_SIZE, FACE_SIZE)
            except (ValueError, KeyError) as exc:
                raise DataLayoutError(
                    f"{file} line {line_no}: expected an emotion code 0-6 and "
                    f"{FACE_SIZE * FACE_SIZE} pixel values 0-255 ({exc})"
                ) from exc
            images, labels, ids = rows[split]
            images.append(face)
            labels.append(label)
            ids.append(f"{file.name}:{line_no}")
    splits = {}
    for name, (images, labels, ids) in rows.items():
        if not images:
            raise DataLayoutError(f"{file} has no rows with Usage for the {name} split")
        splits[name] = Split(np.stack(images), np.array(labels, dtype=np.int64), ids)
    return FERData(str(file), "csv", splits, [])


def _cache_dir() -> Path:
    return Path(os.environ.get("FER_CACHE_DIR") or Path.home() / ".cache" / "fer_core")


def _cached(root: Path, layout: str, files: Sequence[Path], use_cache: bool, load) -> FERData:
    if not use_cache:
        return load()
    h = hashlib.sha256(f"v{CACHE_VERSION}|{root.resolve()}|{layout}".encode())
    for f in files:
        st = f.stat()
        h.update(f"{f}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    cache_file = _cache_dir() / f"fer2013-{h.hexdigest()[:20]}.npz"
    if cache_file.is_file():
        try:
            return _read_cache(cache_file)
        except Exception:
            pass  # a damaged cache is rebuilt below
    data = load()
    _write_cache(cache_file, data)
    return data


def _write_cache(file: Path, data: FERData) -> None:
    arrays = {"meta": np.array(repr((data.path, data.layout, data.notes)))}
    for name, s in data.splits.items():
        arrays[f"{name}_images"] = s.images
        arrays[f"{name}_labels"] = s.labels
        arrays[f"{name}_ids"] = np.array(s.ids)
    write_atomic(file, lambda fh: np.savez(fh, **arrays))


def _read_cache(file: Path) -> FERData:
    import ast

    with np.load(file, allow_pickle=False) as z:
        path, layout, notes = ast.literal_eval(str(z["meta"]))
        splits = {name: Split(z[f"{name}_images"], z[f"{name}_labels"], z[f"{name}_ids"].tolist()) for name in SPLITS}
    return FERData(path, layout, splits, list(notes))


def pixel_stats(split: Split) -> tuple[float, float]:
    x = split.images.astype(np.float64) / 255.0
    return float(x.mean()), float(x.std())


def stats_lines(data: FERData) -> list[str]:
    """Each split's size and class counts, then the train split's pixel mean and std, one line each."""
    lines = [f"{name:5s} {len(data[name]):6d} images, per class {data[name].class_counts()}" for name in SPLITS]
    mean, std = pixel_stats(data["train"])
    return lines + [f"train pixel mean {mean:.4f} std {std:.4f}"]
