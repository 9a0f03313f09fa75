"""The sweep engine against a direct computation, its store, and its fallbacks (OOM, compile)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from engine_fixtures import customvit, one_thread, small_dataset  # noqa: F401  (fixtures)
from model_fixtures import tiny_open_clip  # noqa: F401  (fixture)

import corruptions
from robustpath.embedding import engine
from robustpath.embedding.cache import (
    EmbeddingKeys,
    EmbeddingStore,
    StoreChain,
    cache_info,
    clear_cache,
    dataset_content_digest,
    entry_bytes,
    forward_pass_layout,
    read_entry,
    sample_digests,
)
from robustpath.models import load_encoder
from robustpath.models.preprocess import normalise, resize_to_input
from robustpath.util.progress import SilentProgress, notify
from robustpath.variants import Variant

CPU = torch.device("cpu")
PRESET = corruptions.load_preset("pathology")
VARIANTS = [Variant("hue", 2, "pre"), Variant("markup", 3, "pre"), Variant("gaussian_blur", 2, "pre"),
            Variant("gaussian_blur", 2, "post"), Variant("contrast", 4, "post")]


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread):
    """Every test of this module on one torch thread."""


@pytest.fixture(scope="module")
def open_clip_encoder(tiny_open_clip):  # noqa: F811
    return load_encoder(tiny_open_clip.spec)


def direct_embeddings(encoder, dataset, variant, indices, seed=0):
    """One variant, all ``indices`` at once, with the corruptions package and the model's own geometry."""
    x = torch.from_numpy(np.stack([dataset.read_image(int(i)) for i in indices])).permute(0, 3, 1, 2).float() / 255
    prep = encoder.preprocessing
    bound = corruptions.get_corruption(variant.corruption, PRESET) if not variant.is_clean else None
    generators = None
    if bound is not None and bound.random:
        ids = [dataset.sample_ids[int(i)] for i in indices]
        generators = bound.sample_generators(seed, ids, variant.severity)
    if bound is not None and variant.stage == "pre":
        x = bound(x, variant.severity, generator=generators)
    x = resize_to_input(x, prep)
    if bound is not None and variant.stage == "post":
        x = bound(x, variant.severity, generator=generators)
    with torch.inference_mode():
        return encoder.encode_image(normalise(x, prep)).float().numpy()


def sweep(encoder, dataset, variants=VARIANTS, **options):
    options = {"preset": PRESET, "seed": 0, "device": CPU, "batch_size": 7, **options}
    return engine.compute_embeddings(encoder, dataset, variants, **options)


def make_keys(encoder, dataset, **changes):
    facts = dict(
        model={"weights_sha256": "x", "source": "test"}, preprocessing=encoder.preprocessing.as_dict(),
        native_size=tuple(dataset.native_size), digests=sample_digests(dataset), sample_ids=dataset.sample_ids,
        seed=0, versions={"robustpath": "test"}, device="cpu", precision="fp32", compiled=False,
    )
    return EmbeddingKeys(**{**facts, **changes})


