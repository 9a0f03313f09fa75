"""Model geometry against torchvision's own resize / centre crop."""
import torch
import torchvision.transforms.v2.functional as TF

from robustpath.models.base import Preprocessing
from robustpath.models.preprocess import normalise, resize_to_input


def test_resize_and_centre_crop_match_torchvision():
    x = torch.rand(2, 3, 40, 56)
    prep = Preprocessing(input_size=(32, 32), mean=(0.5,) * 3, std=(0.25,) * 3, resize_mode="bilinear", crop="center")
    expected = TF.center_crop(TF.resize(x, 32, interpolation=TF.InterpolationMode.BILINEAR, antialias=True), [32, 32])
    assert torch.allclose(resize_to_input(x, prep), expected, atol=1e-6)


def test_upscale_bicubic_stays_in_range_and_identity_is_free():
    x = torch.rand(1, 3, 40, 40)
    prep = Preprocessing(input_size=(224, 224), mean=(0.5,) * 3, std=(0.5,) * 3)
    y = resize_to_input(x, prep)
    assert y.shape == (1, 3, 224, 224) and y.min() >= 0 and y.max() <= 1
    same = Preprocessing(input_size=(40, 40), mean=(0.5,) * 3, std=(0.5,) * 3)
    assert resize_to_input(x, same) is x


def test_normalise_by_hand():
    x = torch.rand(2, 3, 4, 4)
    prep = Preprocessing(input_size=(4, 4), mean=(0.1, 0.2, 0.3), std=(0.5, 0.25, 2.0))
    expected = torch.stack([(x[:, c] - m) / s for c, (m, s) in enumerate(zip(prep.mean, prep.std))], dim=1)
    assert torch.allclose(normalise(x, prep), expected)
