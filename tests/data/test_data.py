"""Datasets: the demo's labelling rule, folders, manifests, image modes, errors."""
import re

import numpy as np
import pytest
from PIL import Image

from robustpath.data import load_dataset, stratified_split
from robustpath.errors import DataError


def test_demo_ihc_labels_follow_the_documented_rule():
    from skimage import data
    from skimage.color import rgb2hed

    dataset = load_dataset("demo-ihc")
    assert len(dataset) >= 300 and dataset.native_size == (40, 40)
    assert dataset.classes == ("background", "dab-negative", "dab-positive")
    hed = rgb2hed(data.immunohistochemistry())
    image = data.immunohistochemistry()
    for index in range(0, len(dataset), 37):
        y, x = map(int, re.fullmatch(r"demo-ihc/y(\d+)x(\d+)", dataset.sample_ids[index]).groups())
        patch = hed[y : y + 40, x : x + 40]
        dab = patch[..., 2] > 0.10
        tissue = (patch[..., 0] > 0.02) | dab
        expected = "background" if tissue.mean() < 0.25 else ("dab-positive" if dab.mean() >= 0.20 else "dab-negative")
        assert dataset.classes[dataset.labels[index]] == expected
        assert np.array_equal(dataset.read_image(index), image[y : y + 40, x : x + 40])
    counts = dataset.describe()
    assert all(n >= 10 for split in counts.values() for n in split.values())


def test_demo_split_is_fixed_and_stratified():
    a, b = load_dataset("demo-ihc"), load_dataset("demo-ihc")
    assert np.array_equal(a.splits, b.splits) and a.content_digest() == b.content_digest()
    for label in range(len(a.classes)):
        members = a.labels == label
        assert (a.splits[members] == "test").mean() == pytest.approx(0.3, abs=0.02)


def test_stratified_split_properties():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.integers(0, 4), min_size=2, max_size=80), st.floats(0.05, 0.95), st.integers(0, 2**31))
    def check(labels, fraction, seed):
        labels = np.array(labels)
        splits = stratified_split(labels, fraction, seed)
        assert np.array_equal(splits, stratified_split(labels, fraction, seed))
        for label in np.unique(labels):
            members = splits[labels == label]
            if len(members) >= 2:
                assert {"train", "test"} <= set(members)
                assert (members == "test").sum() == min(max(round(len(members) * fraction), 1), len(members) - 1)
            else:
                assert set(members) == {"train"}

    check()


def _write(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path)


def _rgb(seed, size=(12, 12)):
    return np.random.default_rng(seed).integers(0, 256, size=(*size, 3), dtype=np.uint8)


def test_image_folder_with_and_without_split(tmp_path):
    for k in range(6):
        _write(tmp_path / "flat" / ("tumour" if k % 2 else "normal") / f"{k}.png", _rgb(k))
    (tmp_path / "flat" / "normal" / "notes.txt").write_text("ignored")
    flat = load_dataset(str(tmp_path / "flat"))
    assert flat.classes == ("normal", "tumour") and len(flat) == 6
    assert set(flat.splits) == {"train", "test"}
    assert flat.sample_ids[0] == "normal/0.png"
    for split in ("train", "test"):
        for k, name in enumerate(("a", "b")):
            _write(tmp_path / "split" / split / name / f"{k}.jpg", _rgb(k + 10))
    fixed = load_dataset(str(tmp_path / "split"))
    assert list(fixed.splits) == ["train", "train", "test", "test"]


def test_manifest_with_relative_paths_and_split(tmp_path):
    for k in range(4):
        _write(tmp_path / "img" / f"{k}.png", _rgb(k))
    manifest = tmp_path / "data.csv"
    manifest.write_text(
        "path,label,split\nimg/0.png,a,train\nimg/1.png,b,train\nimg/2.png,a,test\nimg/3.png,b,test\n", encoding="utf-8"
    )
    dataset = load_dataset(str(manifest))
    assert dataset.classes == ("a", "b") and list(dataset.splits) == ["train", "train", "test", "test"]
    assert np.array_equal(dataset.read_image(3), _rgb(3))


