"""Contract of the model-source registry, parametrised over every registered source.

A new source is checked here without being added to any list: its target loads and takes
its declared options, its spec forms parse by its grammar, an unrelated folder is not taken
for one of its models, and the local files of its arguments reach the cache index.
"""
import importlib
import inspect
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402

from robustpath.embedding.cache_index import model_handle  # noqa: E402
from robustpath.errors import RobustPathError, UsageError  # noqa: E402
from robustpath.models import resolve_model_spec  # noqa: E402
from robustpath.models.registry import parse_source_argument  # noqa: E402
from robustpath.models.sources import (  # noqa: E402
    GRAMMARS, ModelSource, get_model_source, list_model_sources, register_source,
)

SOURCES = [source.name for source in list_model_sources()]


def _target(source: ModelSource):
    module_name, attr = source.target.split(":")
    return getattr(importlib.import_module(module_name), attr)


@pytest.mark.parametrize("name", SOURCES)
def test_source_target_takes_its_declared_options(name):
    source = get_model_source(name)
    target = _target(source)
    parameters = inspect.signature(target).parameters
    assert len(parameters) >= 2  # called as target(argument, name, **options)
    for option in source.options:
        assert option in parameters, f"{name}: option '{option}' is not a parameter of {source.target}"
    declared_text = getattr(target, "has_text", None)
    if isinstance(declared_text, bool):
        assert declared_text is source.has_text


@pytest.mark.parametrize("name", SOURCES)
def test_source_declarations_are_complete(name):
    source = get_model_source(name)
    assert source.grammar in GRAMMARS
    assert all(form.strip().startswith(f"{name}:") for form in source.accepts.split(","))
    assert source.folder_file and source.folder_kind
    assert source.has_text in (True, False) or source.text_in_folder is not None


@pytest.mark.parametrize("name", SOURCES)
def test_an_unrelated_folder_is_not_one_of_its_models(name, tmp_path):
    (tmp_path / "notes.txt").write_text("not a model", encoding="utf-8")
    (tmp_path / "config.json").write_text('{"comment": "no model here"}', encoding="utf-8")
    assert not get_model_source(name).recognise(tmp_path, {"comment": "no model here"})


@pytest.mark.parametrize("name", SOURCES)
def test_spec_without_argument_is_refused_with_its_forms(name):
    with pytest.raises(UsageError, match="nothing after"):
        resolve_model_spec(f"{name}:")


@pytest.mark.parametrize("name", SOURCES)
def test_local_files_of_an_argument_enter_the_cache_index(name, tmp_path):
    """The folder (or weights file) an argument names is listed, with size, in the model's index handle."""
    source = get_model_source(name)
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / source.folder_file).write_text("{}", encoding="utf-8")
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"0123456789")
    if source.grammar == "arch":
        arguments = {f"local-dir:{folder}": folder / source.folder_file, f"arch@{weights}": weights}
    else:
        arguments = {str(folder): folder / source.folder_file}
    for argument, expected in arguments.items():
        parse_source_argument(name, argument)
        handle = model_handle(f"{name}:{argument}")
        assert handle["source"] == name and handle["argument"] == argument
        listed = {path: size for path, size, _ in handle["files"]}
        assert listed.get(str(expected.resolve())) == expected.stat().st_size


@pytest.mark.parametrize("name", SOURCES)
def test_a_missing_folder_or_file_is_a_one_line_error(name, tmp_path):
    source = get_model_source(name)
    missing = tmp_path / "absent"
    argument = f"local-dir:{missing}" if source.grammar == "arch" else str(missing)
    if source.grammar == "dir":  # a plain folder argument is checked by the loader when it reads it
        with pytest.raises(RobustPathError, match="absent"):
            _target(source)(argument, f"{name}:absent")
        return
    with pytest.raises(RobustPathError, match="absent"):
        parse_source_argument(name, argument)


def test_unknown_source_suggests_the_closest_name():
    with pytest.raises(UsageError, match="Did you mean 'open_clip'"):
        get_model_source("openclip")


def test_a_source_registered_twice_raises():
    with pytest.raises(ValueError, match="already registered"):
        register_source(get_model_source(SOURCES[0]))
