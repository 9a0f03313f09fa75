"""Hugging Face transformers models: CLIP-style (image + text) and vision AutoModels.

A Hub name is first copied into the local cache through the fail-fast helper
(config, image processor, tokenizer, safetensors weights; ``pytorch_model.bin``
only when the repository has no safetensors); transformers then loads only
from that folder (``local_files_only``, ``weights_only``), so it never
touches the network itself.  Code shipped in a repository runs only with
``trust_remote_code=True``.

Models with ``get_image_features`` and ``get_text_features`` (CLIPModel, and
the like) are vision-language encoders; transformers 5 returns an output whose
``pooler_output`` is the projected embedding, 4.x returns the tensor: both work.

Image-only models pool their output (``pooling``): "cls" = the class token of
the last hidden state (after the final norm), "mean" = the mean of the patch
tokens (class and register tokens excluded), "cls+mean" = both concatenated
(2x the width; DINOv2's linear-evaluation features).  Default: "cls" for ViT
and DINOv2 families (their own pooled output, and the DINOv2 kNN features);
the model's ``pooler_output`` otherwise.

A model card's ``recipe`` (the foundation-model aliases) names the model class and its
``from_pretrained`` arguments (Phikon's ``add_pooling_layer=False``), checks the loaded
model against the recipe (class, width, class + register tokens), and supplies the
card's preprocessing (the repository's image processor, if any, is compared and noted)
and the card's pooling unless one is chosen.
"""
from __future__ import annotations

import contextlib
import inspect
from pathlib import Path
from typing import TYPE_CHECKING

from robustpath.errors import ModelError, UsageError
from robustpath.models import card, hub
from robustpath.models.hf_preprocessing import preprocessing_from_image_processor

if TYPE_CHECKING:  # pragma: no cover
    import torch

_CLS_TYPES = {"dinov2", "dinov2_with_registers", "vit", "vit_msn", "dinov3_vit"}
_PATTERNS = ["*.json", "*.txt", "*.model", "*.safetensors"]


def _local_folder(argument: str, name: str, trust_remote_code: bool) -> Path:
    from robustpath.models.registry import parse_source_argument

    parts = parse_source_argument("hf", argument, name)
    if parts.form == "dir":
        return Path(parts.target)
    patterns = _PATTERNS + (["*.py"] if trust_remote_code else [])
    folder = hub.download_hub_snapshot(parts.target, patterns, spec=name, local_form="hf:DIR")
    if not any(folder.glob("*.safetensors")):
        folder = hub.download_hub_snapshot(parts.target, patterns + ["pytorch_model*.bin"], spec=name,
                                           local_form="hf:DIR")
    if not (folder / "config.json").is_file():
        raise ModelError(f"model '{name}': the cached copy of '{parts.target}' has no config.json; "
                         + hub.local_copy_hint(parts.target, "hf:DIR"))
    return folder


@contextlib.contextmanager
def _quiet_transformers():
    """transformers draws a loading bar and a key report on stderr; the library does not print."""
    from transformers.utils import logging as hf_logging

    enabled, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if enabled:
            hf_logging.enable_progress_bar()


def _pickle_refusal(folder: Path, name: str, exc: BaseException) -> ModelError:
    """The weights file transformers refused to unpickle, named in one line."""
    from robustpath.models.pickles import pickled_code, refused_pickle

    files = sorted(p for pattern in ("*.bin", "*.pt", "*.pth", "*.ckpt") for p in folder.glob(pattern))
    culprit = next((p for p in files if pickled_code(p)), files[0] if files else folder)
    return refused_pickle(culprit, name, hub.unpickling_reason(exc))


def _model_class(recipe):
    """The transformers class that loads the model: the recipe's, else AutoModel."""
    import transformers

    if recipe is None or recipe.architecture == "AutoModel":
        return transformers.AutoModel
    return getattr(transformers, recipe.architecture)


def _image_processor(folder: Path, common: dict, recipe):
    """The repository's image processor; None when a recipe gives the preprocessing and there is none."""
    import transformers

    try:
        return transformers.AutoImageProcessor.from_pretrained(str(folder), **common)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ImportError):
        if recipe is None:
            raise
        return None


