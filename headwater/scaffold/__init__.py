"""``headwater transforms new NAME``: scaffold an installable transform plugin package.

The package it writes, ``headwater-<name>/``::

    pyproject.toml              the ``headwater.transforms`` entry point: <name> = "headwater_<name>:make"
    README.md
    src/headwater_<name>/__init__.py   a keyword-only factory ``make`` with its docstring
    tests/test_<name>.py        tests that pass as generated

The templates are the ``*.tmpl`` files next to this module (``string.Template`` syntax).
"""

from __future__ import annotations

import keyword
import re
from importlib import resources
from pathlib import Path
from string import Template

__all__ = ["ScaffoldError", "plan", "scaffold", "validate_name"]

NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class ScaffoldError(ValueError):
    """A bad plugin name or a target that already exists."""


def validate_name(name: str) -> str:
    if not NAME.match(name):
        raise ScaffoldError(
            f"invalid transform name {name!r}: use lower-case letters, digits and '_', starting "
            "with a letter, at most 40 characters (it is the `use:` name and part of a module "
            "name), e.g. mask_email")
    if keyword.iskeyword(name) or name.endswith("_"):
        raise ScaffoldError(f"invalid transform name {name!r}: a Python keyword or a trailing "
                            "'_' cannot name a module cleanly; pick another")
    return name


def plan(name: str) -> dict[str, str]:
    """Relative path -> file content for plugin ``name``."""
    validate_name(name)
    values = {"name": name, "module": f"headwater_{name}",
              "dist": "headwater-" + name.replace("_", "-")}
    files = {
        "pyproject.toml": "pyproject.toml.tmpl",
        "README.md": "README.md.tmpl",
        f"src/{values['module']}/__init__.py": "module.py.tmpl",
        f"tests/test_{name}.py": "test_module.py.tmpl",
    }
    here = resources.files(__name__)
    return {rel: Template(here.joinpath(tmpl).read_text(encoding="utf-8")).substitute(values)
            for rel, tmpl in files.items()}


def scaffold(name: str, parent: str | Path = ".") -> Path:
    """Write the package for ``name`` into ``<parent>/headwater-<name>/`` and return it.

    Refuses to touch a folder that already exists.
    """
    files = plan(name)
    target = Path(parent) / ("headwater-" + name.replace("_", "-"))
    Path(parent).mkdir(parents=True, exist_ok=True)
    try:
        target.mkdir()
    except FileExistsError:
        raise ScaffoldError(f"{target} already exists; remove it or choose another --dir") from None
    for rel, text in files.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return target
