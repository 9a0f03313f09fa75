"""Model specs: every form parses, folders are recognised by their files, bad names get help,
Hub names fail fast offline, and checkpoints that carry code are refused unexecuted."""
import json
import os
import time

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest  # noqa: E402

from robustpath.errors import ModelError, UsageError  # noqa: E402
from robustpath.models import hub, list_model_aliases, list_model_sources, load_encoder, resolve_model_spec  # noqa: E402
from robustpath.models.registry import parse_source_argument  # noqa: E402

HUB_SPECS = {  # spec -> the local form the error message must suggest
    "hf:facebook/dinov2-small": "hf:DIR",
    "dinov2-small": "hf:DIR",
    "plip": "hf:DIR",
    "open_clip:hf-hub:wisdomik/QuiltNet-B-32": "open_clip:local-dir:DIR",
    "openai-clip": "open_clip:ViT-B-16-quickgelu@DIR/",
    "pathclip": "open_clip:ViT-B-16-quickgelu@DIR/pathclip-base.pt",
    "timm:hf-hub:MahmoodLab/UNI": "timm:local-dir:DIR",
}


@pytest.fixture
def files(tmp_path):
    """Stand-in files for the path forms (parsing looks at names and existence only)."""
    (tmp_path / "w.safetensors").write_bytes(b"")
    (tmp_path / "w.pt").write_bytes(b"")
    oc = tmp_path / "oc"
    oc.mkdir()
    (oc / "open_clip_config.json").write_text(json.dumps({"model_cfg": {}}))
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps({"model_type": "dinov2"}))
    tm = tmp_path / "tm"
    tm.mkdir()
    (tm / "config.json").write_text(json.dumps({"architecture": "vit_small_patch16_224", "pretrained_cfg": {}}))
    return tmp_path


FORMS = [  # (spec template, source, form, weights kind)
    ("customvit:{p}/cv", "customvit", "dir", None),
    ("open_clip:ViT-B-16@openai", "open_clip", "arch", "tag"),
    ("open_clip:ViT-B-16@{p}/w.safetensors", "open_clip", "arch", "file"),
    ("open_clip:ViT-B-16@{p}/w.pt", "open_clip", "arch", "file"),
    ("open_clip:ViT-B-16@hf-hub:jamessyx/pathclip/pathclip-base.pt", "open_clip", "arch", "hub"),
    ("open_clip:hf-hub:wisdomik/QuiltNet-B-32", "open_clip", "hf-hub", None),
    ("open_clip:local-dir:{p}/oc", "open_clip", "local-dir", None),
    ("hf:facebook/dinov2-small", "hf", "hf-hub", None),
    ("hf:{p}/hf", "hf", "dir", None),
    ("timm:vit_small_patch16_224", "timm", "arch", None),
    ("timm:vit_small_patch16_224@{p}/w.safetensors", "timm", "arch", "file"),
    ("timm:vit_large_patch16_224@hf-hub:MahmoodLab/UNI/pytorch_model.bin", "timm", "arch", "hub"),
    ("timm:hf-hub:MahmoodLab/UNI", "timm", "hf-hub", None),
    ("timm:local-dir:{p}/tm", "timm", "local-dir", None),
]


@pytest.mark.parametrize("template, source, form, kind", FORMS)
def test_every_spec_form_parses(files, template, source, form, kind):
    spec = template.format(p=files)
    resolved, argument = resolve_model_spec(spec)
    assert resolved.name == source
    parts = parse_source_argument(source, argument, spec)
    assert (parts.form, parts.weights_kind) == (form, kind)


def test_importing_the_registry_imports_no_model_library():
    import subprocess
    import sys

    code = ("import sys, robustpath.models, robustpath.models.registry, robustpath.models.hub; "
            "print([m for m in ('torch', 'open_clip', 'transformers', 'timm') if m in sys.modules])")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


