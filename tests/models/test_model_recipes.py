"""Every foundation-model alias against its model card, on a tiny replica of the exact architecture.

For each alias: a randomly initialised replica (same block types and options, width 48,
depth 2) is saved in the layout the Hub uses for that model and placed in a local
Hugging Face cache (the hub redirected, HF_HUB_OFFLINE set); robustpath loads it through
the alias's own code path (load_encoder, the adapter, the real Hub helpers), with the
alias's recipe reduced to the same width.  The reference is the card's snippet run by
the card's own library on the same cached copy (timm.create_model("hf-hub:…") /
transformers from_pretrained) and the card's transform (torchvision or the repository's
image processor) on PIL images (tests/recipe_cards.py writes the cards out).
Separately, each full-size recipe must build (on the meta device, no memory) to the
size its card states.
"""
import dataclasses
import os

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from recipe_cards import CARDS, SMALL, hub_cache, install_replica, shrink_alias  # noqa: E402,F401
from test_preprocessing_parity import assert_close, tissue_like  # noqa: E402

from robustpath.errors import ModelError, UsageError  # noqa: E402
from robustpath.models import list_model_aliases, load_encoder, registry  # noqa: E402
from robustpath.models.preprocess import normalise, resize_to_input  # noqa: E402
from robustpath.models.recipes import UNSUPPORTED, list_recipes  # noqa: E402

ATOL = 1e-5
# (width, height): down- and mild upscaling, both aspect ratios (at 5x upscaling PIL's and torch's bicubic
# kernels differ by more than the parity tolerance, whatever the geometry)
SIZES = [(300, 240), (224, 224), (200, 180)]
RECIPE_ALIASES = [recipe.alias for recipe in list_recipes()]


def test_every_recipe_alias_has_a_card_here():
    """Parametrised over the registry: a new recipe needs its card's snippet in tests/recipe_cards.py."""
    assert set(RECIPE_ALIASES) == set(CARDS)
    assert {"uni2-h", "virchow", "virchow2", "h-optimus-0", "h-optimus-1", "h0-mini", "prov-gigapath", "phikon",
            "phikon-v2", "midnight-12k", "hibou-b", "hibou-l", "kaiko-vits16", "kaiko-vits8", "kaiko-vitb16",
            "kaiko-vitb8", "kaiko-vitl14"} <= set(RECIPE_ALIASES)


def _pil_tensor(image) -> torch.Tensor:
    return torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255.0


def _ours(encoder, image) -> torch.Tensor:
    prep = encoder.preprocessing
    return normalise(resize_to_input(_pil_tensor(image), prep), prep)[0]


def _card_reference(name: str, card, snapshot):
    """(the card's model loaded by its own library from the cached copy, its transform, its embedding fn)."""
    if card.library == "timm":
        import timm

        model = timm.create_model(f"hf-hub:{card.repo}", pretrained=True,
                                  **{k: SMALL.get(k, v) for k, v in card.card_kwargs().items()}).eval()
        transform = card.transform or timm.data.create_transform(
            **timm.data.resolve_data_config(model.pretrained_cfg, model=model))
        return model, transform, lambda x: card.embedding(model, x)
    import transformers

    loader = transformers.AutoModel if card.remote_code else getattr(transformers, card.model_class)
    model = loader.from_pretrained(str(snapshot), local_files_only=True, trust_remote_code=card.remote_code,
                                   **card.load_kwargs).eval()
    if card.processor is not None:
        processor = transformers.AutoImageProcessor.from_pretrained(str(snapshot), local_files_only=True)
        transform = lambda image: processor(images=image, return_tensors="pt").pixel_values[0]  # noqa: E731
    else:
        transform = card.transform
    return model, transform, lambda x: card.embedding(model(pixel_values=x))


@pytest.mark.parametrize("name", RECIPE_ALIASES)
def test_alias_loads_its_replica_with_the_cards_preprocessing_and_embedding(name, hub_cache, tmp_path, monkeypatch):
    card = CARDS[name]
    snapshot = install_replica(card, hub_cache, tmp_path)
    recipe = shrink_alias(name, monkeypatch)
    encoder = load_encoder(name, trust_remote_code=card.remote_code)
    reference, transform, embedding = _card_reference(name, card, snapshot)

    # preprocessing: the card's transform on PIL images vs ours on the same pixels
    for width, height in ([(224, 224)] if getattr(card, "tiles_only", False) else SIZES):
        image = tissue_like(width, height, seed=width)
        assert_close(_ours(encoder, image), transform(image))
    assert encoder.preprocessing.mean == pytest.approx(card.mean_std[0])
    assert encoder.preprocessing.std == pytest.approx(card.mean_std[1])

    # embedding: the card's snippet on the card's model vs the alias's default pooling, same input
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        expected, ours = embedding(x), encoder.encode_image(x)
    assert ours.shape == expected.shape == (2, encoder.embed_dim)
    assert torch.allclose(ours, expected, atol=ATOL)
    facts = encoder.describe()
    assert facts["pooling"] == recipe.pooling and facts["pooling_source"] == "model card"
    assert facts["recipe"]["card"].startswith("https://huggingface.co/")


