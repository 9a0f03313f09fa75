"""What a first-time user meets on the command line: help at 80 columns, one wording for every
unknown name, a dry run whose counts are the run's own, and gallery files named after the images."""
import json
import re

import numpy as np
import pytest
import typer.main
from engine_fixtures import cli
from PIL import Image

from corruptions.errors import unknown_name_message as corruptions_message
from robustpath.cli.main import app
from robustpath.errors import unknown_name_message
from robustpath.preview.gallery import gallery_file_name

WIDTH = 80
COMMANDS = ["eval", "models", "cache", "train", "finetune", "pretrain", "report", "corruptions", "corrupt"]
ERROR = re.compile(r"^error: unknown ([a-z][a-z -]*) '([^']*)'\.(?: Did you mean '([^']+)'\?)? Valid [a-z -]+: .+$")


def _help(*command: str) -> str:
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": str(WIDTH)}, terminal_width=WIDTH)
    assert result.exit_code == 0, result.output
    return result.output


def _words(text: str) -> str:
    """Whitespace collapsed; a line broken after a hyphen ('robustpath-' / 'runs') joined again."""
    return re.sub(r"(\w)- (\w)", r"\1-\2", " ".join(text.split()))


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_at_80_columns_is_complete_and_plain(command):
    text = _help(*([command] if command else []))
    assert "<bool>" not in text  # flags take no value
    assert max(map(len, text.splitlines())) <= WIDTH
    usage = text.splitlines()[0]
    assert usage.startswith("Usage: robustpath") and "{" not in usage and "}" not in usage
    group = typer.main.get_command(app)
    target = group.commands[command] if command else group
    for param in target.params:  # every help text whole: nothing cut, no [markup] eaten
        if getattr(param, "help", None):
            assert _words(param.help) in _words(text), param.name
    for paragraph in (target.help or "").split("\n\n"):
        assert _words(paragraph) in _words(text)
        _assert_greedy_wrapping(text, paragraph)
    if not command:
        for name in COMMANDS:  # the command list shows each summary whole
            line = next(line for line in text.splitlines() if line.strip().startswith(name + " "))
            assert not line.rstrip().endswith(("...", "…")), line


def _assert_greedy_wrapping(text: str, paragraph: str) -> None:
    """No line of a wrapped paragraph breaks early: the next word would not have fitted."""
    first = paragraph.split()[0]
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(first))
    block = []
    for line in lines[start:]:
        if not line.strip():
            break
        block.append(line.rstrip())
    for line, following in zip(block, block[1:]):
        assert len(line) + 1 + len(following.split()[0]) > WIDTH, (line, following)


@pytest.mark.parametrize(
    "args, kind, name, suggestion",
    [
        (["eval", "--stage", "middle"], "stage", "middle", None),
        (["eval", "-f", "pdf"], "format", "pdf", None),
        (["eval", "-c", "Blur", "--dry-run"], "corruption", "Blur", "gaussian_blur"),
        (["eval", "-c", "HUE", "--dry-run"], "corruption", "HUE", "hue"),
        (["eval", "-t", "Retrieval", "--dry-run"], "task", "Retrieval", "retrieval"),
        (["eval", "--pooling", "CLS"], "pooling", "CLS", "cls"),
        (["eval", "--gallery", "Corrupted"], "gallery", "Corrupted", "corrupted"),
        (["eval", "--preset", "Pathology", "--dry-run"], "preset", "Pathology", "pathology"),
        (["eval", "--templates", "IHC", "-t", "zeroshot", "--model", "openai-clip", "--dry-run"],
         "prompt template set", "IHC", "ihc"),
        (["corrupt", "demo-ihc", "--stage", "Post"], "stage", "Post", "post"),
        (["report", "somewhere", "-f", "Markdown"], "format", "Markdown", "markdown"),
    ],
)
def test_every_option_names_an_unknown_value_the_same_way(args, kind, name, suggestion, tmp_path):
    result = cli(*args, "--out", tmp_path / "out")
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Value error" not in result.output, result.output
    match = ERROR.match(lines[0].split(" (see '")[0].split(" (preset ")[0].split(" (or a path")[0])
    assert match and match.groups() == (kind, name, suggestion), lines[0]