@pytest.mark.parametrize(
    "content, message",
    [
        ("file,label\nimg/0.png,a\n", r"lacks column\(s\) \['path'\]"),
        ("path,label\n", "no rows"),
        ("path,label\nimg/0.png,a\nimg/0.png,a\nimg/1.png,b\nimg/2.png,b\n", "repeats line 2"),
        ("path,label\nimg/0.png,a\nimg/9.png,a\nimg/1.png,b\nimg/2.png,b\n", "1 listed file.*img/9.png"),
        ("path,label\nimg/0.png,a\nimg/1.png,b\nimg/2.png,b\n", "class 'a' has 1 image"),
        ("path,label,split\nimg/0.png,a,train\nimg/1.png,a,valid\nimg/2.png,b,test\nimg/3.png,b,test\n", "'valid' is not train or test"),
    ],
)
def test_manifest_errors_name_the_problem(tmp_path, content, message):
    for k in range(4):
        _write(tmp_path / "img" / f"{k}.png", _rgb(k))
    manifest = tmp_path / "m.csv"
    manifest.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        load_dataset(str(manifest))


def test_manifest_bad_encoding(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_bytes("path,label\ncaf\xe9.png,a\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        load_dataset(str(manifest))


def test_folder_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_dataset(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no images"):
        load_dataset(str(tmp_path / "empty"))
    _write(tmp_path / "one" / "a" / "0.png", _rgb(0))
    _write(tmp_path / "one" / "b" / "0.png", _rgb(1))
    _write(tmp_path / "one" / "b" / "1.png", _rgb(2))
    with pytest.raises(DataError, match="class 'a' has 1 image"):
        load_dataset(str(tmp_path / "one"))


def test_image_modes_become_rgb(tmp_path):
    gray = np.arange(144, dtype=np.uint8).reshape(12, 12)
    rgba = np.dstack([_rgb(0), np.full((12, 12), 128, np.uint8)])
    sixteen = (np.arange(144, dtype=np.uint16).reshape(12, 12) * 400).astype(np.uint16)
    palette = Image.fromarray(_rgb(1)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    root = tmp_path / "modes"
    _write(root / "a" / "gray.png", gray)
    _write(root / "a" / "rgba.png", rgba)
    _write(root / "b" / "sixteen.png", sixteen)
    (root / "b").mkdir(exist_ok=True)
    palette.save(root / "b" / "palette.png")
    Image.fromarray(_rgb(2)).convert("CMYK").save(root / "b" / "cmyk.tif")
    dataset = load_dataset(str(root))
    images = {sid.split("/")[-1]: dataset.read_image(i) for i, sid in enumerate(dataset.sample_ids)}
    assert all(img.shape == (12, 12, 3) and img.dtype == np.uint8 for img in images.values())
    assert np.array_equal(images["gray.png"], np.repeat(gray[..., None], 3, axis=2))
    alpha = 128 / 255
    expected_rgba = np.rint(_rgb(0) * alpha + 255 * (1 - alpha))
    assert np.abs(images["rgba.png"].astype(int) - expected_rgba).max() <= 1
    expected_16 = np.rint(sixteen / 65535 * 255).astype(np.uint8)
    assert np.array_equal(images["sixteen.png"][..., 0], expected_16)
    assert np.array_equal(images["palette.png"], np.asarray(palette.convert("RGB")))
    assert np.abs(images["cmyk.tif"].astype(int) - _rgb(2).astype(int)).max() <= 2


def test_mixed_sizes_resized_to_most_common(tmp_path):
    for k in range(3):
        _write(tmp_path / "a" / f"{k}.png", _rgb(k, (20, 20)))
        _write(tmp_path / "b" / f"{k}.png", _rgb(k, (20, 20) if k else (33, 17)))
    dataset = load_dataset(str(tmp_path))
    assert dataset.native_size == (20, 20)
    assert all(dataset.read_image(i).shape == (20, 20, 3) for i in range(len(dataset)))


def test_content_digest_changes_with_one_image(tmp_path):
    for k in range(4):
        _write(tmp_path / ("a" if k < 2 else "b") / f"{k}.png", _rgb(k))
    before = load_dataset(str(tmp_path)).content_digest()
    _write(tmp_path / "b" / "3.png", _rgb(99))
    assert load_dataset(str(tmp_path)).content_digest() != before


def _bad_image_folder(root):
    for k in range(3):
        _write(root / "a" / f"{k}.png", _rgb(k))
        _write(root / "b" / f"{k}.png", _rgb(k + 5))
    (root / "a" / "empty.png").write_bytes(b"")
    good = (root / "a" / "0.png").read_bytes()
    (root / "b" / "truncated.png").write_bytes(good[: len(good) // 2])
    (root / "b" / "text.png").write_text("not an image")
    return root


def test_bad_images_are_skipped_and_listed(tmp_path):
    dataset = load_dataset(str(_bad_image_folder(tmp_path)))
    assert len(dataset) == 6
    skipped = {path.split("/")[-1]: reason for path, reason in dataset.skipped}
    assert set(skipped) == {"empty.png", "truncated.png", "text.png"}
    assert "0 bytes" in skipped["empty.png"] and "cannot be decoded" in skipped["text.png"]


def test_bad_images_fail_on_request(tmp_path):
    with pytest.raises(DataError, match=r"empty\.png.*0 bytes.*--on-bad-image skip"):
        load_dataset(str(_bad_image_folder(tmp_path)), on_bad_image="fail")


def test_class_emptied_by_skipping_is_reported(tmp_path):
    _write(tmp_path / "a" / "0.png", _rgb(0))
    _write(tmp_path / "a" / "1.png", _rgb(1))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "0.png").write_bytes(b"")
    (tmp_path / "b" / "1.png").write_text("junk")
    with pytest.raises(DataError, match="one class"):
        load_dataset(str(tmp_path))


def test_manifest_parsing_properties(tmp_path_factory):
    """Any manifest of existing files, labels and optional splits loads as written."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    root = tmp_path_factory.mktemp("pool")
    for k in range(8):
        _write(root / "img" / f"{k}.png", _rgb(k, (6, 6)))
    label_text = st.text(alphabet=st.characters(codec="utf-8", exclude_characters=',"\r\n'), min_size=1, max_size=8)

    @settings(max_examples=40, deadline=None)
    @given(st.lists(st.tuples(st.integers(0, 7), label_text), min_size=4, max_size=8, unique_by=lambda r: r[0]),
           st.booleans())
    def check(rows, with_split):
        labels = [label.strip() or "x" for _, label in rows]
        splits = ["train" if i % 2 == 0 else "test" for i in range(len(rows))]
        lines = ["path,label" + (",split" if with_split else "")]
        for (k, _), label, split in zip(rows, labels, splits):
            lines.append(f"img/{k}.png,{label}" + (f",{split}" if with_split else ""))
        manifest = root / "m.csv"
        manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
        try:
            dataset = load_dataset(str(manifest))
        except DataError as exc:  # too few images per class / classes / split members: said in one line
            assert "\n" not in str(exc) and ("class" in str(exc) or "split" in str(exc) or "train" in str(exc))
            return
        assert [dataset.classes[i] for i in dataset.labels] == labels
        assert [sid for sid in dataset.sample_ids] == [f"img/{k}.png" for k, _ in rows]
        if with_split:
            assert list(dataset.splits) == splits

    check()


def test_split_folders_beside_others_are_refused(tmp_path):
    for split in ("train", "test", "val"):
        for name in ("a", "b"):
            _write(tmp_path / split / name / "0.png", _rgb(0))
    with pytest.raises(DataError, match=r"beside \['val'\]"):
        load_dataset(str(tmp_path))


def test_hidden_folders_inside_classes_are_ignored(tmp_path):
    for name in ("a", "b"):
        for k in range(2):
            _write(tmp_path / name / f"{k}.png", _rgb(k))
    _write(tmp_path / "a" / ".ipynb_checkpoints" / "0-checkpoint.png", _rgb(9))
    assert len(load_dataset(str(tmp_path))) == 4


def test_demo_images_are_copies_and_split_ignores_the_seed():
    a = load_dataset("demo-ihc", seed=0)
    b = load_dataset("demo-ihc", seed=7)
    assert np.array_equal(a.splits, b.splits)
    image = a.read_image(0)
    image[:] = 0
    assert a.read_image(0).any()


def test_manifest_header_is_case_insensitive_and_empty_file_is_named(tmp_path):
    for k in range(4):
        _write(tmp_path / "img" / f"{k}.png", _rgb(k))
    manifest = tmp_path / "m.csv"
    manifest.write_text("Path,Label\nimg/0.png,a\nimg/1.png,a\nimg/2.png,b\nimg/3.png,b\n", encoding="utf-8")
    assert len(load_dataset(str(manifest))) == 4
    manifest.write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="is empty"):
        load_dataset(str(manifest))
