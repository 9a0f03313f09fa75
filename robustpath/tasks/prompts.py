"""Class names, synonyms and prompt templates for zero-shot classification.

A prompt file (TOML or JSON) looks like::

    templates = "pathology"            # a built-in set, or a list of "…{}…" strings
    [classes]
    tumor = ["tumor", "carcinoma"]     # names/synonyms, each put into every template
    [classes.normal]
    names = ["normal lung"]
    prompts = ["an H&E image of normal lung tissue."]   # full prompts, used as they are

Every class of the dataset must appear.  The text embedding of a class is the
mean of its prompts' L2-normalised embeddings, normalised again (a prompt ensemble).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from robustpath.errors import UsageError, unknown_name_message

TEMPLATE_SETS: dict[str, tuple[str, ...]] = {
    # PLIP's zero-shot prompt form
    "plip": ("An H&E image patch of {}.",),
    "pathology": (
        "An H&E image patch of {}.",
        "a histopathology image of {}.",
        "a photomicrograph of {}.",
        "an image of {} tissue.",
        "a whole slide image patch showing {}.",
    ),
    "ihc": (
        "an immunohistochemistry image of {}.",
        "an IHC image patch of {}.",
        "a DAB-stained histology image of {}.",
    ),
    "clip": ("a photo of {}.",),
}
DEFAULT_TEMPLATES = "pathology"


@dataclass(frozen=True)
class ClassPrompts:
    """Every prompt of every class, in the dataset's class order."""

    classes: tuple[str, ...]
    prompts: tuple[tuple[str, ...], ...]
    templates: tuple[str, ...]

    def as_dict(self) -> dict:
        return {"templates": list(self.templates), "prompts": dict(zip(self.classes, map(list, self.prompts)))}


def get_template_set(name: str) -> tuple[str, ...]:
    if name in TEMPLATE_SETS:
        return TEMPLATE_SETS[name]
    raise UsageError(unknown_name_message("prompt template set", name, TEMPLATE_SETS))


def check_template(template: str, where: str) -> str:
    """A template holds the class name's place as ``{}`` exactly once; literal braces are written ``{{`` / ``}}``."""
    import string

    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(template)
                  if name is not None]
    except ValueError as exc:  # a lone '{' or '}'
        raise UsageError(f"{where}: template {template!r} has a stray brace ({exc}); write {{}} once where the class "
                         "name goes and {{ or }} for a literal brace") from None
    if fields != [("", "", None)]:
        placeholders = ", ".join("{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
                                 for name, spec, conversion in fields) or "none"
        raise UsageError(f"{where}: template {template!r} must hold {{}} exactly once, where the class name goes "
                         f"(found {placeholders}); write {{{{ or }}}} for a literal brace")
    return template


def _templates_from(value, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return get_template_set(value)
    if isinstance(value, list) and value and all(isinstance(t, str) for t in value):
        return tuple(check_template(t, where) for t in value)
    raise UsageError(f"{where}: 'templates' must be a built-in set name or a list of strings containing '{{}}'")


def default_class_names(label: str) -> tuple[str, ...]:
    """A dataset label as words: 'dab-positive' → ('dab positive',)."""
    return (label.replace("_", " ").replace("-", " ").strip(),)


def build_prompts(classes: tuple[str, ...], templates=DEFAULT_TEMPLATES, overrides: dict | None = None,
                  where: str = "prompts") -> ClassPrompts:
    """Expand names × templates (plus any full prompts) for each class."""
    template_list = _templates_from(templates, where)
    overrides = overrides or {}
    unknown = sorted(set(overrides) - set(classes))
    if unknown:
        raise UsageError(f"{where}: class(es) {unknown} are not in the dataset; its classes are {list(classes)}")
    all_prompts = []
    for name in classes:
        entry = overrides.get(name, list(default_class_names(name)))
        if isinstance(entry, str):
            entry = [entry]
        if isinstance(entry, list):
            entry = {"names": entry}
        if not isinstance(entry, dict) or set(entry) - {"names", "prompts"}:
            raise UsageError(f"{where}: classes.{name} must be a list of names or a table with 'names' and/or 'prompts'")
        names, full = entry.get("names", []), entry.get("prompts", [])
        if not all(isinstance(t, str) and t.strip() for t in [*names, *full]) or not (names or full):
            raise UsageError(f"{where}: classes.{name} needs at least one non-empty name or prompt")
        prompts = [template.format(n) for n in names for template in template_list] + list(full)
        all_prompts.append(tuple(dict.fromkeys(prompts)))
    return ClassPrompts(tuple(classes), tuple(all_prompts), template_list)


def load_prompts(path: Path | None, classes: tuple[str, ...], templates: str | None = None) -> ClassPrompts:
    """Read a prompt file (TOML or JSON), or use the defaults when ``path`` is None."""
    if path is None:
        return build_prompts(classes, templates or DEFAULT_TEMPLATES)
    from robustpath.util.settings_files import read_settings_file

    path = Path(path)
    data = read_settings_file(path, "--prompts")
    if not isinstance(data, dict) or not isinstance(data.get("classes", {}), dict):
        raise UsageError(f"--prompts: '{path}' must hold a 'classes' table")
    extra = sorted(set(data) - {"templates", "classes"})
    if extra:
        raise UsageError(f"--prompts: '{path}' has unknown key(s) {extra}; expected 'templates' and 'classes'")
    return build_prompts(classes, templates or data.get("templates", DEFAULT_TEMPLATES), data.get("classes"), f"'{path}'")
