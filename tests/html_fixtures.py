"""Run folders with report.html for the HTML report tests, built once per session.

Import into a test module: ``from html_fixtures import html_runs`` (with ``tiny_open_clip``
and ``tiny_customvit_dir``).  ``html_runs`` holds:

- ``clip``: a tiny open_clip model (32 px input) on demo-ihc (40 px): linear probe,
  retrieval and zero-shot under Gaussian blur before and after the resize, markup and
  brightness at severities 2 and 4, embeddings saved;
- ``folder``: the tiny CustomViT on an image folder of demo-ihc patches (PNG files), 3 classes;
- ``merged``: ``robustpath report`` of both.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from engine_fixtures import cli, torch_threads

SWEEP = ["-c", "gaussian_blur", "-c", "markup", "-c", "brightness", "-s", "2", "-s", "4", "--device", "cpu",
         "-b", "32", "--quiet"]
FOLDER_IMAGES_PER_CLASS = 20


@dataclass(frozen=True)
class HtmlRuns:
    clip: Path
    folder: Path
    merged: Path
    data: Path  # the image folder of the ``folder`` run


def write_demo_folder(root: Path, per_class: int = FOLDER_IMAGES_PER_CLASS) -> Path:
    """ROOT/<class>/<id>.png: the first ``per_class`` demo-ihc patches of each class."""
    from PIL import Image

    from robustpath.data import load_dataset

    demo = load_dataset("demo-ihc")
    written: dict[str, int] = {}
    for index, sample_id in enumerate(demo.sample_ids):
        name = demo.classes[int(demo.labels[index])]
        if written.get(name, 0) >= per_class:
            continue
        written[name] = written.get(name, 0) + 1
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(demo.read_image(index)).save(folder / f"{sample_id.split('/')[-1]}.png")
    return root


@pytest.fixture(scope="session")
def html_runs(tiny_open_clip, tiny_customvit_dir, tmp_path_factory) -> HtmlRuns:
    base = tmp_path_factory.mktemp("html-report")
    data = write_demo_folder(base / "patches")
    with pytest.MonkeyPatch.context() as patch, torch_threads(1):
        patch.setenv("ROBUSTPATH_CACHE_DIR", str(base / "cache"))
        patch.setenv("OMP_NUM_THREADS", "1")
        clip = cli("eval", "--model", tiny_open_clip.spec, "--out", base / "clip", *SWEEP,
                   "-t", "linear_probe", "-t", "retrieval", "-t", "zeroshot", "--save-embeddings")
        assert clip.exit_code == 0, clip.output
        folder = cli("eval", f"customvit:{tiny_customvit_dir}", "--data", data, "--out", base / "folder", *SWEEP,
                     "-t", "linear_probe", "-t", "retrieval", "--html-max-images", "3")
        assert folder.exit_code == 0, folder.output
        merged = cli("report", base / "clip", base / "folder", "--out", base / "merged", "--no-plots")
        assert merged.exit_code == 0, merged.output
    return HtmlRuns(base / "clip", base / "folder", base / "merged", data)


VOID_TAGS = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"})


@dataclass
class Node:
    """An element of a parsed page: tag, attributes, children (text as str)."""

    tag: str
    attrs: dict
    children: list

    def text(self) -> str:
        return "".join(child if isinstance(child, str) else child.text() for child in self.children)

    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    def find_all(self, tag: str | None = None, *, cls: str | None = None, **attrs) -> list["Node"]:
        """Descendants (document order) with ``tag``, class ``cls`` and attribute values ``attrs`` (``data_x`` = data-x)."""
        wanted = {name.replace("_", "-"): value for name, value in attrs.items()}
        found = []
        for child in self.children:
            if isinstance(child, str):
                continue
            if ((tag is None or child.tag == tag) and (cls is None or cls in child.classes())
                    and all(child.attrs.get(name) == value for name, value in wanted.items())):
                found.append(child)
            found += child.find_all(tag, cls=cls, **attrs)
        return found

    def find(self, tag: str | None = None, **kwargs) -> "Node":
        found = self.find_all(tag, **kwargs)
        assert found, f"no <{tag}> with {kwargs}"
        return found[0]


def parse_html(text: str) -> Node:
    """The page as a tree of Nodes (stdlib html.parser; tolerant of void tags)."""
    from html.parser import HTMLParser

    root = Node("#document", {}, [])
    stack = [root]

    class Builder(HTMLParser):
        def handle_starttag(self, tag, attrs):
            node = Node(tag, {name: value or "" for name, value in attrs}, [])
            stack[-1].children.append(node)
            if tag not in VOID_TAGS:
                stack.append(node)

        def handle_startendtag(self, tag, attrs):
            stack[-1].children.append(Node(tag, {name: value or "" for name, value in attrs}, []))

        def handle_endtag(self, tag):
            for depth in range(len(stack) - 1, 0, -1):
                if stack[depth].tag == tag:
                    del stack[depth:]
                    return

        def handle_data(self, data):
            stack[-1].children.append(data)

    Builder(convert_charrefs=True).feed(text)
    return root


def table_rows(table: Node) -> list[list[str]]:
    """The body rows of a report table: each cell's full value (data-value) or its text."""
    rows = []
    for row in table.find("tbody").find_all("tr"):
        rows.append([cell.attrs["data-value"] if "data-value" in cell.attrs else cell.text() for cell in row.find_all("td")])
    return rows


def image_pool(page: Node) -> dict[str, str]:
    """The page's images: key → data URI."""
    import json

    return json.loads(page.find("script", id="rp-images").text())


def decode_image(uri: str):
    """A data: URI → (H, W, 3) uint8."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    header, data = uri.split(",", 1)
    assert header.startswith("data:image/") and header.endswith(";base64")
    with Image.open(io.BytesIO(base64.b64decode(data))) as image:
        return np.asarray(image.convert("RGB"))
