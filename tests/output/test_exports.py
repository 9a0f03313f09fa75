"""Per-sample exports end to end: predictions.csv, misclassified.csv and --save-embeddings.

Every reported number checked here is recomputed from the exported files with
numpy / scikit-learn / pandas (and the README's own example), not with robustpath.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from engine_fixtures import cli, torch_threads
from model_fixtures import tiny_open_clip  # noqa: F401  (fixture)
from safetensors.numpy import load_file
from sklearn.metrics import accuracy_score, f1_score

import robustpath
from robustpath.errors import DataError, UsageError
from robustpath.variants import CLEAN_VARIANT

README = Path(__file__).resolve().parents[2] / "README.md"
SWEEP = ["-c", "gaussian_blur", "-c", "hue", "-s", "2", "--device", "cpu", "-b", "16", "--quiet"]
TASKS = ["-t", "linear_probe", "-t", "retrieval", "-t", "embedding_drift"]
BLUR = ("gaussian_blur", 2, "pre")


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    """One thread everywhere (same numerics in every run of this module)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def run(tiny_customvit_dir, tmp_path_factory):
    """One uninterrupted run with float32 embeddings saved."""
    base = tmp_path_factory.mktemp("exports")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ROBUSTPATH_CACHE_DIR", str(base / "cache"))
        with torch_threads(1):
            result = cli("eval", tiny_customvit_dir, "--out", base / "out", *SWEEP, *TASKS, "--save-embeddings")
    assert result.exit_code == 0, result.output
    return base / "out"


def variant_rows(frame: pd.DataFrame, task: str, corruption: str, severity: int, stage: str) -> pd.DataFrame:
    return frame[(frame.task == task) & (frame.corruption == corruption) & (frame.severity == severity)
                 & (frame.stage == stage)]


def reported(out: Path, task: str, metric: str, corruption: str, severity: int, stage: str) -> float:
    results = pd.read_csv(out / "results.csv")
    rows = variant_rows(results[results.samples_per_class == 0], task, corruption, severity, stage)
    return float(rows[rows.metric == metric].value.item())


def test_saved_embeddings_load_back_in_sample_order(run, tiny_customvit_dir):
    from robustpath.data import load_dataset
    from robustpath.models.customvit import load_customvit

    dataset = load_dataset("demo-ihc", seed=0)
    samples = pd.read_csv(run / "embeddings" / "samples.csv", keep_default_na=False)
    assert list(samples.columns) == ["sample_id", "path", "label", "label_index", "split"]
    assert samples.sample_id.tolist() == list(dataset.sample_ids)
    assert samples.label.tolist() == [dataset.classes[k] for k in dataset.labels]
    assert samples.split.tolist() == dataset.splits.tolist()
    manifest = json.loads((run / "embeddings" / "manifest.json").read_text())
    assert manifest["dtype"] == "float32" and manifest["dim"] == 32 and manifest["text"] is None
    assert set(manifest["variants"]) == {"none/0/none", "gaussian_blur/2/pre", "gaussian_blur/2/post", "hue/2/pre"}

    # plain safetensors + numpy
    clean = load_file(run / "embeddings" / "clean.safetensors")
    assert clean["embeddings"].dtype == np.float32 and clean["embeddings"].shape == (400, 32)
    assert clean["sample_index"].tolist() == list(range(400))
    blurred = load_file(run / "embeddings" / "gaussian_blur_2_pre.safetensors")
    test_rows = np.flatnonzero(samples.split == "test")
    assert blurred["embeddings"].shape == (len(test_rows), 32) and blurred["sample_index"].tolist() == test_rows.tolist()
    assert not np.allclose(blurred["embeddings"], clean["embeddings"][test_rows], atol=1e-3)

    # the clean embeddings are what the network gives, in samples.csv order
    model = load_customvit(tiny_customvit_dir)
    mean = torch.tensor(model.config.mean).view(1, 3, 1, 1)
    std = torch.tensor(model.config.std).view(1, 3, 1, 1)
    images = np.stack([dataset.read_image(i) for i in range(len(dataset))]).astype(np.float32) / 255.0
    with torch.inference_mode():
        expected = model.forward_features((torch.from_numpy(images).permute(0, 3, 1, 2) - mean) / std).numpy()
    np.testing.assert_allclose(clean["embeddings"], expected, atol=1e-5)

    # the reader: tensors + the same samples in the same order
    saved = robustpath.load_embeddings(run)
    assert saved.dtype == "float32" and saved.text is None and saved.classes == list(dataset.classes)
    tensor, rows = saved["gaussian_blur/2/pre"]
    assert tensor.dtype == torch.float32 and torch.equal(tensor, torch.from_numpy(blurred["embeddings"]))
    assert rows.sample_id.tolist() == samples.sample_id[test_rows].tolist() and set(rows.split) == {"test"}
    tensor, rows = saved["clean"]
    assert tensor.shape == (400, 32) and rows.sample_id.tolist() == list(dataset.sample_ids)
    with pytest.raises(UsageError, match="no embeddings for variant 'hue/9/pre'"):
        saved["hue/9/pre"]


