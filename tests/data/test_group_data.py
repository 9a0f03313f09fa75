"""Groups and pairs in the data: manifests, group=<name> folders, the three-laboratory demo."""
import numpy as np
import pytest
from PIL import Image

from robustpath.data import load_dataset
from robustpath.errors import DataError


def _images(folder, count):
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(count):
        Image.fromarray(np.full((8, 8, 3), 20 * k, np.uint8)).save(folder / f"{k}.png")


def _manifest(tmp_path, header, rows):
    _images(tmp_path / "img", 8)
    manifest = tmp_path / "m.csv"
    manifest.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return str(manifest)


GOOD = ["img/0.png,a,A,p0", "img/1.png,a,B,p0", "img/2.png,b,A,p1", "img/3.png,b,B,p1",
        "img/4.png,a,A,p2", "img/5.png,a,B,p2", "img/6.png,b,A,p3", "img/7.png,b,B,p3"]


def test_manifest_groups_and_pairs_split_by_pair(tmp_path):
    dataset = load_dataset(_manifest(tmp_path, "path,label,group,pair_id", GOOD), test_fraction=0.5, seed=3)
    assert dataset.groups.tolist() == ["A", "B"] * 4
    assert dataset.pair_ids.tolist() == ["p0", "p0", "p1", "p1", "p2", "p2", "p3", "p3"]
    for pair in ("p0", "p1", "p2", "p3"):  # both images of a pair in one split
        assert len(set(dataset.splits[dataset.pair_ids == pair])) == 1
    plain = load_dataset(_manifest(tmp_path, "path,label", [row.rsplit(",", 2)[0] for row in GOOD]))
    assert plain.groups is None and plain.content_digest() != dataset.content_digest()
    from robustpath.output.exports import SampleTable

    samples = SampleTable.from_dataset(dataset).frame()  # samples.csv of --save-embeddings
    assert samples.group.tolist() == ["A", "B"] * 4 and samples.pair_id.tolist()[:2] == ["p0", "p0"]
    assert "group" not in SampleTable.from_dataset(plain).frame()


@pytest.mark.parametrize("header, rows, message", [
    ("path,label,pair_id", ["img/0.png,a,p0", "img/1.png,b,p1"], "pair_id column but no group column"),
    ("path,label,group,pair_id", [*GOOD[:6], "img/6.png,b,A,p3", "img/7.png,b,A,p3"], "pair_id 'p3' appears twice in group 'A'"),
    ("path,label,group,pair_id", [*GOOD[:7], "img/7.png,a,B,p3"], "pair_id 'p3' has classes 'b' and 'a'"),
    ("path,label,group", [row.rsplit(",", 1)[0].replace(",B", ",A") for row in GOOD], "all images are in group 'A'"),
    ("path,label,group", ["img/0.png,a,A", "img/1.png,b,", "img/2.png,a,B", "img/3.png,b,B"], "line 3: empty group"),
    ("path,label,group", ["img/0.png,a,A->B", "img/1.png,b,A", "img/2.png,a,B", "img/3.png,b,B"], "contains '->'"),
    ("path,label,split,group,pair_id", ["img/0.png,a,train,A,p0", "img/1.png,a,test,B,p0", "img/2.png,b,train,A,p1",
                                        "img/3.png,b,test,B,p1", "img/4.png,a,test,A,p2", "img/5.png,b,train,B,p3"],
     "pair_id 'p0' has images in both train and test"),
])
def test_manifest_group_errors_name_the_problem(tmp_path, header, rows, message):
    with pytest.raises(DataError, match=message):
        load_dataset(_manifest(tmp_path, header, rows))


def test_group_folder_layout(tmp_path):
    for group in ("scanner-1", "scanner-2"):
        for label in ("tumour", "stroma"):
            _images(tmp_path / f"group={group}" / label, 3)
    dataset = load_dataset(str(tmp_path), test_fraction=0.34, seed=0)
    assert sorted(set(dataset.groups.tolist())) == ["scanner-1", "scanner-2"]
    assert set(dataset.pair_ids.tolist()) == {f"{label}/{k}" for label in ("tumour", "stroma") for k in range(3)}
    for pair in set(dataset.pair_ids.tolist()):
        assert len(set(dataset.splits[dataset.pair_ids == pair])) == 1
    _images(tmp_path / "other", 2)
    with pytest.raises(DataError, match="mixes group=<name> folders"):
        load_dataset(str(tmp_path))


def test_stain_labs_render_fixed_transforms(tmp_path):
    from skimage.color import rgb_from_hed

    from robustpath.data.stain_labs import LABS, render_lab, write_stain_lab_dataset

    image = np.random.default_rng(0).integers(30, 230, (2, 6, 6, 3), dtype=np.uint8)
    assert np.array_equal(render_lab(image, "lab-a"), image)
    # lab-b scales the stain concentrations: Beer-Lambert in numpy with scikit-image's stain vectors
    density = -np.log(np.maximum(image / 255.0, 1e-6))
    concentrations = density @ np.linalg.inv(rgb_from_hed) * np.array(LABS["lab-b"]["factors"])
    expected = np.clip(np.exp(-concentrations @ rgb_from_hed), 0, 1) * 255
    assert np.abs(render_lab(image, "lab-b").astype(float) - expected).max() <= 0.51
    assert np.abs(render_lab(image, "lab-c").astype(float) - image).max() > 5  # lab-c changes the colours
    manifest = write_stain_lab_dataset(tmp_path, per_class=2)
    dataset = load_dataset(str(manifest))
    assert len(dataset) == 3 * 3 * 2 * 2 and sorted(set(dataset.groups.tolist())) == list(LABS)
    for pair in set(dataset.pair_ids.tolist()):
        members = dataset.pair_ids == pair
        assert members.sum() == 3 and len(set(dataset.splits[members])) == 1 and len(set(dataset.labels[members])) == 1