@pytest.mark.parametrize("name", ["virchow2", "uni2-h", "h0-mini", "midnight-12k", "hibou-b"])
def test_user_pooling_overrides_the_card_and_excludes_registers(name, hub_cache, tmp_path, monkeypatch):
    """"mean" by hand: the tokens after the card's class + register tokens (5 for Virchow2, 9 for UNI2-h)."""
    card = CARDS[name]
    snapshot = install_replica(card, hub_cache, tmp_path)
    shrink_alias(name, monkeypatch)
    reference, _, _ = _card_reference(name, card, snapshot)
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        if card.library == "timm":
            tokens = reference.forward_features(x)
        else:
            tokens = reference(pixel_values=x).last_hidden_state
        for pooling, expected in (("mean", tokens[:, card.prefix_tokens:].mean(1)), ("cls", tokens[:, 0])):
            encoder = load_encoder(name, pooling=pooling, trust_remote_code=card.remote_code)
            assert torch.allclose(encoder.encode_image(x), expected, atol=ATOL)
            assert encoder.describe()["pooling_source"] == "--pooling"
    assert tokens.shape[1] == card.prefix_tokens + (224 // reference_patch(reference)) ** 2


def reference_patch(model) -> int:
    patch = getattr(getattr(model, "patch_embed", None), "patch_size", None)
    if patch is None:
        patch = model.config.patch_size
    return patch[0] if isinstance(patch, (tuple, list)) else int(patch)


def test_a_repository_that_is_not_the_recipes_architecture_is_refused(hub_cache, tmp_path, monkeypatch):
    """Virchow2 weights without its registers would make the card's patch mean silently wrong."""
    card = dataclasses.replace(CARDS["virchow2"], config_args={k: v for k, v in CARDS["virchow2"].config_args.items()
                                                               if k != "reg_tokens"})
    install_replica(card, hub_cache, tmp_path)
    shrink_alias("virchow2", monkeypatch)
    with pytest.raises(ModelError, match="does not match its card's recipe: 1 class \\+ register tokens, "
                                         "the recipe expects 5"):
        load_encoder("virchow2")


@pytest.mark.parametrize("recipe", list_recipes(), ids=lambda r: r.alias)
def test_full_size_recipe_names_a_valid_architecture_of_the_cards_size(recipe):
    card = CARDS[recipe.alias]
    with torch.device("meta"):
        if recipe.library == "timm":
            import timm

            config = {k: v for k, v in recipe.config_args}
            model = timm.create_model(recipe.architecture, pretrained=False, **dict(config, **recipe.create_kwargs()))
            width, prefix = model.num_features, model.num_prefix_tokens
        else:
            import transformers

            facts = {k: v for k, v in recipe.config_args if k != "model_type"}
            if recipe.architecture == "AutoModel":
                model = transformers.Dinov2WithRegistersModel(transformers.Dinov2WithRegistersConfig(**facts))
            else:
                config_class = getattr(transformers, recipe.architecture.replace("Model", "Config"))
                model = getattr(transformers, recipe.architecture)(config_class(**facts), **dict(recipe.model_kwargs))
            width = model.config.hidden_size
            prefix = 1 + int(getattr(model.config, "num_register_tokens", 0) or 0)
    millions = sum(p.numel() for p in model.parameters()) / 1e6
    assert millions == pytest.approx(card.millions, rel=0.05), f"{recipe.alias}: {millions:.1f}M parameters"
    assert (width, prefix) == (card.width, card.prefix_tokens) == (recipe.width, recipe.prefix_tokens)
    assert recipe.embed_dim == card.width * (2 if recipe.pooling == "cls+mean" else 1)


@pytest.mark.parametrize("model", UNSUPPORTED, ids=lambda m: m.alias)
def test_unsupported_models_fail_in_one_line_naming_what_to_install(model):
    with pytest.raises(ModelError) as caught:
        load_encoder(model.alias)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"model '{model.alias}': ") and "not supported yet" in message
    assert "pip install" in message or "no package on PyPI" in message or "not on PyPI" in message


def test_repository_code_needs_trust_remote_code_named_in_one_line(hub_cache):
    with pytest.raises(ModelError, match="^model 'hibou-b': its card loads code shipped in 'histai/hibou-b'.*"
                                         "pass --trust-remote-code"):
        load_encoder("hibou-b")


def test_every_alias_states_licence_gating_and_card():
    for alias in list_model_aliases():
        if alias.recipe is None and alias.supported:
            continue
        assert alias.licence and alias.card.startswith("https://huggingface.co/")
        assert isinstance(alias.gated, bool)


def test_card_pooling_is_the_default_and_refused_values_are_named():
    assert registry.resolved_pooling("virchow2", None) == registry.resolved_pooling("virchow2", "card") == "cls+mean"
    assert registry.resolved_pooling("virchow2", "cls") == "cls"
    assert registry.resolved_pooling("hf:facebook/dinov2-small", "card") is None
    with pytest.raises(UsageError, match="Valid poolings: card, cls, mean, cls\\+mean"):
        load_encoder("virchow2", pooling="max")
