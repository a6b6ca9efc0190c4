"""All three data layouts on tiny synthetic trees and CSVs, and the errors for wrong ones."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import write_csv, write_tree

from fer_core.data import load_fer2013, resolve_data_path
from fer_core.errors import DataLayoutError
from fer_core.labels import EMOTIONS


def test_three_folder_layout(tmp_path):
    write_tree(tmp_path, {"train": ["Training"], "val": ["PublicTest"], "test": ["PrivateTest"]}, per_class=2)
    data = load_fer2013(tmp_path)
    assert data.layout == "folders"
    for split in ("train", "val", "test"):
        s = data[split]
        assert s.images.shape == (14, 48, 48) and s.images.dtype == np.uint8
        assert s.class_counts() == [2] * 7
    # labels follow the class folders
    i = data["val"].ids.index("val/happy/PublicTest_happy_1.png")
    assert EMOTIONS[data["val"].labels[i]] == "happy"


def test_pixels_are_decoded_exactly(tmp_path):
    write_tree(tmp_path, {"train": ["Training"], "val": ["PublicTest"], "test": ["PrivateTest"]}, per_class=1)
    data = load_fer2013(tmp_path)
    from PIL import Image

    f = tmp_path / data["test"].ids[3]
    assert np.array_equal(data["test"].images[3], np.asarray(Image.open(f)))


def test_two_folder_layout_split_by_file_name(tmp_path):
    write_tree(tmp_path, {"train": ["Training"], "test": ["PublicTest", "PrivateTest"]}, per_class=2)
    data = load_fer2013(tmp_path)
    assert data.layout == "two-folder"
    assert all("PublicTest_" in i for i in data["val"].ids)
    assert all("PrivateTest_" in i for i in data["test"].ids)
    assert len(data["val"]) == len(data["test"]) == 14
    assert "PublicTest" in data.notes[0]


def test_two_folder_layout_without_prefixes_carves_a_stratified_val(tmp_path):
    write_tree(tmp_path, {"train": ["img"], "test": ["img"]}, per_class=10)
    data = load_fer2013(tmp_path)
    assert data["val"].class_counts() == [1] * 7  # 10 % of each class
    assert data["train"].class_counts() == [9] * 7
    assert len(data["test"]) == 70
    assert not set(data["val"].ids) & set(data["train"].ids)
    assert "stratified" in data.notes[0]
    # seeded: the same carve every time
    again = load_fer2013(tmp_path, cache=False)
    assert again["val"].ids == data["val"].ids


def test_csv_layout_maps_emotion_codes(tmp_path):
    f = write_csv(tmp_path / "fer2013.csv", rows_per_usage=7)
    for source in (f, tmp_path):  # the file, or the folder that holds it
        data = load_fer2013(source)
        assert data.layout == "csv"
        assert [len(data[s]) for s in ("train", "val", "test")] == [7, 7, 7]
        # CSV code i was written for row i; code 4 is sad, 6 is neutral
        assert EMOTIONS[data["train"].labels[4]] == "sad"
        assert EMOTIONS[data["train"].labels[6]] == "neutral"


def test_cache_is_used_and_invalidated(tmp_path, monkeypatch):
    root = write_tree(
        tmp_path / "d", {"train": ["Training"], "val": ["PublicTest"], "test": ["PrivateTest"]}, per_class=1
    )
    first = load_fer2013(root)
    caches = list((tmp_path.parent).glob("**/fer2013-*.npz"))
    assert caches, "no cache file was written"
    second = load_fer2013(root)
    assert second["train"].ids == first["train"].ids
    assert np.array_equal(second["train"].images, first["train"].images)
    # changing an image changes the key
    from PIL import Image

    target = root / first["train"].ids[0]
    Image.fromarray(np.full((48, 48), 7, np.uint8)).save(target)
    third = load_fer2013(root)
    assert third["train"].images[0].max() == 7


@pytest.mark.parametrize(
    "build, fragment",
    [
        (lambda p: p / "missing", "no FER2013 data"),
        (lambda p: (p / "x.txt").write_text("hi") and p / "x.txt", "not a .csv"),
        (lambda p: (p / "other").mkdir() or p, "not a FER2013 layout"),
    ],
)
def test_wrong_layouts_say_what_was_expected(tmp_path, build, fragment):
    with pytest.raises(DataLayoutError) as err:
        load_fer2013(build(tmp_path))
    assert fragment in str(err.value)


def test_wrong_class_folders_are_named(tmp_path):
    write_tree(tmp_path, {"train": ["Training"], "val": ["PublicTest"], "test": ["PrivateTest"]}, per_class=1)
    (tmp_path / "train" / "disgust").rename(tmp_path / "train" / "contempt")
    with pytest.raises(DataLayoutError) as err:
        load_fer2013(tmp_path, cache=False)
    assert "contempt" in str(err.value) and "disgust" in str(err.value)


def test_bad_csv_rows_point_at_the_line(tmp_path):
    f = tmp_path / "fer2013.csv"
    f.write_text("emotion,pixels,Usage\n3,1 2 3,Training\n")
    with pytest.raises(DataLayoutError) as err:
        load_fer2013(f)
    assert "line 2" in str(err.value)


def test_data_path_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv("FER_DATA", raising=False)
    assert str(resolve_data_path()) == "data/fer2013"
    monkeypatch.setenv("FER_DATA", str(tmp_path))
    assert resolve_data_path() == tmp_path
    assert str(resolve_data_path("elsewhere")) == "elsewhere"
