"""The embedding code digest follows imports: what the sweep runs changes it, nothing else does."""
import shutil
from pathlib import Path

import corruptions
import pytest

import robustpath
from robustpath.embedding.code_digest import compute_code_digest, digest_modules


@pytest.fixture()
def copied_packages(tmp_path):
    """The robustpath and corruptions sources copied to ``tmp_path`` (editable without touching the checkout)."""
    packages = {}
    for name, module in (("robustpath", robustpath), ("corruptions", corruptions)):
        packages[name] = tmp_path / name
        shutil.copytree(Path(module.__file__).parent, packages[name], ignore=shutil.ignore_patterns("__pycache__"))
    return packages


def _edit(path: Path) -> None:
    path.write_text(path.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")


@pytest.mark.parametrize("relative", [
    "embedding/engine.py",  # a root
    "models/preprocess.py",  # imported inside a function of the engine
    "util/atomic.py",  # imported by a module the engine imports (embedding/cache.py)
    "models/hf_adapter.py",  # a registered model source's adapter
])
def test_a_module_the_embedding_code_imports_changes_the_digest(copied_packages, relative):
    before = compute_code_digest(packages=copied_packages)
    _edit(copied_packages["robustpath"] / relative)
    assert compute_code_digest(packages=copied_packages) != before


def test_a_corruption_op_changes_the_digest(copied_packages):
    before = compute_code_digest(packages=copied_packages)
    _edit(copied_packages["corruptions"] / "blur.py")
    assert compute_code_digest(packages=copied_packages) != before


@pytest.mark.parametrize("relative", ["output/report/markdown.py", "cli/main.py", "tasks/linear_probe.py"])
def test_an_unrelated_module_leaves_the_digest(copied_packages, relative):
    assert (copied_packages["robustpath"] / relative).is_file()
    before = compute_code_digest(packages=copied_packages)
    _edit(copied_packages["robustpath"] / relative)
    assert compute_code_digest(packages=copied_packages) == before


def test_the_digest_is_the_same_in_the_checkout_and_a_copy(copied_packages):
    assert compute_code_digest(packages=copied_packages) == compute_code_digest()


def test_imports_are_followed_by_hand_reference(tmp_path):
    """A small package whose closure is known by hand: absolute, relative, nested and parent imports."""
    root = tmp_path / "robustpath"
    files = {
        "__init__.py": "def face():\n    from robustpath import cli\n",  # a package: nested imports not followed
        "a.py": "from robustpath.b import thing\n\ndef later():\n    import robustpath.sub.c\n",
        "b.py": "from . import d\nimport numpy\n",
        "d.py": "",
        "cli.py": "",
        "unrelated.py": "import robustpath.a\n",
        "sub/__init__.py": "",
        "sub/c.py": "from ..d import x\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    found = digest_modules(["robustpath.a"], packages={"robustpath": root})
    assert list(found) == ["robustpath", "robustpath.a", "robustpath.b", "robustpath.d", "robustpath.sub",
                           "robustpath.sub.c"]
