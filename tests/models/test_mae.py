"""MAE pretraining: the masks actually drawn (ratio, patch geometry), PSNR by hand, the saved encoder."""
from __future__ import annotations

import json

import numpy as np
import pytest
from engine_fixtures import cli

torch = pytest.importorskip("torch")

from robustpath.models import mae  # noqa: E402

TINY = dict(width=16, depth=1, heads=2, decoder_width=16, decoder_depth=1, epochs=1, batch_size=64, device="cpu")


def _pretrain(tmp_path, monkeypatch, **options):
    from robustpath.models.mae_training import PretrainSpec, pretrain_mae

    drawn = []
    original = mae.draw_masks

    def recording(*args, **kwargs):
        mask = original(*args, **kwargs)
        drawn.append(mask.clone())
        return mask

    monkeypatch.setattr(mae, "draw_masks", recording)
    result = pretrain_mae(PretrainSpec(out=tmp_path / "mae", **{**TINY, **options}))
    return result, drawn


@pytest.mark.parametrize("patch_size, mask_ratio", [(4, 0.25), (8, 0.75)])
def test_the_masks_drawn_hide_the_ratio_of_patches_of_the_patch_size(tmp_path, monkeypatch, patch_size, mask_ratio):
    result, drawn = _pretrain(tmp_path, monkeypatch, patch_size=patch_size, mask_ratio=mask_ratio)
    tokens = (40 // patch_size) ** 2
    assert drawn and sum(len(m) for m in drawn) == result.train_images + result.holdout_images
    for mask in drawn:
        assert mask.shape[1] == tokens
        assert (mask.sum(dim=1) == round(mask_ratio * tokens)).all()
    # the geometry the encoder sees: changing pixels of hidden patches leaves its output alone, a visible pixel does not
    from robustpath.models.customvit import load_customvit

    encoder = load_customvit(result.path)
    model = mae.MaskedAutoencoder(encoder, 16, 1, 2).eval()
    mask = drawn[0][:1]
    grid = 40 // patch_size
    images = torch.rand(1, 3, 40, 40)
    changed = images.clone()
    hidden = [i for i in range(tokens) if mask[0, i]]
    visible = [i for i in range(tokens) if not mask[0, i]]
    for index in hidden:
        row, column = divmod(index, grid)
        changed[:, :, row * patch_size:(row + 1) * patch_size, column * patch_size:(column + 1) * patch_size] = 0.5
    with torch.no_grad():
        assert torch.allclose(model.encode_visible(images, mask), model.encode_visible(changed, mask), atol=1e-6)
        row, column = divmod(visible[0], grid)
        changed[:, :, row * patch_size + patch_size - 1, column * patch_size] += 0.3
        assert not torch.allclose(model.encode_visible(images, mask), model.encode_visible(changed, mask), atol=1e-4)


def test_psnr_against_a_hand_computation():
    from skimage.metrics import peak_signal_noise_ratio

    from robustpath.models.customvit_net import CustomViT, CustomViTConfig

    torch.manual_seed(0)
    model = mae.MaskedAutoencoder(CustomViT(CustomViTConfig(width=16, depth=1, heads=2)), 16, 1, 2).eval()
    images = torch.rand(3, 3, 40, 40)
    mask = mae.draw_masks(3, 100, 0.25, torch.Generator().manual_seed(1))
    mean, std = torch.full((1, 3, 1, 1), 0.5), torch.full((1, 3, 1, 1), 0.25)
    with torch.no_grad():
        reconstruction = mae.reconstruct(model, images, mask, mean, std)
        psnr = mae.masked_psnr(images, reconstruction, mask, 4).numpy()
    original, rebuilt = images.double().numpy(), reconstruction.double().numpy()
    for b in range(3):
        hidden_pixels, visible_equal = [], True
        for index in range(100):
            row, column = divmod(index, 10)
            window = (b, slice(None), slice(row * 4, row * 4 + 4), slice(column * 4, column * 4 + 4))
            if mask[b, index]:
                hidden_pixels.append((original[window].ravel(), rebuilt[window].ravel()))
            else:
                visible_equal &= np.array_equal(original[window], rebuilt[window])
        truth = np.concatenate([h[0] for h in hidden_pixels])
        guess = np.concatenate([h[1] for h in hidden_pixels])
        by_hand = 10 * np.log10(1.0 / np.mean((truth - guess) ** 2))
        assert visible_equal and len(hidden_pixels) == 25
        assert psnr[b] == pytest.approx(by_hand, abs=1e-9)
        assert psnr[b] == pytest.approx(peak_signal_noise_ratio(truth, guess, data_range=1.0), abs=1e-9)


def test_patchify_matches_slicing_and_inverts():
    images = torch.rand(2, 3, 12, 12)
    patches = mae.patchify(images, 4)
    assert patches.shape == (2, 9, 48)
    assert torch.equal(patches[1, 5], images[1, :, 4:8, 8:12].permute(1, 2, 0).reshape(-1))
    assert torch.equal(mae.unpatchify(patches, 4, 12, 12), images)


def test_the_saved_encoder_loads_like_any_customvit_and_train_init_starts_from_it(tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from robustpath.data import load_dataset
    from robustpath.models import load_encoder
    from robustpath.models.training import TrainSpec, _initial_model

    result, _ = _pretrain(tmp_path, monkeypatch)
    config = json.loads((result.path / "config.json").read_text())
    assert config["num_classes"] == 0 and config["training"]["protocol"] == "mae"
    assert config["training"]["holdout_psnr_db"] == pytest.approx(result.holdout_psnr)
    assert load_encoder(str(result.path)).embed_dim == 16
    dataset = load_dataset("demo-ihc")
    model = _initial_model(TrainSpec(init=result.path), 40, dataset, None, None)
    saved = load_file(str(result.path / "model.safetensors"))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in saved.items())
    assert model.head.out_features == len(dataset.classes)
    trained = cli("train", "--init", result.path, "--out", tmp_path / "cls", "--epochs", "1", "--device", "cpu", "--quiet")
    assert trained.exit_code == 0, trained.output
    assert json.loads((tmp_path / "cls" / "config.json").read_text())["width"] == 16


def test_bad_mask_ratio_is_one_line(tmp_path):
    result = cli("pretrain", "--out", tmp_path / "m", "--mask-ratio", "1.0", "--quiet")
    assert result.exit_code == 2 and "--mask-ratio must be between 0 and 1" in result.output
    assert not (tmp_path / "m").exists()
