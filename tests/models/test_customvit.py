"""CustomViT checkpoints: safe, strict loading with actionable errors."""
import json

import pytest
import torch

from robustpath.errors import ModelError
from robustpath.models import load_encoder
from robustpath.models.customvit import CONFIG_FILE, WEIGHTS_FILE, load_customvit, save_customvit
from robustpath.models.customvit_net import CustomViT, CustomViTConfig


def test_round_trip_gives_identical_embeddings(tiny_customvit_dir):
    model = load_customvit(tiny_customvit_dir)
    encoder = load_encoder(f"customvit:{tiny_customvit_dir}")
    bare = load_encoder(str(tiny_customvit_dir))  # a bare folder is recognised by its files
    x = torch.rand(3, 3, 40, 40)
    with torch.inference_mode():
        expected = model.forward_features(x)
        assert torch.equal(encoder.encode_image(x), expected)
        assert torch.equal(bare.encode_image(x), expected)
    assert encoder.embed_dim == 32
    assert encoder.preprocessing.input_size == (40, 40)
    assert encoder.preprocessing.mean == pytest.approx((0.7, 0.6, 0.7))


def test_mismatched_weights_are_named(tmp_path, tiny_customvit_dir):
    config = json.loads((tiny_customvit_dir / CONFIG_FILE).read_text())
    config["depth"] = 2
    (tmp_path / CONFIG_FILE).write_text(json.dumps(config))
    (tmp_path / WEIGHTS_FILE).write_bytes((tiny_customvit_dir / WEIGHTS_FILE).read_bytes())
    with pytest.raises(ModelError, match=r"missing keys \['blocks\.1\."):
        load_customvit(tmp_path)
    config["depth"], config["width"], config["heads"] = 1, 48, 2
    (tmp_path / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(ModelError, match="mis-shaped keys"):
        load_customvit(tmp_path)


def test_bad_config_and_pickled_weights_refused(tmp_path, tiny_customvit_dir):
    (tmp_path / CONFIG_FILE).write_text(json.dumps({"architecture": "customvit", "widht": 32}))
    (tmp_path / WEIGHTS_FILE).write_bytes(b"")
    with pytest.raises(ModelError, match="unknown key.*widht"):
        load_customvit(tmp_path)
    (tmp_path / CONFIG_FILE).write_text((tiny_customvit_dir / CONFIG_FILE).read_text())
    torch.save({"patch_embed.weight": torch.zeros(1)}, tmp_path / WEIGHTS_FILE)  # a pickle, not safetensors
    with pytest.raises(ModelError, match="not a readable safetensors file"):
        load_customvit(tmp_path)


def test_config_validation_names_the_field(tmp_path):
    with pytest.raises(ValueError, match="multiple of 'patch_size'"):
        CustomViT(CustomViTConfig(image_size=40, patch_size=6))
    model = CustomViT(CustomViTConfig(width=16, depth=1, heads=2))
    save_customvit(model, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]
