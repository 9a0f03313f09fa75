"""--augment PRESET: random corruptions during training, reproducible for a seed."""
from __future__ import annotations

import json

import pytest
from engine_fixtures import cli

torch = pytest.importorskip("torch")

from robustpath.models.corruption_augment import CorruptionAugmenter  # noqa: E402


def test_the_same_seed_gives_the_same_batches_and_another_seed_other_ones():
    images = torch.rand(16, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    first, again = CorruptionAugmenter("pathology", seed=3), CorruptionAugmenter("pathology", seed=3)
    other = CorruptionAugmenter("pathology", seed=4)
    assert torch.equal(first(images, epoch=2, step=5), again(images, epoch=2, step=5))
    assert first.draw(16, 2, 5) == again.draw(16, 2, 5)
    assert first.draw(16, 2, 5) != other.draw(16, 2, 5)
    assert first.draw(16, 2, 5) != first.draw(16, 2, 6)  # each step draws anew


def test_each_image_gets_exactly_the_corruption_drawn_for_it():
    """The reference: the preset's corruption applied to that image alone, with its per-sample generator."""
    import corruptions

    images = torch.rand(64, 3, 40, 40, generator=torch.Generator().manual_seed(1))
    augmenter = CorruptionAugmenter("slide-artefacts", seed=7)
    out = augmenter(images, epoch=1, step=0)
    drawn = augmenter.draw(64, 1, 0)
    assert out.shape == images.shape and out.dtype == images.dtype and float(out.min()) >= 0 and float(out.max()) <= 1
    for position, (name, severity) in enumerate(zip(drawn.corruptions, drawn.severities)):
        if severity == 0:
            assert name == "none" and torch.equal(out[position], images[position])
            continue
        bound = corruptions.get_corruption(name, "slide-artefacts")
        assert 1 <= severity <= bound.max_severity
        generators = bound.sample_generators(7, [f"1:0:{position}"], severity) if bound.random else None
        expected = bound(images[position: position + 1], severity, generator=generators)[0]
        torch.testing.assert_close(out[position], expected, atol=1e-5, rtol=0)


def test_draws_cover_the_preset():
    augmenter = CorruptionAugmenter("pathology", seed=0)
    draws = [augmenter.draw(64, 0, step) for step in range(20)]
    names = [n for d in draws for n in d.corruptions]
    assert 0.4 < names.count("none") / len(names) < 0.6
    assert set(names) == {"none", *augmenter.preset.corruptions}
    assert {s for d in draws for s in d.severities} == {0, 1, 2, 3, 4}


def test_train_with_augment_is_reproducible_and_recorded(tmp_path):
    from safetensors.torch import load_file

    train = ["train", "--epochs", "1", "--width", "16", "--depth", "1", "--heads", "2", "--patch-size", "8",
             "--device", "cpu", "--quiet"]
    for name, extra in (("a", ["--augment", "pathology"]), ("b", ["--augment", "pathology"]), ("plain", [])):
        result = cli(*train, "--out", tmp_path / name, *extra)
        assert result.exit_code == 0, result.output
    weights = {name: load_file(str(tmp_path / name / "model.safetensors")) for name in ("a", "b", "plain")}
    assert all(torch.equal(weights["a"][k], weights["b"][k]) for k in weights["a"])
    assert not all(torch.equal(weights["a"][k], weights["plain"][k]) for k in weights["a"])
    recorded = json.loads((tmp_path / "a" / "config.json").read_text())["training"]
    assert recorded["augment"] == "pathology" and recorded["augmentation"]["probability"] == 0.5


def test_an_unknown_preset_is_one_line(tmp_path):
    result = cli("train", "--augment", "nope", "--out", tmp_path / "m", "--epochs", "1", "--quiet")
    assert result.exit_code == 2 and "unknown preset 'nope'" in result.output
    assert not (tmp_path / "m").exists()