def test_the_corruptions_package_words_unknown_names_as_robustpath_does():
    valid = ["brightness", "gaussian_blur", "hue", "markup"]
    for name in ("Blur", "gausian_blur", "HUE", "xyz", "mark"):
        assert corruptions_message("corruption", name, valid) == unknown_name_message("corruption", name, valid)


@pytest.mark.parametrize("options", [[], ["--gallery", "corrupted"]])
def test_dry_run_counts_the_images_and_passes_the_run_forwards(options, tiny_customvit_dir, tmp_path):
    """A 40 px model on 40 px images: blur after the resize coincides with blur before it."""
    common = [tiny_customvit_dir, "-c", "gaussian_blur", "-c", "hue", "-s", "1", "-s", "3", "-t", "retrieval",
              "-b", "48", "--no-cache", "--device", "cpu", "--quiet", *options]
    plan = cli("eval", *common, "--dry-run", "--json", "--out", tmp_path / "plan")
    assert plan.exit_code == 0, plan.output
    planned = json.loads(plan.stdout)
    run = cli("eval", *common, "--out", tmp_path / "run")
    assert run.exit_code == 0, run.output
    stats = json.loads((tmp_path / "run" / "run.json").read_text())["embedding"]
    assert planned["images_to_embed"] == stats["images_planned"] == stats["images_forwarded"]
    assert planned["forward_passes"] == stats["forward_passes"]
    assert planned["coinciding"] == 2 and len(planned["variants"]) == 6


def test_gallery_files_are_named_after_the_images_without_their_suffix(tmp_path):
    rng = np.random.default_rng(0)
    for label in ("brown", "blue"):
        (tmp_path / "data" / label).mkdir(parents=True)
        for index in range(2):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(tmp_path / "data" / label / f"cell{index}.png")
    result = cli("corrupt", tmp_path / "data", "--out", tmp_path / "out", "--images", "2", "-c", "hue", "-s", "1")
    assert result.exit_code == 0, result.output
    names = sorted(path.name for path in (tmp_path / "out").glob("*.png"))
    assert len(names) == 2 and all(re.fullmatch(r"gallery-(brown|blue)-cell\d\.png", name) for name in names), names
    assert gallery_file_name("a/cell0.png", set()) == "gallery-a-cell0.png"
    assert gallery_file_name("a/cell0.tif", {"gallery-a-cell0.png"}) == "gallery-a-cell0-2.png"
    assert gallery_file_name("a/cell.v2", set()) == "gallery-a-cell.v2.png"  # not an image suffix: kept


def test_the_quickstart_describes_what_the_demo_prints(tmp_path):
    """README: five tables, one per task; the demo model's blur-after-the-resize rows repeat the ones before."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    quickstart = " ".join(readme[readme.index("## Quickstart"):readme.index("### Which packages")].split())
    stated = re.search(r"It prints (\w+) tables, one per task", quickstart)
    assert stated, "the Quickstart says how many tables the demo prints"
    result = cli("eval", "-c", "gaussian_blur", "-s", "2", "--out", tmp_path / "demo", "--quiet", "--device", "cpu")
    assert result.exit_code == 0, result.output
    titles = [line for line in result.stdout.splitlines() if re.match(r"^\w+ · \w+ · customvit-demo", line)]
    assert {"three": 3, "five": 5}.get(stated.group(1)) == len(titles), titles
    notes = json.loads((tmp_path / "demo" / "run.json").read_text())["notes"]
    assert any("native 40 px (no resize)" in note and "repeat" in note for note in notes), notes
    assert "rows repeat the `gaussian_blur` rows" in quickstart
