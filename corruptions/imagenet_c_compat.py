"""The 19 ImageNet-C corruptions of the optional ``imagecorruptions`` package, on current libraries.

imagecorruptions 1.1.2 (Hendrycks & Dietterich's code, packaged by bethgelab) is
the reference implementation of ImageNet-C, but it no longer runs as released.
Everything needed to run it lives in this one module:

* ``import`` fails without ``pkg_resources`` (removed from setuptools 82): a
  minimal ``pkg_resources.resource_filename`` is put in ``sys.modules`` for the
  import only (frost finds its six images next to the module) and removed again;
* ``gaussian_blur`` and ``glass_blur`` pass scikit-image's removed
  ``multichannel=True``: imagecorruptions' own ``gaussian`` name is rebound to a
  wrapper that passes ``channel_axis=-1`` instead;
* ``fog`` builds its plasma fractal with ``np.float_`` (gone in NumPy 2): that one
  function gets a copy whose ``np`` has ``float_ = float64``; NumPy itself is
  not touched;
* ``spatter`` (levels 1-3) divides its liquid layer by its maximum, which is 0
  when no liquid passes the threshold (about 1 in 400 40 px images): 0 / 0 made
  the whole image black. Its copy divides by 1 then, i.e. adds no spatter;
* every corruption draws from NumPy's global random state, and impulse_noise from
  an unseeded ``default_rng``: each image runs under a lock with the global state
  seeded from that image's torch generator (then restored), and imagecorruptions'
  ``skimage.util.random_noise`` gets an ``rng`` drawn from it, so results depend
  only on (run seed, sample id, corruption, severity), as for every corruption;
* zoom_blur and snow ``print`` to stdout for non-square images: silenced;
* every corruption refuses images under 32 px: such images are resized up
  (bicubic, shorter side to 32, aspect kept), corrupted, and area-resized back;
  images of 32 px and more are corrupted as they are;
* imagecorruptions requires ``opencv-python``, which would replace the
  ``opencv-python-headless`` robustpath uses (both provide ``cv2``): install it
  with ``pip install --no-deps imagecorruptions==1.1.2``; its other requirements
  (numpy, Pillow, scikit-image, scipy) are robustpath's own.

The corruptions are registered as operations ``imagecorruptions.<name>`` whose
value is the severity level 1-5 of imagecorruptions' own parameter table; the
preset ``imagecorruptions`` lists all 19 with those tables in its sources.
They run on the CPU, one 8-bit image at a time (inputs are rounded to 8 bits
and outputs truncated to 8 bits, as ``imagecorruptions.corrupt`` does), and
come back on the input's device. Registration does not import imagecorruptions:
a missing package is reported when a corruption first runs.
"""
from __future__ import annotations

import contextlib
import io
import sys
import threading
import types
import warnings
from pathlib import Path

import numpy as np
import torch

from corruptions.errors import CorruptionError
from corruptions.randomness import draw_uniform
from corruptions.registry import Range, register_operation

VERSION = "1.1.2"
INSTALL_HINT = f'pip install "robustpath[imagecorruptions]" && pip install --no-deps imagecorruptions=={VERSION}'
MIN_SIDE = 32
LEVELS = (1, 2, 3, 4, 5)
# imagecorruptions' order: 15 "common" corruptions, then the 4 "validation" ones.
NAMES = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression",
    "speckle_noise", "gaussian_blur", "spatter", "saturate",
)
RANDOM = frozenset({
    "gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "glass_blur", "motion_blur", "snow",
    "frost", "fog", "spatter", "elastic_transform",
})

_LOCK = threading.RLock()  # imagecorruptions uses NumPy's global random state and sys.stdout
_MODULE: types.ModuleType | None = None


def load_imagecorruptions() -> types.ModuleType:
    """The ``imagecorruptions`` package, imported once and fixed (see the module docstring).

    Raises :class:`CorruptionError` with the install command when it is missing.
    """
    global _MODULE
    with _LOCK:
        if _MODULE is None:
            _MODULE = _import_and_fix()
        return _MODULE


def _import_and_fix() -> types.ModuleType:
    shim = None
    try:
        import pkg_resources  # noqa: F401  (old setuptools still has it)
    except ImportError:
        shim = types.ModuleType("pkg_resources")
        shim.resource_filename = _resource_filename
        sys.modules["pkg_resources"] = shim
    try:
        with warnings.catch_warnings():  # scipy.ndimage.interpolation is deprecated
            warnings.simplefilter("ignore", DeprecationWarning)
            import imagecorruptions
            from imagecorruptions import corruptions as functions
    except ImportError as error:
        raise CorruptionError(
            f"the imagecorruptions corruptions need the optional package imagecorruptions=={VERSION} "
            f"({error}); install it with: {INSTALL_HINT}"
        ) from None
    finally:
        if shim is not None and sys.modules.get("pkg_resources") is shim:
            del sys.modules["pkg_resources"]
    installed = _installed_version()
    if installed not in (None, VERSION):
        raise CorruptionError(
            f"imagecorruptions {installed} is installed; the fixes and the preset tables are for {VERSION}: {INSTALL_HINT}"
        )
    functions.gaussian = _gaussian_with_multichannel
    functions.plasma_fractal = _with_globals(functions.plasma_fractal, np=_NumpyView(float_=np.float64))
    functions.spatter = _with_globals(functions.spatter, np=_NumpyView(max=_max_or_one))
    imagecorruptions.corruption_dict["spatter"] = functions.spatter  # corrupt() looks names up here
    imagecorruptions.corruption_tuple = tuple(imagecorruptions.corruption_dict[f.__name__] for f in imagecorruptions.corruption_tuple)
    functions.sk = _SkimageWithSeededNoise()
    return imagecorruptions