@pytest.mark.parametrize("model", ["customvit", "open_clip_encoder"])
def test_sweep_matches_direct_computation(model, small_dataset, request):
    """Batch size 7 mixes variants in one forward pass; each variant must equal its own direct computation."""
    encoder = request.getfixturevalue(model)
    result = sweep(encoder, small_dataset)
    test = small_dataset.indices("test")
    everything = np.arange(len(small_dataset))
    np.testing.assert_allclose(result.clean, direct_embeddings(encoder, small_dataset, Variant("none", 0, "none"), everything),
                               rtol=0, atol=2e-5)
    for variant in VARIANTS:
        expected = direct_embeddings(encoder, small_dataset, variant, test)
        np.testing.assert_allclose(result.variants[variant.key], expected, rtol=0, atol=2e-5, err_msg=variant.key)
    assert result.stats["images_forwarded"] == result.stats["images_planned"]
    assert result.stats["forward_passes"] == -(-result.stats["images_planned"] // 7)


def test_pre_and_post_coincide_when_the_input_is_the_native_size(customvit, small_dataset):
    result = sweep(customvit, small_dataset)
    pre, post = result.variants["gaussian_blur/2/pre"], result.variants["gaussian_blur/2/post"]
    assert pre is post  # computed once, shared
    assert result.stats["distinct_pipelines"] == 1 + len(VARIANTS) - 1
    assert result.seconds["gaussian_blur/2/post"] == 0.0


def test_batch_size_does_not_change_embeddings(customvit, small_dataset):
    one = sweep(customvit, small_dataset, batch_size=1)
    many = sweep(customvit, small_dataset, batch_size=64)
    np.testing.assert_allclose(one.clean, many.clean, rtol=0, atol=1e-6)
    for key in one.variants:
        np.testing.assert_allclose(one.variants[key], many.variants[key], rtol=0, atol=1e-6)


def test_corrupted_training_embeddings(customvit, small_dataset):
    result = sweep(customvit, small_dataset, variants=VARIANTS[:2], corrupt_training=True)
    train = small_dataset.indices("train")
    for variant in VARIANTS[:2]:
        np.testing.assert_allclose(result.train_variants[variant.key],
                                   direct_embeddings(customvit, small_dataset, variant, train), rtol=0, atol=2e-5)


def test_store_serves_every_entry_on_a_second_sweep(customvit, small_dataset, tmp_path):
    store = StoreChain([EmbeddingStore(tmp_path / "cache")])
    keys = make_keys(customvit, small_dataset)
    first = sweep(customvit, small_dataset, store=store, keys=keys)
    assert first.stats["entries_written"] == 1 + 4 + 1  # clean + 4 pipelines on test, clean on train
    again = sweep(customvit, small_dataset, store=StoreChain([EmbeddingStore(tmp_path / "cache")]), keys=keys)
    assert again.stats["forward_passes"] == 0 and again.reused == {k: "cache" for k in ["none/0/none", *first.variants]}
    np.testing.assert_array_equal(first.clean, again.clean)
    for key in first.variants:
        np.testing.assert_array_equal(first.variants[key], again.variants[key])
    # drop one entry: only that pipeline is computed again, in the same forward passes as before
    victim = next(path for path in (tmp_path / "cache").rglob("*.safetensors") if _entry_key(path)["pipeline"].get("corruption") == "hue")
    victim.unlink()
    partial = sweep(customvit, small_dataset, store=StoreChain([EmbeddingStore(tmp_path / "cache")]), keys=keys)
    assert "hue/2/pre" not in partial.reused and len(partial.reused) == len(first.variants)
    assert 0 < partial.stats["images_forwarded"] < first.stats["images_forwarded"]
    np.testing.assert_array_equal(partial.variants["hue/2/pre"], first.variants["hue/2/pre"])


def _entry_key(path):
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as handle:
        return json.loads(handle.metadata()["robustpath_key"])


def test_keys_change_with_everything_that_changes_an_embedding(customvit, small_dataset):
    keys = make_keys(customvit, small_dataset)
    test = small_dataset.indices("test")
    blur = {"corruption": "gaussian_blur", "operation": "gaussian_blur", "parameter": 1.0, "severity": 2, "stage": "pre"}
    passes = forward_pass_layout(14, len(test), 7, 200)
    base = keys.key(blur, test, random=False, passes=passes)
    assert keys.key(dict(blur), test.copy(), random=False, passes=dict(passes)) == base
    variants_of_base = [
        keys.key({**blur, "parameter": 1.5}, test, random=False, passes=passes),
        keys.key({**blur, "stage": "post"}, test, random=False, passes=passes),
        keys.key(blur, test[:-1], random=False, passes=passes),
        keys.key(blur, test[::-1], random=False, passes=passes),
        make_keys(customvit, small_dataset, precision="bf16").key(blur, test, random=False, passes=passes),
        make_keys(customvit, small_dataset, model={"weights_sha256": "y", "source": "test"}).key(
            blur, test, random=False, passes=passes),
        make_keys(customvit, small_dataset, versions={"robustpath": "other"}).key(blur, test, random=False, passes=passes),
        # other forward passes: batch size, place in the first pass, a shorter last pass reached
        keys.key(blur, test, random=False, passes=forward_pass_layout(14, len(test), 13, 200)),
        keys.key(blur, test, random=False, passes=forward_pass_layout(15, len(test), 7, 200)),
        keys.key(blur, test, random=False, passes=forward_pass_layout(14, len(test), 7, 14 + len(test))),
    ]
    changed = list(sample_digests(small_dataset))
    changed[int(test[0])] = b"\0" * 32
    variants_of_base.append(make_keys(customvit, small_dataset, digests=changed).key(blur, test, random=False, passes=passes))
    assert all(key != base for key in variants_of_base)
    # the seed only matters for random corruptions
    assert make_keys(customvit, small_dataset, seed=5).key(blur, test, random=False, passes=passes) == base
    markup = {**blur, "corruption": "markup", "operation": "markup"}
    assert (make_keys(customvit, small_dataset, seed=5).key(markup, test, random=True, passes=passes)
            != keys.key(markup, test, random=True, passes=passes))


def test_forward_pass_layout_by_hand():
    # 30 items in passes of 7: [0, 7) [7, 14) [14, 21) [21, 28) [28, 30)
    assert forward_pass_layout(10, 5, 7, 30) == {"batch_size": 7, "offset": 3, "last_pass": None}
    assert forward_pass_layout(25, 5, 7, 30) == {"batch_size": 7, "offset": 4, "last_pass": 2}
    assert forward_pass_layout(21, 7, 7, 28) == {"batch_size": 7, "offset": 0, "last_pass": None}  # a full last pass


def test_entries_are_checked_against_their_key(tmp_path):
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    path = tmp_path / "entry.safetensors"
    path.write_bytes(entry_bytes({"a": 1}, array))
    found, problem = read_entry(path, '{"a":1}')
    np.testing.assert_array_equal(found, array)
    assert problem is None
    assert read_entry(path, '{"a":2}') == (None, "made for another key")
    assert read_entry(tmp_path / "absent.safetensors", '{"a":1}') == (None, None)
    path.write_bytes(path.read_bytes()[:-5])  # truncated
    assert read_entry(path, '{"a":1}') == (None, "unreadable")


def test_content_digest_from_sample_digests(small_dataset):
    assert dataset_content_digest(small_dataset, sample_digests(small_dataset)) == small_dataset.content_digest()


def test_cache_info_and_clear(customvit, small_dataset, tmp_path):
    store = EmbeddingStore(tmp_path)
    sweep(customvit, small_dataset, variants=VARIANTS[:1], store=StoreChain([store]), keys=make_keys(customvit, small_dataset))
    info = cache_info(tmp_path)
    files = list(tmp_path.rglob("*.safetensors"))
    assert info.entries == len(files) == 3 and info.bytes == sum(f.stat().st_size for f in files)
    assert "3 embedding entries" in info.describe()
    assert clear_cache(tmp_path).entries == 3 and cache_info(tmp_path).entries == 0


class Notices(SilentProgress):
    def __init__(self):
        self.messages = []

    def notice(self, message):
        self.messages.append(message)


class FlakyEncoder:
    """Raises torch.OutOfMemoryError for forward passes larger than ``limit`` images."""

    def __init__(self, encoder, limit):
        self.encoder, self.limit, self.sizes = encoder, limit, []
        self.embed_dim, self.preprocessing, self.name = encoder.embed_dim, encoder.preprocessing, encoder.name

    def to(self, device):
        return self

    def encode_image(self, x):
        self.sizes.append(len(x))
        if len(x) > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return self.encoder.encode_image(x)


def test_out_of_memory_halves_the_batch_and_keeps_results(customvit, small_dataset, tmp_path):
    reference = sweep(customvit, small_dataset, batch_size=32)
    progress = Notices()
    flaky = FlakyEncoder(customvit, limit=10)
    store = EmbeddingStore(tmp_path)
    result = sweep(flaky, small_dataset, batch_size=32, progress=progress, store=StoreChain([store]),
                   keys=make_keys(customvit, small_dataset))
    assert result.stats["batch_size"] == 8 and max(flaky.sizes[2:]) <= 8
    assert [message.split(";")[0] for message in progress.messages] == [
        "out of memory at batch size 32: retrying with batch size 16",
        "out of memory at batch size 16: retrying with batch size 8"]
    assert "re-run with --batch-size 8 to store them" in progress.messages[-1]
    assert result.notes == progress.messages
    # what finished after the first shrink went through other forward passes than its keys describe: not stored
    assert result.stats["entries_written"] == store.writes < result.stats["distinct_pipelines"] + 1
    np.testing.assert_allclose(result.clean, reference.clean, rtol=0, atol=1e-6)
    for key in reference.variants:
        np.testing.assert_allclose(result.variants[key], reference.variants[key], rtol=0, atol=1e-6)
    with pytest.raises(engine.OutOfMemory, match="even with one image"):
        sweep(FlakyEncoder(customvit, limit=0), small_dataset, batch_size=2)


def test_compile_failure_falls_back_to_eager(customvit, small_dataset, monkeypatch):
    def broken_compile(function, **kwargs):
        def compiled(x):
            raise RuntimeError("no C++ compiler\nmore detail")
        return compiled

    monkeypatch.setattr(torch, "compile", broken_compile)
    progress = Notices()
    result = sweep(customvit, small_dataset, variants=VARIANTS[:2], compile=True, progress=progress)
    reference = sweep(customvit, small_dataset, variants=VARIANTS[:2])
    assert result.stats["compiled"] is False
    assert progress.messages == ["torch.compile failed (RuntimeError: no C++ compiler); running without compilation"]
    np.testing.assert_array_equal(result.clean, reference.clean)


def test_notify_accepts_reporters_without_notice():
    class Old:
        def start(self, *a): ...

    notify(Old(), "ignored")  # no AttributeError
    notify(None, "ignored")
    progress = Notices()
    notify(progress, "hello")
    assert progress.messages == ["hello"]


def test_out_of_memory_while_allocating_the_input_buffers_halves_the_batch(customvit, small_dataset, monkeypatch):
    """The input buffers of a large batch can alone exceed the device memory (seen on a GPU under a cap)."""
    reference = sweep(customvit, small_dataset, batch_size=8)
    allocate = engine._Sweep._allocate
    sizes = []

    def capped(self):
        sizes.append(self.capacity)
        if self.capacity > 8:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.15 GiB (simulated)")
        allocate(self)

    monkeypatch.setattr(engine._Sweep, "_allocate", capped)
    progress = Notices()
    result = sweep(customvit, small_dataset, batch_size=32, progress=progress)
    assert sizes == [32, 16, 8] and result.stats["batch_size"] == 8
    assert progress.messages == ["out of memory at batch size 32: retrying with batch size 16",
                                 "out of memory at batch size 16: retrying with batch size 8"]
    np.testing.assert_allclose(result.clean, reference.clean, rtol=0, atol=1e-6)
    for key in reference.variants:
        np.testing.assert_allclose(result.variants[key], reference.variants[key], rtol=0, atol=1e-6)


def test_input_buffers_are_no_larger_than_the_images_to_embed(customvit, small_dataset, monkeypatch):
    rows = []
    allocate = engine._Sweep._allocate

    def recording(self):
        allocate(self)
        rows.append(len(self.buffers[0]))

    monkeypatch.setattr(engine._Sweep, "_allocate", recording)
    result = sweep(customvit, small_dataset, batch_size=100_000)
    assert rows == [result.stats["images_forwarded"]]