def test_display_names_are_short_and_stable(files):
    from robustpath.models.registry import _display_name
    from robustpath.models.sources import get_model_source

    assert _display_name(get_model_source("hf"), "facebook/dinov2-small") == "hf:facebook/dinov2-small"
    assert _display_name(get_model_source("hf"), str(files / "hf")) == "hf:hf"
    assert _display_name(get_model_source("open_clip"), f"ViT-B-16@{files / 'w.pt'}") == "open_clip:ViT-B-16@w.pt"
    assert _display_name(get_model_source("open_clip"), f"local-dir:{files / 'oc'}") == "open_clip:local-dir:oc"
    assert _display_name(get_model_source("timm"), "hf-hub:MahmoodLab/UNI") == "timm:hf-hub:MahmoodLab/UNI"


def test_aliases_resolve_and_are_listed():
    names = {alias.name: alias for alias in list_model_aliases()}
    assert {"customvit-demo", "pathclip", "plip", "openai-clip", "openai-clip-b32", "quiltnet", "dinov2-small",
            "dinov2-base", "dinov2-large", "dinov2-giant", "uni", "conch"} <= set(names)
    for alias in names.values():
        assert alias.licence
        assert alias.source in {s.name for s in list_model_sources()} or not alias.supported
        if alias.supported:
            assert resolve_model_spec(alias.name)[0].name == alias.source
    assert names["uni"].gated and not names["pathclip"].gated
    assert dict(names["pathclip"].options)["quick_gelu"] and dict(names["openai-clip"].options)["quick_gelu"]
    with pytest.raises(ModelError, match="not supported yet.*pip install"):
        load_encoder("conch")


def test_bare_folders_are_recognised_by_their_files(files, tiny_customvit_dir):
    assert resolve_model_spec(str(tiny_customvit_dir))[0].name == "customvit"
    assert resolve_model_spec(str(files / "oc"))[0].name == "open_clip"
    assert resolve_model_spec(str(files / "oc"))[1] == f"local-dir:{files / 'oc'}"
    assert resolve_model_spec(str(files / "hf"))[0].name == "hf"
    assert resolve_model_spec(str(files / "tm")) == (resolve_model_spec("timm:x")[0], f"local-dir:{files / 'tm'}")
    (files / "hf" / "open_clip_config.json").write_text("{}")
    with pytest.raises(UsageError, match="more than one model format; pass open_clip:local-dir:.* or hf:"):
        resolve_model_spec(str(files / "hf"))


def test_unrecognised_folder_and_bare_file_list_the_accepted_forms(files):
    (files / "empty").mkdir()
    for path in (files / "empty", files / "w.pt"):
        with pytest.raises(ModelError) as caught:
            resolve_model_spec(str(path))
        message = str(caught.value)
        for form in ("customvit:DIR", "open_clip:ARCH@TAG", "open_clip:local-dir:DIR", "hf:ORG/REPO", "timm:NAME[@FILE]"):
            assert form in message


@pytest.mark.parametrize("spec, suggestion", [
    ("dinov2-smal", "dinov2-small"),
    ("pathclp", "pathclip"),
    ("openclip:ViT-B-16@openai", "open_clip:ViT-B-16@openai"),
    ("hugging:facebook/dinov2-small", None),
    ("vinid/plip", "hf:vinid/plip"),
])
def test_unknown_names_get_did_you_mean(spec, suggestion):
    with pytest.raises(UsageError, match="unknown model") as caught:
        resolve_model_spec(spec)
    assert "Valid models: customvit:DIR" in str(caught.value)
    if suggestion:
        assert suggestion in str(caught.value)


@pytest.mark.parametrize("spec, error, pattern", [
    ("open_clip:ViT-B-16", UsageError, "names no weights.*@TAG"),
    ("hf:", UsageError, "nothing after 'hf:'"),
    ("open_clip:hf-hub:not-a-repo", UsageError, "not a Hub repository name"),
    ("open_clip:ViT-B-16@/no/such/weights.pt", ModelError, "weights file '/no/such/weights.pt' not found"),
    ("open_clip:local-dir:/no/such/dir", ModelError, "folder '/no/such/dir' not found"),
    ("timm:vit_small_patch16_224@", UsageError, "expected timm:NAME"),
    ("hf:./no/such/folder", ModelError, "neither an existing folder nor a Hub name"),
    ("/no/such/folder", ModelError, "model folder '/no/such/folder' not found. Accepted forms"),
])
def test_malformed_specs_name_what_was_expected(spec, error, pattern):
    with pytest.raises(error, match=pattern):
        resolve_model_spec(spec)


