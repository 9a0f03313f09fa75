"""Every adapter on a tiny checkpoint: the Encoder contract, shapes, and embeddings equal to the
library's own forward pass on the library's own preprocessing of the same tensor (atol 1e-5).

The images are already at the model's input size, so the comparison isolates normalisation,
weights and forward pass; the geometry is compared in test_preprocessing_parity.py."""
import hashlib
import json
import os

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from model_fixtures import (  # noqa: E402,F401
    OPEN_CLIP_ARCH,
    TIMM_ARCH,
    tiny_hf_clip,
    tiny_fine_tuned,
    tiny_hf_dinov2,
    tiny_open_clip,
    tiny_timm,
)

from robustpath.errors import ModelError, UsageError  # noqa: E402
from robustpath.models import Encoder, list_model_sources, load_encoder  # noqa: E402
from robustpath.models.preprocess import normalise, resize_to_input  # noqa: E402

TEXTS = ["an H&E image of tumour", "an H&E image of normal tissue", "lymphocytes"]
ATOL = 1e-5


def ours(encoder, x: torch.Tensor) -> torch.Tensor:
    prep = encoder.preprocessing
    with torch.inference_mode():
        return encoder.encode_image(normalise(resize_to_input(x, prep), prep))


def check_contract(encoder, embed_dim: int, has_text: bool, weights) -> None:
    assert isinstance(encoder, Encoder)
    assert (encoder.embed_dim, encoder.has_text) == (embed_dim, has_text)
    assert encoder.to(torch.device("cpu")) is encoder
    facts = encoder.describe()
    json.dumps(facts)  # run.json material
    assert facts["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert facts["preprocessing"] == encoder.preprocessing.as_dict()
    if not has_text:
        with pytest.raises(ModelError, match="no text encoder"):
            encoder.encode_text(TEXTS)


SOURCE_FIXTURES = {"customvit": "tiny_customvit_dir", "open_clip": "tiny_open_clip", "hf": "tiny_hf_clip",
                   "timm": "tiny_timm", "finetuned": "tiny_fine_tuned"}


@pytest.mark.parametrize("source", [s.name for s in list_model_sources()])
def test_every_source_honours_the_encoder_contract(request, source):
    """Parametrised over the registry: a new source needs a tiny checkpoint here."""
    assert source in SOURCE_FIXTURES, f"add a tiny checkpoint fixture for model source '{source}'"
    checkpoint = request.getfixturevalue(SOURCE_FIXTURES[source])
    encoder = load_encoder(f"customvit:{checkpoint}" if source == "customvit" else checkpoint.spec)
    assert isinstance(encoder, Encoder) and encoder.name.startswith(f"{source}:")
    x = torch.rand(2, 3, 57, 45)
    embeddings = ours(encoder, x)
    assert embeddings.shape == (2, encoder.embed_dim) and embeddings.dtype == torch.float32
    assert torch.isfinite(embeddings).all()
    if encoder.has_text:
        assert encoder.encode_text(TEXTS).shape == (len(TEXTS), encoder.embed_dim)
    json.dumps(encoder.describe())
    # what the registry declares, without loading, matches the loaded model
    from robustpath.models.registry import model_text_encoder
    from robustpath.models.sources import get_model_source

    spec = f"customvit:{checkpoint}" if source == "customvit" else checkpoint.spec
    declared = get_model_source(source).has_text
    if declared is not None:
        assert encoder.has_text is declared
    assert model_text_encoder(spec) in ({"yes" if encoder.has_text else "no"} if declared is not None
                                        else {"yes" if encoder.has_text else "no", "unknown until loaded"})


def test_open_clip_file_and_local_dir(tiny_open_clip):
    import open_clip

    x = torch.rand(4, 3, 32, 32)
    model = tiny_open_clip.model
    tokenizer = open_clip.get_tokenizer(OPEN_CLIP_ARCH)
    local_dir = tiny_open_clip.extra["local_dir"]
    for spec, name, pretrained, weights in (
        (tiny_open_clip.spec, OPEN_CLIP_ARCH, str(tiny_open_clip.path), tiny_open_clip.path),
        (f"open_clip:local-dir:{local_dir}", f"local-dir:{local_dir}", None, local_dir / "open_clip_model.safetensors"),
    ):
        encoder = load_encoder(spec)
        check_contract(encoder, 32, True, weights)
        _, _, transform = open_clip.create_model_and_transforms(name, pretrained=pretrained)
        with torch.inference_mode():
            expected = model.encode_image(torch.stack([transform(image) for image in x]))
            assert torch.allclose(ours(encoder, x), expected, atol=ATOL)
            texts = encoder.encode_text(TEXTS)
            assert texts.shape == (3, 32)
            assert torch.allclose(texts, model.encode_text(tokenizer(TEXTS)), atol=ATOL)
    assert encoder.preprocessing.mean == pytest.approx(tiny_open_clip.extra["local_preprocess"]["mean"])


def test_open_clip_quick_gelu_is_forced_when_asked(tiny_open_clip):
    from open_clip.transformer import QuickGELU

    from robustpath.models.openclip_adapter import OpenClipEncoder

    argument = tiny_open_clip.spec.split(":", 1)[1]
    plain, quick = load_encoder(tiny_open_clip.spec), OpenClipEncoder(argument, "tiny", quick_gelu=True)
    assert not plain.describe()["quick_gelu"] and quick.describe()["quick_gelu"]
    assert any(isinstance(m, QuickGELU) for m in quick.model.modules())
    assert not any(isinstance(m, QuickGELU) for m in plain.model.modules())
    x = torch.rand(2, 3, 32, 32)
    assert not torch.allclose(ours(plain, x), ours(quick, x))  # the silent error of open_clip issue #771


def test_open_clip_weights_that_do_not_fit_are_named(tiny_open_clip, tmp_path):
    from safetensors.torch import load_file, save_file

    state = load_file(str(tiny_open_clip.path))
    del state["ln_final.weight"]
    state["visual.proj"] = torch.zeros(3, 3)
    state["extra.bias"] = torch.zeros(1)
    bad = tmp_path / "bad.safetensors"
    save_file(state, str(bad))
    with pytest.raises(ModelError) as caught:
        load_encoder(f"open_clip:{OPEN_CLIP_ARCH}@{bad}")
    message = str(caught.value)
    assert "missing keys ['ln_final.weight']" in message and "unexpected keys ['extra.bias']" in message
    assert "mis-shaped keys ['visual.proj (3, 3) != (64, 32)']" in message


def test_open_clip_weights_only_pickle_loads(tiny_open_clip, tmp_path):
    """A plain torch.save state dict (as most published .pt checkpoints) loads, wrapped or not."""
    state = {f"module.{k}": v for k, v in tiny_open_clip.model.state_dict().items()}
    torch.save({"epoch": 10, "state_dict": state}, tmp_path / "checkpoint.pt")
    encoder = load_encoder(f"open_clip:{OPEN_CLIP_ARCH}@{tmp_path / 'checkpoint.pt'}")
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(ours(encoder, x), ours(load_encoder(tiny_open_clip.spec), x))


def test_hf_clip_image_and_text(tiny_hf_clip):
    encoder = load_encoder(tiny_hf_clip.spec)
    check_contract(encoder, 24, True, tiny_hf_clip.path / "model.safetensors")
    x = torch.rand(3, 3, 32, 32)
    processor, tokenizer = tiny_hf_clip.extra["processor"], tiny_hf_clip.extra["tokenizer"]
    pixels = processor(images=list(x), do_rescale=False, return_tensors="pt").pixel_values
    tokens = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.inference_mode():
        expected = tiny_hf_clip.model(pixel_values=pixels, input_ids=tokens.input_ids,
                                      attention_mask=tokens.attention_mask)
        image, text = ours(encoder, x), encoder.encode_text(TEXTS)
    assert image.shape == (3, 24) and text.shape == (3, 24)
    assert torch.allclose(F.normalize(image, dim=-1), expected.image_embeds, atol=ATOL)
    assert torch.allclose(F.normalize(text, dim=-1), expected.text_embeds, atol=ATOL)
    with pytest.raises(UsageError, match="pooling applies to image-only"):
        load_encoder(tiny_hf_clip.spec, pooling="cls")


def test_hf_dinov2_pooling(tiny_hf_dinov2):
    x = torch.rand(2, 3, 32, 32)
    processor = tiny_hf_dinov2.extra["processor"]
    pixels = processor(images=list(x), do_rescale=False, return_tensors="pt").pixel_values
    with torch.inference_mode():
        output = tiny_hf_dinov2.model(pixel_values=pixels)
    hidden = output.last_hidden_state
    expected = {"cls": output.pooler_output, "mean": hidden[:, 1:].mean(dim=1),
                "cls+mean": torch.cat([hidden[:, 0], hidden[:, 1:].mean(dim=1)], dim=-1)}
    default = load_encoder(tiny_hf_dinov2.spec)
    check_contract(default, 32, False, tiny_hf_dinov2.path / "model.safetensors")
    assert default.describe()["pooling"] == "cls"
    assert torch.allclose(ours(default, x), expected["cls"], atol=ATOL)
    for pooling, embedding in expected.items():
        encoder = load_encoder(tiny_hf_dinov2.spec, pooling=pooling)
        assert encoder.embed_dim == embedding.shape[1]
        assert torch.allclose(ours(encoder, x), embedding, atol=ATOL)


def test_hf_weights_that_do_not_fit_are_named(tiny_hf_dinov2, tmp_path):
    for item in tiny_hf_dinov2.path.iterdir():
        (tmp_path / item.name).write_bytes(item.read_bytes())
    config = json.loads((tmp_path / "config.json").read_text())
    config["mlp_ratio"] = 2
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match=r"mis-shaped keys \['encoder\.layer\.0\.mlp\.fc1"):
        load_encoder(f"hf:{tmp_path}")