def test_float16_embeddings_are_half_the_size(run, tiny_customvit_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTPATH_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "half"
    result = cli("eval", tiny_customvit_dir, "--out", out, *SWEEP, "-t", "retrieval", "--save-embeddings",
                 "--embeddings-dtype", "float16")
    assert result.exit_code == 0, result.output
    half = load_file(out / "embeddings" / "hue_2_pre.safetensors")["embeddings"]
    full = load_file(run / "embeddings" / "hue_2_pre.safetensors")["embeddings"]
    assert half.dtype == np.float16
    np.testing.assert_allclose(half.astype(np.float32), full, rtol=2e-3, atol=2e-3)
    saved = robustpath.load_embeddings(out)
    assert saved.dtype == "float16" and saved["hue/2/pre"][0].dtype == torch.float16
    sizes = [(folder / "embeddings" / "clean.safetensors").stat().st_size for folder in (out, run)]
    assert sizes[0] < 0.6 * sizes[1]


def test_reported_accuracies_follow_from_predictions_csv(run):
    predictions = pd.read_csv(run / "predictions.csv")
    samples = pd.read_csv(run / "embeddings" / "samples.csv", keep_default_na=False)
    label_of = dict(zip(samples.sample_id, samples.label))
    for variant in [("none", 0, "none"), BLUR]:
        probe = variant_rows(predictions, "linear_probe", *variant)
        assert len(probe) == 120 and probe.sample_id.tolist() == samples.sample_id[samples.split == "test"].tolist()
        assert accuracy_score(probe.true_label, probe.predicted_label) == pytest.approx(
            reported(run, "linear_probe", "accuracy", *variant), abs=1e-12)
        assert f1_score(probe.true_label, probe.predicted_label, average="macro") == pytest.approx(
            reported(run, "linear_probe", "macro_f1", *variant), abs=1e-12)
        probabilities = probe[[f"p_{name}" for name in ("background", "dab-negative", "dab-positive")]].to_numpy()
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
        assert (np.array(["background", "dab-negative", "dab-positive"])[probabilities.argmax(axis=1)]
                == probe.predicted_label.to_numpy()).all()

        retrieval = variant_rows(predictions, "retrieval", *variant)
        neighbours = retrieval.neighbours.str.split(";")
        assert (neighbours.str.len() == 10).all()
        labels = neighbours.map(lambda ids: [label_of[i] for i in ids])
        assert labels.str.join(";").tolist() == retrieval.neighbour_labels.tolist()
        assert set(samples.split[samples.sample_id.isin(neighbours.explode())]) == {"train"}
        assert accuracy_score(retrieval.true_label, labels.str[0]) == pytest.approx(
            reported(run, "retrieval", "top1_accuracy", *variant), abs=1e-12)
        assert accuracy_score(retrieval.true_label, retrieval.predicted_label) == pytest.approx(
            reported(run, "retrieval", "majority5_accuracy", *variant), abs=1e-12)

        drift = variant_rows(predictions, "embedding_drift", *variant)
        assert drift.predicted_label.isna().all()
        assert drift.cosine_similarity.mean() == pytest.approx(
            reported(run, "embedding_drift", "cosine_similarity", *variant), abs=1e-7)


def readme_blocks() -> list[str]:
    """The python code blocks of the README's per-sample exports section."""
    text = README.read_text()
    section = text[text.index("## Per-sample exports"):]
    section = section[: section.index("\n## ", 1)]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_readme_recomputes_the_reported_accuracy_from_the_exports_alone(run):
    blocks = readme_blocks()
    assert len(blocks) == 2 and 'run = "runs/blur"' in blocks[0]
    namespace: dict = {}
    exec(blocks[0].replace('run = "runs/blur"', f"run = {str(run)!r}"), namespace)  # asserts itself
    exec(blocks[1], namespace)
    assert namespace["refitted"] == pytest.approx(reported(run, "linear_probe", "accuracy", *BLUR), abs=1e-12)


def test_misclassified_lists_exactly_the_wrong_or_changed_predictions(run):
    predictions = pd.read_csv(run / "predictions.csv")
    predicted = predictions[predictions.task.isin(["linear_probe", "retrieval"])]
    clean = predicted[predicted.corruption == "none"].set_index(["task", "sample_id"]).predicted_label
    expected = []
    for row in predicted.itertuples(index=False):
        clean_label = clean[(row.task, row.sample_id)]
        if row.predicted_label != row.true_label or row.predicted_label != clean_label:
            expected.append((row.task, row.corruption, row.severity, row.stage, row.sample_id, clean_label))
    listed = pd.read_csv(run / "misclassified.csv", keep_default_na=False)
    assert 0 < len(listed) < len(predicted)
    shown = [(r.task, r.corruption, r.severity, r.stage, r.sample_id, r.clean_predicted_label) for r in listed.itertuples()]
    assert shown == expected
    assert (listed.wrong == (listed.predicted_label != listed.true_label)).all()
    assert (listed.changed == (listed.predicted_label != listed.clean_predicted_label)).all()


def test_a_resumed_run_writes_the_same_exports_without_recomputing(run, tiny_customvit_dir, tmp_path, monkeypatch):
    from robustpath.embedding import engine

    forward = engine._Forward.__call__
    calls = [0]

    def interrupted_forward(self, x):
        calls[0] += 1
        if calls[0] == 34:  # 33 passes of 16: 280 + 120 clean and 120 blurred images are stored, hue is not
            raise KeyboardInterrupt
        return forward(self, x)

    monkeypatch.setenv("ROBUSTPATH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(engine._Forward, "__call__", interrupted_forward)
    out = tmp_path / "out"
    command = ["eval", tiny_customvit_dir, "--out", out, *SWEEP, *TASKS, "--save-embeddings"]
    assert cli(*command).exit_code == 130
    assert not (out / "embeddings").exists() and not (out / "predictions.csv").exists()
    monkeypatch.setattr(engine._Forward, "__call__", forward)
    monkeypatch.setenv("ROBUSTPATH_CACHE_DIR", str(tmp_path / "empty-cache"))  # reuse only from OUT/.partial
    result = cli(*command)
    assert result.exit_code == 0, result.output
    record = json.loads((out / "run.json").read_text())
    assert record["embedding"]["reused_variants"] == {
        CLEAN_VARIANT.key: "run folder", "gaussian_blur/2/pre": "run folder", "gaussian_blur/2/post": "run folder"}
    assert record["embedding"]["images_forwarded"] <= 120 + 16  # only the hue images (and one pass's overlap)
    assert record["exports"]["embeddings"] == {"folder": "embeddings", "dtype": "float32"}
    for name in ("predictions.csv", "misclassified.csv"):
        assert (out / name).read_bytes() == (run / name).read_bytes(), name
    files = sorted(p.name for p in (run / "embeddings").iterdir())
    assert sorted(p.name for p in (out / "embeddings").iterdir()) == files
    for name in files:
        assert (out / "embeddings" / name).read_bytes() == (run / "embeddings" / name).read_bytes(), name
    hidden = [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert hidden == [".robustpath-files.json"]  # the list of robustpath's files; no staging folder, no .partial


def test_predictions_are_always_written_with_source_paths(tiny_customvit_dir, tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.setenv("ROBUSTPATH_CACHE_DIR", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    root = tmp_path / "patches"
    for label, base in (("tumour", 90), ("stroma", 160)):
        (root / label).mkdir(parents=True)
        for number in range(10):
            pixels = np.clip(base + rng.normal(0, 60, (40, 40, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / label / f"{number}.png")
    out = tmp_path / "out"
    bad = cli("eval", tiny_customvit_dir, "--data", root, "--out", out, *SWEEP, "-t", "retrieval",
              "--embeddings-dtype", "float16")
    assert bad.exit_code == 2 and "--embeddings-dtype float16 needs --save-embeddings" in bad.output
    result = cli("eval", tiny_customvit_dir, "--data", root, "--out", out, *SWEEP, "-t", "retrieval")
    assert result.exit_code == 0, result.output
    assert not (out / "embeddings").exists()
    predictions = pd.read_csv(out / "predictions.csv")
    record = json.loads((out / "run.json").read_text())
    test_images = sum(record["dataset"]["counts"]["test"].values())
    assert len(predictions) == 4 * test_images and set(predictions.task) == {"retrieval"}  # clean + 3 variants
    listed = pd.read_csv(out / "misclassified.csv")
    assert len(listed) > 0
    for row in listed.itertuples():
        assert Path(row.path) == (root / row.sample_id).resolve() and Path(row.path).is_file()
    assert record["exports"]["embeddings"] is None


def test_zeroshot_exports_the_class_text_embeddings(tiny_open_clip, tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTPATH_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "out"
    result = cli("eval", "--model", tiny_open_clip.spec, "--out", out, "-c", "hue", "-s", "1", "--device", "cpu",
                 "--quiet", "-t", "zeroshot", "--save-embeddings")
    assert result.exit_code == 0, result.output
    saved = robustpath.load_embeddings(out)
    text = saved.text
    assert text.shape == (3, 32) and text.dtype == torch.float32
    np.testing.assert_allclose(text.norm(dim=1).numpy(), 1.0, atol=1e-5)
    assert load_file(out / "embeddings" / "text.safetensors")["embeddings"].shape == (3, 32)
    # the zero-shot predictions follow from the two exported embeddings: cosine similarity, argmax
    predictions = pd.read_csv(out / "predictions.csv")
    for key, corruption in (("clean", "none"), ("hue/1/pre", "hue")):
        images, rows = saved[key]
        images = images.numpy()[(rows.split == "test").to_numpy()]
        similarity = (images / np.linalg.norm(images, axis=1, keepdims=True)) @ text.numpy().T
        expected = np.array(saved.classes)[similarity.argmax(axis=1)]
        shown = predictions[(predictions.task == "zeroshot") & (predictions.corruption == corruption)]
        assert shown.predicted_label.tolist() == expected.tolist()
        assert accuracy_score(shown.true_label, shown.predicted_label) == pytest.approx(
            reported(out, "zeroshot", "accuracy", corruption, *((0, "none") if corruption == "none" else (1, "pre"))))


def test_dry_run_lists_the_exports_and_the_api_needs_an_output_folder(tmp_path):
    result = cli("eval", "customvit-demo", "--out", tmp_path / "out", "-c", "hue", "-s", "1", "--dry-run", "--json",
                 "--save-embeddings", "--embeddings-dtype", "float16")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["exports"] == ["predictions.csv", "misclassified.csv", "embeddings/ (float16)"]
    assert not (tmp_path / "out").exists()
    with pytest.raises(UsageError, match=r"needs out="):
        robustpath.evaluate("customvit-demo", corruptions=["hue"], save_embeddings=True)
    with pytest.raises(DataError, match="run `robustpath eval --save-embeddings`"):
        robustpath.load_embeddings(tmp_path)


def test_corrupted_gallery_files_cover_every_sample_and_give_the_neighbours(tiny_customvit_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTPATH_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "out"
    command = ["eval", tiny_customvit_dir, "--out", out, "-c", "hue", "-s", "1", "--device", "cpu", "--quiet",
               "-t", "retrieval", "--gallery", "corrupted"]
    result = cli(*command, "--save-embeddings")
    assert result.exit_code == 0, result.output
    saved = robustpath.load_embeddings(out)
    hue, samples = saved["hue/1/pre"]
    assert hue.shape == (400, 32) and samples.sample_id.tolist() == saved.samples.sample_id.tolist()
    # the retrieval neighbours follow from the exported embeddings by the documented rule: float64 cosine
    # similarity in bins of 2^-20, highest bin first, ties (same bin) by ascending gallery position
    vectors = hue.double().numpy()
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries, gallery = (samples.split == "test").to_numpy(), (samples.split == "train").to_numpy()
    bins = np.floor((vectors[queries] @ vectors[gallery].T) * 2.0**20)
    positions = np.broadcast_to(np.arange(gallery.sum()), bins.shape)
    nearest = np.array([np.lexsort((position, -row))[:10] for row, position in zip(bins, positions)])
    expected = [";".join(ids) for ids in samples.sample_id[gallery].to_numpy()[nearest].tolist()]
    predictions = pd.read_csv(out / "predictions.csv")
    assert predictions[predictions.corruption == "hue"].neighbours.tolist() == expected

    replaced = cli(*command, "--overwrite")  # a replaced run drops the old embeddings
    assert replaced.exit_code == 0, replaced.output
    assert not (out / "embeddings").exists() and (out / "predictions.csv").is_file()