def test_pooling_is_validated_before_loading():
    with pytest.raises(UsageError, match="unknown pooling 'max'. Valid poolings: card, cls, mean, cls\\+mean"):
        load_encoder("hf:facebook/dinov2-small", pooling="max")
    with pytest.raises(UsageError, match="pooling applies to image-only"):
        load_encoder("openai-clip", pooling="mean")


@pytest.fixture
def empty_hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache, so a populated user cache cannot satisfy the names below."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))


@pytest.mark.parametrize("spec", list(HUB_SPECS))
def test_hub_names_fail_fast_offline_with_the_local_copy_recipe(empty_hub_cache, spec):
    import open_clip  # noqa: F401 - library import time is not what is measured
    import timm  # noqa: F401
    import transformers  # noqa: F401

    start = time.perf_counter()
    with pytest.raises(ModelError) as caught:
        load_encoder(spec)
    assert time.perf_counter() - start < 5.0
    message = str(caught.value)
    assert "HF_HUB_OFFLINE is set" in message and "hf download" in message and HUB_SPECS[spec] in message


def test_unreachable_hub_fails_fast_without_hf_hub_offline(empty_hub_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    probes = []
    monkeypatch.setattr(hub, "_probe", lambda url, timeout: probes.append(url) or False)
    monkeypatch.setattr(hub, "_probe_cache", {})
    start = time.perf_counter()
    for spec in ("hf:facebook/dinov2-small", "open_clip:hf-hub:wisdomik/QuiltNet-B-32"):
        with pytest.raises(ModelError, match="huggingface.co does not answer.*hf download"):
            load_encoder(spec)
    assert time.perf_counter() - start < 5.0
    assert probes == ["https://huggingface.co"]  # probed once, then cached


def test_probe_is_bounded_even_when_the_connection_hangs(monkeypatch):
    import urllib.request

    def hang(*args, **kwargs):
        time.sleep(3)
        raise OSError("timed out")

    monkeypatch.setattr(urllib.request, "urlopen", hang)
    start = time.perf_counter()
    assert hub._probe("https://huggingface.co", timeout=0.2) is False
    assert time.perf_counter() - start < 1.0


class _Payload:
    """Unpickling this calls open(marker, "w"): code that a checkpoint must never run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("source", ["open_clip", "timm"])
def test_pickle_that_carries_code_is_refused_and_not_run(tmp_path, source):
    import torch
    from model_fixtures import OPEN_CLIP_ARCH, TIMM_ARCH, register_open_clip_arch, register_timm_arch

    marker = tmp_path / "executed"
    evil = tmp_path / "evil.pt"
    torch.save({"weight": torch.zeros(2), "payload": _Payload(marker)}, evil)
    if source == "open_clip":
        register_open_clip_arch(tmp_path)
        spec = f"open_clip:{OPEN_CLIP_ARCH}@{evil}"
    else:
        register_timm_arch()
        spec = f"timm:{TIMM_ARCH}@{evil}"
    with pytest.raises(ModelError, match=r"contains pickled code \((io|builtins)\.open\).*nothing was run"):
        load_encoder(spec)
    assert not marker.exists()
    torch.load(evil, weights_only=False)  # the payload is real: an unsafe load does run it
    assert marker.exists()


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_torchscript_archive_is_refused(tmp_path):
    import torch
    from model_fixtures import OPEN_CLIP_ARCH, register_open_clip_arch

    register_open_clip_arch(tmp_path)
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(tmp_path / "scripted.pt"))
    with pytest.raises(ModelError, match="TorchScript archive"):
        load_encoder(f"open_clip:{OPEN_CLIP_ARCH}@{tmp_path / 'scripted.pt'}")
