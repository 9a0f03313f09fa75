"""`robustpath finetune`: the fine-tuned set on disk, its head's predictions, frozen blocks, early stopping."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from engine_fixtures import cli
from model_fixtures import tiny_hf_dinov2  # noqa: F401  (fixture)

torch = pytest.importorskip("torch")

FAST = ["--epochs", "2", "--corruption", "gaussian_blur", "--severity", "2", "--no-cache", "--bootstrap", "40",
        "-f", "csv", "--quiet", "--device", "cpu"]


@pytest.fixture(scope="module")
def fine_tuned_run(tmp_path_factory, tiny_customvit_dir):
    out = tmp_path_factory.mktemp("finetune") / "out"
    result = cli("finetune", f"customvit:{tiny_customvit_dir}", "--out", out, *FAST)
    assert result.exit_code == 0, result.output
    return out


def _predictions(path):
    with open(path, newline="") as handle:
        return [row for row in csv.DictReader(handle) if row["task"] == "fine_tune"]


def test_head_predictions_are_recomputed_from_the_saved_weights(fine_tuned_run, tiny_customvit_dir):
    """Rebuild the network from the base config + saved weights, apply the head with numpy, compare with predictions.csv."""
    import corruptions
    from safetensors.torch import load_file

    from robustpath.data import load_dataset
    from robustpath.models.customvit import load_customvit_config
    from robustpath.models.customvit_net import CustomViT

    manifest = json.loads((fine_tuned_run / "fine-tuned" / "fine_tune.json").read_text())
    assert manifest["base_model"] == f"customvit:{tiny_customvit_dir.resolve()}"
    state = load_file(str(fine_tuned_run / "fine-tuned" / manifest["settings"][0]["weights"]))
    config = load_customvit_config(tiny_customvit_dir)
    network = CustomViT(config).eval()
    network.load_state_dict({k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")})
    base = CustomViT(config)
    base.load_state_dict(load_file(str(tiny_customvit_dir / "model.safetensors")))
    assert not torch.equal(network.blocks[0].attn.qkv.weight, base.blocks[0].attn.qkv.weight)  # it was trained
    weight, bias = state["head.weight"].double().numpy(), state["head.bias"].double().numpy()

    dataset = load_dataset("demo-ihc")
    test = dataset.indices("test")
    images = torch.from_numpy(np.stack([dataset.read_image(int(i)) for i in test])).permute(0, 3, 1, 2).float() / 255
    blurred = corruptions.get_corruption("gaussian_blur", "pathology")(images, 2)
    mean, std = torch.tensor(config.mean).view(1, 3, 1, 1), torch.tensor(config.std).view(1, 3, 1, 1)
    rows = _predictions(fine_tuned_run / "fine_tune" / "predictions.csv")
    ids = [dataset.sample_ids[int(i)] for i in test]
    for corruption, x in (("none", images), ("gaussian_blur", blurred)):
        with torch.no_grad():
            features = network.forward_features((x - mean) / std).double().numpy()
        logits = features @ weight.T + bias
        probabilities = np.exp(logits - logits.max(1, keepdims=True))
        probabilities /= probabilities.sum(1, keepdims=True)
        mine = [r for r in rows if r["corruption"] == corruption and r["stage"] in ("none", "pre")]
        assert [r["sample_id"] for r in mine] == ids
        written = np.array([[float(r[f"p_{name}"]) for name in dataset.classes] for r in mine])
        np.testing.assert_allclose(written, probabilities, atol=1e-4)
        assert [r["predicted_label"] for r in mine] == [dataset.classes[k] for k in probabilities.argmax(1)]


def test_probe_and_fine_tuning_are_compared_side_by_side(fine_tuned_run):
    with open(fine_tuned_run / "comparison.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["task"] for row in rows] == ["linear_probe", "fine_tune"]
    for row in rows:  # recomputed from each run's results.csv
        with open(fine_tuned_run / ("probe" if row["task"] == "linear_probe" else "fine_tune") / "results.csv") as f:
            results = [r for r in csv.DictReader(f) if r["metric"] == "accuracy" and r["samples_per_class"] == "0"]
        clean = [float(r["value"]) for r in results if r["corruption"] == "none"][0]
        corrupted = [float(r["value"]) for r in results if r["corruption"] != "none"]
        assert float(row["clean_accuracy"]) == pytest.approx(clean)
        assert float(row["mean_corrupted_accuracy"]) == pytest.approx(np.mean(corrupted))
        assert float(row["mean_retention"]) == pytest.approx(np.mean(np.array(corrupted) / clean))


def test_the_set_loads_as_a_model_and_scale_settings_get_their_own_heads(tmp_path, tiny_customvit_dir):
    out = tmp_path / "out"
    result = cli("finetune", f"customvit:{tiny_customvit_dir}", "--out", out, *FAST, "-n", "4", "--repeats", "2",
                 "--no-probe", "--epochs", "1")
    assert result.exit_code == 0, result.output
    from robustpath.models import load_encoder

    encoder = load_encoder(str(out / "fine-tuned"))  # a bare folder is recognised
    assert list(encoder.classifier_heads) == ["fine_tune", "fine_tune@4-per-class#0", "fine_tune@4-per-class#1"]
    assert encoder.embed_dim == 3 * 32 and not encoder.has_text
    settings = json.loads((out / "fine-tuned" / "fine_tune.json").read_text())["settings"]
    assert [s["facts"]["train_images"] + s["facts"]["validation_images"] for s in settings][1:] == [12, 12]
    with open(out / "fine_tune" / "results.csv") as handle:
        scales = {(r["samples_per_class"], r["repeat"]) for r in csv.DictReader(handle)}
    assert scales == {("0", "0"), ("4", "0"), ("4", "1")}
    result = cli("eval", f"customvit:{tiny_customvit_dir}", "--task", "fine_tune", "--out", tmp_path / "e", *FAST[2:])
    assert result.exit_code == 2 and "task fine_tune: the model has no head fine-tuned on all training images" in result.output


def test_last_blocks_only_and_early_stopping(tiny_customvit_dir):
    from robustpath.models import load_encoder
    from robustpath.models.finetune import FineTuneSpec, fine_tune, trainable_parameters

    encoder = load_encoder(f"customvit:{tiny_customvit_dir}")
    deeper = encoder.model.__class__(encoder.model.config.__class__(**{**encoder.model.config.__dict__, "depth": 2}))
    encoder.model = deeper
    names = [name for name, _ in trainable_parameters(encoder, 1)]
    assert names[0].startswith("blocks.1.") and "norm.weight" in names and not any(n.startswith("blocks.0.") for n in names)
    generator = torch.Generator().manual_seed(0)
    images, labels = torch.rand(24, 3, 40, 40, generator=generator), np.repeat([0, 1], 12)
    before = {k: v.clone() for k, v in encoder.model.state_dict().items()}
    tuned = fine_tune(encoder, images, labels, 2, FineTuneSpec(blocks=1, epochs=6, patience=1, batch_size=8),
                      device=torch.device("cpu"))
    after = tuned.encoder.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith(("blocks.1.", "norm.")))
    assert not torch.equal(before["blocks.1.mlp.0.weight"], after["blocks.1.mlp.0.weight"])
    assert all(torch.equal(before[k], v) for k, v in encoder.model.state_dict().items())  # the original is untouched
    losses = [log["validation_loss"] for log in tuned.history]
    best = int(np.argmin(losses)) + 1
    assert tuned.facts["best_epoch"] == best and len(tuned.history) == min(6, best + 1)
    with pytest.raises(Exception, match="has only 2 blocks"):
        trainable_parameters(encoder, 3)


def test_fine_tuning_an_hf_dinov2(tmp_path, tiny_hf_dinov2):
    """Another source: the whole DINOv2 tower is trained through image_features (gradients flow)."""
    result = cli("finetune", tiny_hf_dinov2.spec, "--out", tmp_path / "out", *FAST, "--epochs", "1", "--no-probe",
                 "--blocks", "1")
    assert result.exit_code == 0, result.output
    from robustpath.models import load_encoder

    encoder = load_encoder(f"finetuned:{tmp_path / 'out' / 'fine-tuned'}")
    assert encoder.name == "finetuned:hf:" + tiny_hf_dinov2.path.name + "@out"


def test_a_set_from_other_options_is_replaced_only_with_overwrite(fine_tuned_run, tiny_customvit_dir):
    weights = fine_tuned_run / "fine-tuned" / "fine_tune.safetensors"
    before = weights.read_bytes()
    result = cli("finetune", f"customvit:{tiny_customvit_dir}", "--out", fine_tuned_run, *FAST, "--epochs", "3")
    assert result.exit_code == 2 and "fine-tuned' already holds files; pass --overwrite" in result.output
    assert weights.read_bytes() == before
