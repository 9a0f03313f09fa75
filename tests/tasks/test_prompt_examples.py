"""The prompt files robustpath documents and ships expand into prompts that read as English.

A name put into a template must not repeat the template's own words ("DAB-positive
tissue" in "an image of {} tissue." gives "... tissue tissue."): checked on the
README's example, the module docstring's and the prompt files of examples/.
"""
import re
from pathlib import Path

import pytest

from robustpath.tasks.prompts import load_prompts

ROOT = Path(__file__).resolve().parents[2]
REPEATED_WORD = re.compile(r"\b(\w+)\s+\1\b", re.IGNORECASE)


def _readme_prompt_file(tmp_path: Path) -> Path:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Zero-shot prompts"):]
    block = section[section.index("```toml") + len("```toml"):section.index("```", section.index("```toml") + 7)]
    path = tmp_path / "readme_prompts.toml"
    path.write_text(block, encoding="utf-8")
    return path


def _docstring_prompt_file(tmp_path: Path) -> Path:
    import robustpath.tasks.prompts

    doc = robustpath.tasks.prompts.__doc__
    example = doc[doc.index("looks like::") + len("looks like::"):doc.index("Every class")]
    path = tmp_path / "docstring_prompts.toml"
    path.write_text("\n".join(line[4:] for line in example.splitlines()), encoding="utf-8")
    return path


def _classes(path: Path) -> tuple[str, ...]:
    import tomllib

    return tuple(tomllib.loads(path.read_text(encoding="utf-8"))["classes"])


@pytest.mark.parametrize("source", ["readme", "docstring", *sorted(p.name for p in (ROOT / "examples").rglob("*.toml"))])
def test_documented_prompts_read_without_repeated_words(source, tmp_path):
    if source == "readme":
        path = _readme_prompt_file(tmp_path)
    elif source == "docstring":
        path = _docstring_prompt_file(tmp_path)
    else:
        path = next((ROOT / "examples").rglob(source))
    classes = _classes(path) + (("extra",) if source == "readme" else ())  # a class left to its label
    prompts = load_prompts(path, classes)
    expanded = [prompt for per_class in prompts.prompts for prompt in per_class]
    assert expanded
    assert not [p for p in expanded if REPEATED_WORD.search(p)], [p for p in expanded if REPEATED_WORD.search(p)]
