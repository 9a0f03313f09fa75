"""`robustpath eval --model <each adapter>` end to end on demo-ihc with tiny random checkpoints."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
from model_fixtures import tiny_hf_clip, tiny_hf_dinov2, tiny_open_clip, tiny_timm  # noqa: F401  (fixtures)
from typer.testing import CliRunner

from robustpath.cli.main import app

runner = CliRunner()
SWEEP = ["-c", "gaussian_blur", "-c", "hue", "-s", "2", "--quiet", "--device", "cpu"]
PROMPTS = {
    "templates": ["a histology image of {}."],
    "classes": {"background": ["empty glass"], "dab-negative": ["blue nuclei"], "dab-positive": ["brown stain"]},
}


def _eval(spec, out, *extra):
    result = runner.invoke(app, ["eval", "--model", spec, "--out", str(out), *SWEEP, *extra])
    assert result.exit_code == 0, result.output
    return pd.read_csv(out / "results.csv"), json.loads((out / "run.json").read_text()), result


@pytest.mark.parametrize("fixture, local_dir", [("tiny_open_clip", False), ("tiny_open_clip", True), ("tiny_hf_clip", False)])
def test_clip_style_models_run_all_three_tasks(fixture, local_dir, request, tmp_path):
    checkpoint = request.getfixturevalue(fixture)
    spec = f"open_clip:local-dir:{checkpoint.extra['local_dir']}" if local_dir else checkpoint.spec
    table, record, _ = _eval(spec, tmp_path)
    assert set(table.task) == {"linear_probe", "retrieval", "zeroshot", "embedding_drift", "identity", "detectability"}
    zeroshot = table[table.task == "zeroshot"]
    assert set(zeroshot.metric) == {
        "accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "expected_calibration_error", "flip_rate"
    }
    assert set(zeroshot.corruption) == {"none", "gaussian_blur", "hue"}
    assert record["prompts"]["templates"]  # the prompts used are recorded


@pytest.mark.parametrize("fixture", ["tiny_hf_dinov2", "tiny_timm"])
def test_image_only_models_skip_zeroshot_with_a_note(fixture, request, tmp_path):
    checkpoint = request.getfixturevalue(fixture)
    table, record, result = _eval(checkpoint.spec, tmp_path, "--pooling", "cls+mean")
    assert set(table.task) == {"linear_probe", "retrieval", "embedding_drift", "identity", "detectability"}
    assert any("Zero-shot skipped" in note for note in record["notes"])
    assert "Zero-shot skipped" in (tmp_path / "report.md").read_text()
    assert record["model"]["preprocessing"]["input_size"] == [32, 32]


def test_zeroshot_matches_an_independent_computation(tiny_open_clip, tmp_path):
    """Recompute clean zero-shot accuracy and macro-F1 with open_clip and scikit-learn directly."""
    import open_clip
    from sklearn.metrics import accuracy_score, f1_score

    from robustpath.data import load_dataset

    prompts_file = tmp_path / "prompts.json"
    prompts_file.write_text(json.dumps(PROMPTS))
    table, _, _ = _eval(tiny_open_clip.spec, tmp_path / "out", "--prompts", str(prompts_file), "-t", "zeroshot")
    clean = table[(table.task == "zeroshot") & (table.corruption == "none")].set_index("metric")["value"]

    model = tiny_open_clip.model
    tokenizer = open_clip.get_tokenizer("robustpath-tiny-clip")
    dataset = load_dataset("demo-ihc")
    test = dataset.indices("test")
    images = torch.from_numpy(np.stack([dataset.read_image(i) for i in test])).permute(0, 3, 1, 2).float() / 255
    images = torch.nn.functional.interpolate(images, size=(32, 32), mode="bicubic", antialias=True).clamp(0, 1)
    mean = torch.tensor(model.visual.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(model.visual.image_std).view(1, 3, 1, 1)
    with torch.no_grad():
        image_features = model.encode_image((images - mean) / std)
        class_features = []
        for name in dataset.classes:
            texts = [PROMPTS["templates"][0].format(n) for n in PROMPTS["classes"][name]]
            text = model.encode_text(tokenizer(texts))
            text = text / text.norm(dim=-1, keepdim=True)
            mean_text = text.mean(dim=0)
            class_features.append(mean_text / mean_text.norm())
    image_features = image_features / image_features.norm(dim=-1, keepdim=True)
    predictions = (image_features @ torch.stack(class_features).T).argmax(dim=1).numpy()
    truth = dataset.labels[test]
    assert clean["accuracy"] == pytest.approx(accuracy_score(truth, predictions), abs=1e-9)
    assert clean["macro_f1"] == pytest.approx(f1_score(truth, predictions, average="macro"), abs=1e-9)


def test_models_command_lists_aliases():
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0
    for name in ("pathclip", "plip", "openai-clip", "quiltnet", "dinov2-small", "uni", "conch", "customvit-demo"):
        assert name in result.stdout


def test_model_given_twice_is_a_usage_error(tmp_path):
    result = runner.invoke(app, ["eval", "customvit-demo", "--model", "plip", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "given twice" in result.output