def _load(folder: Path, name: str, trust_remote_code: bool, recipe=None):
    """(model, image processor or None, unexpected keys) from a local folder; loading problems named."""
    import pickle

    import transformers

    from robustpath.models.pickles import quiet_pickle_warnings

    common = dict(local_files_only=True, trust_remote_code=trust_remote_code)
    loading = dict(output_loading_info=True, ignore_mismatched_sizes=True)  # mismatches are named below
    if "weights_only" in inspect.signature(transformers.PreTrainedModel.from_pretrained).parameters:
        loading["weights_only"] = True  # the default in recent releases; explicit for older ones
    try:
        with _quiet_transformers(), quiet_pickle_warnings(), hub.no_code_prompts():
            card_kwargs = dict(recipe.model_kwargs) if recipe is not None else {}
            model, info = _model_class(recipe).from_pretrained(str(folder), **loading, **common, **card_kwargs)
            processor = _image_processor(folder, common, recipe)
    except pickle.UnpicklingError as exc:
        raise _pickle_refusal(folder, name, exc) from None
    except (OSError, ValueError, KeyError, RuntimeError, TypeError, AttributeError, ImportError) as exc:
        text = hub.first_line(exc)  # AttributeError, ImportError: a repository's own code (--trust-remote-code)
        if "trust_remote_code" in str(exc):
            text = hub.REMOTE_CODE_REFUSED
        raise ModelError(f"model '{name}': transformers cannot load '{folder}': {text}") from None
    missing = sorted(info.get("missing_keys", ()))
    mismatched = sorted(str(k[0] if isinstance(k, tuple) else k) for k in info.get("mismatched_keys", ()))
    if missing or mismatched:
        problems = []
        if missing:
            problems.append(f"missing keys {missing[:5]}")
        if mismatched:
            problems.append(f"mis-shaped keys {mismatched[:5]}")
        raise ModelError(f"model '{name}': weights in '{folder}' do not fit its config.json: " + "; ".join(problems))
    return model.eval(), processor, sorted(info.get("unexpected_keys", ()))


class _HFEncoder:
    has_text = False

    def __init__(self, folder: Path, name: str, model, processor, unexpected: list[str], recipe=None) -> None:
        self.name, self.folder, self.model, self.unexpected, self.recipe = name, folder, model, unexpected, recipe
        self.notes: list[str] = []
        repository = None
        try:
            repository = preprocessing_from_image_processor(processor, self.notes) if processor is not None else None
        except ModelError as exc:
            if recipe is None:
                raise ModelError(f"model '{name}': {exc}") from None
            self.notes.append(f"the repository's image processor is not usable ({exc})")
        self.preprocessing = repository if recipe is None else recipe.preprocessing
        if recipe is not None:
            self.notes = (card.preprocessing_notes(recipe.preprocessing, repository, "the repository's image processor")
                          + self.notes + list(recipe.notes))

    def to(self, device: "torch.device"):
        self.model.to(device)
        return self

    def encode_text(self, texts: list[str]) -> "torch.Tensor":
        raise ModelError(f"model '{self.name}' has no text encoder")

    def describe(self) -> dict:
        import transformers

        weights = sorted(self.folder.glob("*.safetensors")) or sorted(self.folder.glob("pytorch_model*.bin"))
        config = self.model.config
        vision = getattr(config, "vision_config", None) or config  # CLIP-style models keep it in vision_config
        facts = {"source": "hf", "path": str(self.folder), "model_type": config.model_type,
                 "model_class": type(self.model).__name__, "transformers_version": transformers.__version__,
                 "patch_size": hub.patch_side(getattr(vision, "patch_size", None)),
                 "weights": {p.name: hub.file_sha256(p) for p in weights}, "embed_dim": self.embed_dim,
                 "preprocessing": self.preprocessing.as_dict()}
        if weights:
            facts["weights_sha256"] = facts["weights"][weights[0].name]
        commit = hub.hub_commit(self.folder)
        if commit:
            facts["hub_commit"] = commit
        if self.unexpected:
            facts["unexpected_keys"] = self.unexpected[:20]
        if self.notes:
            facts["preprocessing_notes"] = list(self.notes)
        if self.recipe is not None:
            facts["recipe"] = self.recipe.describe()
        return facts


def _features(output) -> "torch.Tensor":
    """transformers 5 returns BaseModelOutputWithPooling (projected pooler_output); 4.x a tensor."""
    import torch

    if isinstance(output, torch.Tensor):
        return output
    pooled = getattr(output, "pooler_output", None)
    return pooled if pooled is not None else output[0]