def test_timm_file_and_local_dir(tiny_timm):
    import timm

    x = torch.rand(2, 3, 32, 32)
    local_dir = tiny_timm.extra["local_dir"]
    reference = timm.create_model(f"local-dir:{local_dir}", pretrained=True, num_classes=0).eval()
    transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=reference))
    with torch.inference_mode():
        expected = reference(torch.stack([transform(image) for image in x]))
        assert torch.allclose(tiny_timm.model(torch.stack([transform(image) for image in x])), expected, atol=ATOL)
    for spec, weights in ((tiny_timm.spec, tiny_timm.path), (f"timm:local-dir:{local_dir}", local_dir / "model.safetensors"),
                          (f"timm:{TIMM_ARCH}@{local_dir / 'pytorch_model.bin'}", local_dir / "pytorch_model.bin")):
        encoder = load_encoder(spec)
        check_contract(encoder, 32, False, weights)
        assert torch.allclose(ours(encoder, x), expected, atol=ATOL)
    tokens = reference.forward_features(normalise(x, encoder.preprocessing)).detach()
    for pooling, embedding in {"cls": tokens[:, 0], "mean": tokens[:, 1:].mean(dim=1)}.items():
        encoder = load_encoder(tiny_timm.spec, pooling=pooling)
        assert torch.allclose(ours(encoder, x), embedding, atol=ATOL)
    assert load_encoder(tiny_timm.spec, pooling="cls+mean").embed_dim == 64