def _installed_version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("imagecorruptions")
    except metadata.PackageNotFoundError:  # e.g. a source checkout on sys.path
        return None


def _resource_filename(package: str, relative: str) -> str:
    """pkg_resources.resource_filename for a module: a path next to the module's file."""
    return str(Path(sys.modules[package].__file__).parent / relative)


def _gaussian_with_multichannel(image, sigma=1, multichannel=None, **kwargs):
    """skimage.filters.gaussian accepting the removed ``multichannel=True`` (= ``channel_axis=-1``)."""
    from skimage.filters import gaussian

    if multichannel:
        kwargs.setdefault("channel_axis", -1)
    return gaussian(image, sigma=sigma, **kwargs)


class _NumpyView(types.ModuleType):
    """numpy as one imagecorruptions function sees it: numpy, with a few names replaced."""

    def __init__(self, **replaced) -> None:
        super().__init__("numpy")
        self.__dict__.update(replaced)

    def __getattr__(self, name: str):
        return getattr(np, name)


def _max_or_one(array, *args, **kwargs):
    """np.max, with 1 where the maximum is 0 (spatter divides by it: 0 / 0 made the image black)."""
    maximum = np.max(array, *args, **kwargs)
    return np.where(maximum == 0, 1, maximum)


class _SkimageWithSeededNoise(types.ModuleType):
    """skimage as imagecorruptions sees it: ``util.random_noise`` seeded from NumPy's global state."""

    def __init__(self) -> None:
        import skimage
        import skimage.util

        super().__init__("skimage")
        self._skimage = skimage
        self.util = types.SimpleNamespace(random_noise=self._random_noise)

    def __getattr__(self, name: str):
        return getattr(self._skimage, name)

    def _random_noise(self, image, **kwargs):
        from skimage.util import random_noise

        kwargs.setdefault("rng", int(np.random.randint(0, 2**31 - 1)))
        return random_noise(image, **kwargs)


def _with_globals(function: types.FunctionType, **names) -> types.FunctionType:
    """A copy of ``function`` that looks the given global names up in ``names`` first."""
    return types.FunctionType(
        function.__code__, {**function.__globals__, **names}, function.__name__, function.__defaults__, function.__closure__
    )


def corrupt_image(image: np.ndarray, name: str, level: int, *, seed: int = 0) -> np.ndarray:
    """One image (H, W, 3) uint8 -> (H, W, 3) uint8, as ``imagecorruptions.corrupt(image, level, name)``.

    NumPy's global random state is seeded with ``seed`` for the call and restored
    afterwards; images under 32 px are resized up, corrupted and resized back.
    """
    module = load_imagecorruptions()
    height, width = image.shape[:2]
    small = min(height, width) < MIN_SIDE
    if small:
        import cv2

        scale = MIN_SIDE / min(height, width)
        size = (max(MIN_SIDE, int(np.ceil(width * scale))), max(MIN_SIDE, int(np.ceil(height * scale))))
        image = cv2.resize(image, size, interpolation=cv2.INTER_CUBIC)
    with _LOCK:
        state = np.random.get_state()
        try:
            np.random.seed(seed)
            with contextlib.redirect_stdout(io.StringIO()):
                out = module.corrupt(np.ascontiguousarray(image), severity=int(level), corruption_name=name)
        finally:
            np.random.set_state(state)
    if small:
        out = cv2.resize(out, (width, height), interpolation=cv2.INTER_AREA)
    return out


def check_level(value) -> None:
    """Refuse anything but a severity level 1-5 (the value of every ``imagecorruptions.*`` operation)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value not in LEVELS:
        raise CorruptionError(f"imagecorruptions level {value!r}: expected a whole number 1..5")


def _make_operation(name: str):
    random = name in RANDOM

    def operation(x: torch.Tensor, level, *, generator=None) -> torch.Tensor:
        check_level(level)
        batch = x.shape[0]
        if batch == 0:
            return x
        seeds = (draw_uniform(generator, batch, 1)[:, 0] * 2**32).long().tolist() if random else [0] * batch
        images = (x.detach().float().clamp(0.0, 1.0) * 255.0).round_().to("cpu", torch.uint8)
        images = images.permute(0, 2, 3, 1).numpy()
        out = np.stack([corrupt_image(image, name, int(level), seed=seed) for image, seed in zip(images, seeds)])
        return torch.from_numpy(out).permute(0, 3, 1, 2).to(device=x.device, dtype=x.dtype) / 255.0

    operation.__name__ = name
    operation.__doc__ = f"imagecorruptions.{name} at level 1-5, per image on the CPU (see corruptions.imagenet_c_compat)."
    return operation


for _name in NAMES:
    register_operation(
        f"imagecorruptions.{_name}",
        parameter="level",
        unit="severity level 1-5 of imagecorruptions' own parameter table",
        description=f"ImageNet-C {_name} from imagecorruptions {VERSION} (optional extra; CPU, one image at a time).",
        random=_name in RANDOM,
        validate=check_level,
        ranges={"level": Range(LEVELS[0], LEVELS[-1], identity=0, whole=True)},
    )(_make_operation(_name))