class HFClipEncoder(_HFEncoder):
    """CLIP-style model: ``get_image_features`` / ``get_text_features`` (projected, not L2-normalised)."""

    has_text = True

    def __init__(self, folder, name, model, processor, unexpected, trust_remote_code: bool) -> None:
        import transformers

        super().__init__(folder, name, model, processor, unexpected)
        try:
            with hub.no_code_prompts():
                self.tokenizer = transformers.AutoTokenizer.from_pretrained(
                    str(folder), local_files_only=True, trust_remote_code=trust_remote_code)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            text = hub.REMOTE_CODE_REFUSED if "trust_remote_code" in str(exc) else hub.first_line(exc)
            raise ModelError(f"model '{name}': no usable tokenizer in '{folder}': {text}") from None
        config = model.config
        self.embed_dim = int(getattr(config, "projection_dim", 0) or config.text_config.hidden_size)
        limit = getattr(getattr(config, "text_config", config), "max_position_embeddings", 77)
        self.context_length = int(min(limit, getattr(self.tokenizer, "model_max_length", limit) or limit))
        self.padding = "max_length" if config.model_type.startswith("siglip") else True

    def encode_image(self, images: "torch.Tensor") -> "torch.Tensor":
        import torch

        with torch.no_grad():
            return self.image_features(images)

    def image_features(self, images: "torch.Tensor") -> "torch.Tensor":
        """encode_image with gradients (fine-tuning)."""
        return _features(self.model.get_image_features(pixel_values=images))

    def encode_text(self, texts: list[str]) -> "torch.Tensor":
        import torch

        tokens = self.tokenizer(list(texts), padding=self.padding, truncation=True, max_length=self.context_length,
                                return_tensors="pt")
        device = hub.model_device(self.model)
        inputs = {k: v.to(device) for k, v in tokens.items() if k in ("input_ids", "attention_mask")}
        with torch.no_grad():
            return _features(self.model.get_text_features(**inputs))

    def describe(self) -> dict:
        return dict(super().describe(), context_length=self.context_length)


class HFVisionEncoder(_HFEncoder):
    """Image-only AutoModel (DINOv2, ViT, …) with the pooling described in the module doc."""

    def __init__(self, folder, name, model, processor, unexpected, pooling: str | None, recipe=None) -> None:
        super().__init__(folder, name, model, processor, unexpected, recipe)
        config = model.config
        self.pooling_chosen = pooling is not None
        registers = int(getattr(config, "num_register_tokens", 0) or 0)
        if recipe is not None:
            card.check_model_fits(recipe, name, prefix_tokens=1 + registers, width=int(config.hidden_size),
                                  architecture=None if recipe.architecture == "AutoModel" else type(model).__name__)
        has_cls = recipe is not None or config.model_type in _CLS_TYPES
        if pooling in ("cls", "cls+mean") and not has_cls:
            raise UsageError(f"model '{name}': pooling '{pooling}' needs a class token, and model type "
                             f"'{config.model_type}' has none; use 'mean' or the default")
        self.pooling = pooling or (recipe.pooling if recipe is not None else ("cls" if has_cls else "pooler"))
        self.prefix_tokens = (1 + registers) if has_cls else 0
        if self.pooling == "pooler":
            import torch

            with torch.no_grad():
                probe = self.encode_image(torch.zeros(1, 3, *self.preprocessing.input_size))
            self.embed_dim = int(probe.shape[-1])
        else:
            self.embed_dim = int(config.hidden_size) * (2 if self.pooling == "cls+mean" else 1)

    def encode_image(self, images: "torch.Tensor") -> "torch.Tensor":
        import torch

        with torch.no_grad():
            return self.image_features(images)

    def image_features(self, images: "torch.Tensor") -> "torch.Tensor":
        """encode_image with gradients (fine-tuning)."""
        output = self.model(pixel_values=images)
        if self.pooling == "pooler":
            pooled = getattr(output, "pooler_output", None)
            if pooled is None:
                raise ModelError(f"model '{self.name}' has no pooled output; choose pooling 'mean'")
            return pooled.flatten(1)
        hidden = output.last_hidden_state
        if hidden.ndim == 4:  # (B, C, H, W) feature maps
            return hidden.mean(dim=(2, 3))
        return card.pool_tokens(hidden, self.pooling, self.prefix_tokens)

    def describe(self) -> dict:
        return dict(super().describe(), **card.pooling_facts(self.pooling, self.pooling_chosen, self.recipe))


def load_hf_encoder(argument: str, name: str, *, pooling: str | None = None, trust_remote_code: bool = False,
                    recipe=None):
    """The encoder for ``hf:ORG/REPO`` or ``hf:DIR`` (see the module doc)."""
    folder = _local_folder(argument, name, trust_remote_code)
    model, processor, unexpected = _load(folder, name, trust_remote_code, recipe)
    if hasattr(model, "get_image_features") and hasattr(model, "get_text_features"):
        if pooling is not None:
            raise UsageError(f"model '{name}' is a vision-language model with its own projection; "
                             "pooling applies to image-only models")
        return HFClipEncoder(folder, name, model, processor, unexpected, trust_remote_code)
    return HFVisionEncoder(folder, name, model, processor, unexpected, pooling, recipe)
