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


def test_imports_in_every_kind_of_block_are_found_as_ast_walk_finds_them(tmp_path):
    """Imports nested in functions, classes, if/else, try/except/finally, with, for/while and match cases."""
    import ast

    from robustpath.embedding.code_digest import _imported_names

    source = (
        "import m0\n"
        "def f():\n    import m1\n    def g():\n        from m2 import x\n"
        "class C:\n    import m3\n    def method(self):\n        import m4\n"
        "if flag:\n    import m5\nelif other:\n    import m6\nelse:\n    import m7\n"
        "try:\n    import m8\nexcept ImportError:\n    import m9\nelse:\n    import m10\nfinally:\n    import m11\n"
        "with open('x') as handle:\n    import m12\n"
        "for item in items:\n    import m13\nelse:\n    import m14\n"
        "while True:\n    import m15\n"
        "match value:\n    case 1:\n        import m16\n    case _:\n        import m17\n"
        "async def h():\n    async with lock:\n        import m18\n    async for i in items:\n        import m19\n"
        "lambda: __import__('not_a_statement')\n"
    )
    tree = ast.parse(source)
    expected = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    expected |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)} | {"m2.x"}
    assert expected == {f"m{i}" for i in range(20)} | {"m2.x"}
    assert _imported_names(tree, "robustpath.mod", False, nested=True) == expected