def test_timm_alias_style_model_kwargs_reach_create_model(tiny_timm, tmp_path):
    """UNI's recipe (init_values, dynamic_img_size) changes the architecture: its weights load only with it."""
    import timm
    from safetensors.torch import save_file

    from robustpath.models.timm_adapter import TimmEncoder

    kwargs = (("init_values", 1e-5), ("dynamic_img_size", True))
    reference = timm.create_model(TIMM_ARCH, num_classes=0, **dict(kwargs)).eval()
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(tmp_path / "uni-like.safetensors"))
    argument = f"{TIMM_ARCH}@{tmp_path / 'uni-like.safetensors'}"
    with pytest.raises(ModelError, match=r"unexpected keys \['blocks\.0\.ls1\.gamma"):
        TimmEncoder(argument, "tiny")
    encoder = TimmEncoder(argument, "tiny", model_kwargs=kwargs)
    assert encoder.describe()["model_kwargs"] == {"init_values": 1e-5, "dynamic_img_size": True}
    x = torch.rand(1, 3, 32, 32)
    with torch.inference_mode():
        expected = reference(normalise(x, encoder.preprocessing))
        assert torch.allclose(ours(encoder, x), expected, atol=ATOL)
    # UNI's Hub config.json keeps these arguments at its top level (no "model_args"): a local copy loads as is
    config = json.loads((tiny_timm.extra["local_dir"] / "config.json").read_text())
    config.pop("model_args", None)
    config.update(img_size=32, patch_size=8, init_values=1.0, dynamic_img_size=True)
    copy = tmp_path / "uni-like"
    copy.mkdir()
    (copy / "config.json").write_text(json.dumps(config))
    (copy / "model.safetensors").write_bytes((tmp_path / "uni-like.safetensors").read_bytes())
    with torch.inference_mode():
        assert torch.allclose(ours(load_encoder(str(copy)), x), expected, atol=ATOL)


def test_hf_features_accept_transformers_4_tensors_and_5_outputs():
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    from robustpath.models.hf_adapter import _features

    projected = torch.ones(2, 8)
    assert _features(projected) is projected  # transformers 4.x get_image_features
    output = BaseModelOutputWithPooling(last_hidden_state=torch.zeros(2, 5, 16), pooler_output=projected)
    assert _features(output) is projected  # transformers 5.x: pooler_output is the projected embedding
