"""Every function of the robustpath package reads at once: cyclomatic complexity at most 15 (radon)."""
from pathlib import Path

import pytest

import robustpath

LIMIT = 15


def _blocks(source: str):
    from radon.complexity import cc_visit

    for block in cc_visit(source):
        yield block
        yield from getattr(block, "methods", [])  # a class's methods


def test_no_function_of_the_package_is_more_complex_than_the_limit():
    pytest.importorskip("radon")
    package = Path(robustpath.__file__).parent
    too_complex = [
        f"{path.relative_to(package.parent)}:{block.lineno} {block.name} ({block.complexity})"
        for path in sorted(package.rglob("*.py"))
        for block in _blocks(path.read_text(encoding="utf-8"))
        if block.complexity > LIMIT
    ]
    assert not too_complex, f"cyclomatic complexity above {LIMIT}: " + "; ".join(too_complex)


def test_the_check_finds_a_complex_function():
    branches = "\n".join(f"    if x == {i}:\n        return {i}" for i in range(LIMIT + 1))
    source = f"def f(x):\n{branches}\n    return -1\n"
    assert max(block.complexity for block in _blocks(source)) > LIMIT
