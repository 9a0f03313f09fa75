"""Our Preprocessing (geometry + normalisation) from a transformers image processor.

CLIPImageProcessor, BitImageProcessor (DINOv2), ViTImageProcessor and the like: the
resize (shorter side or a fixed size), the centre crop, the resampling filter and
mean/std become robustpath's ``Preprocessing``; what cannot be expressed exactly is noted.
"""
from __future__ import annotations

from robustpath.errors import ModelError
from robustpath.models import hub

_RESAMPLE = {0: "nearest", 2: "bilinear", 3: "bicubic", "nearest": "nearest", "bilinear": "bilinear",
             "bicubic": "bicubic", "nearest-exact": "nearest"}


def _size(size, key: str):
    return size.get(key) if isinstance(size, dict) else getattr(size, key, None)


def preprocessing_from_image_processor(processor, notes: list[str]):
    """Our Preprocessing from a transformers image processor (CLIPImageProcessor, BitImageProcessor, …)."""
    if not getattr(processor, "do_resize", True):
        raise ModelError("the image processor does not resize; robustpath needs a fixed input size")
    resample = getattr(processor, "resample", 3)
    resample = getattr(resample, "value", resample)
    mode = _RESAMPLE.get(resample)
    if mode is None:
        notes.append(f"resample {resample!r} approximated by bicubic")
        mode = "bicubic"
    size, crop_size = processor.size, getattr(processor, "crop_size", None)
    cropping = bool(getattr(processor, "do_center_crop", False)) and crop_size is not None
    shortest = _size(size, "shortest_edge")
    if shortest:
        if not cropping:
            raise ModelError("the image processor resizes the shorter side without a crop (variable input size)")
        input_size, crop, resize_size = (_size(crop_size, "height"), _size(crop_size, "width")), "center", shortest
    elif _size(size, "height"):
        input_size, crop, resize_size = (_size(size, "height"), _size(size, "width")), "none", None
        if cropping and (_size(crop_size, "height"), _size(crop_size, "width")) != input_size:
            input_size = (_size(crop_size, "height"), _size(crop_size, "width"))
            notes.append(f"resize to {_size(size, 'height')}x{_size(size, 'width')} then crop approximated")
    else:
        raise ModelError(f"image processor size {size} is not supported (expected shortest_edge or height/width)")
    if not getattr(processor, "do_normalize", True):
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    else:
        mean, std = processor.image_mean, processor.image_std
    factor = getattr(processor, "rescale_factor", 1 / 255) if getattr(processor, "do_rescale", True) else 1.0
    if abs(factor * 255 - 1) > 1e-6:
        notes.append(f"rescale_factor {factor} is not 1/255; images are still scaled to [0, 1]")
    return hub.make_preprocessing(input_size, mean, std, resize_mode=mode, crop=crop, resize_size=resize_size,
                                  notes=notes)
