# SPDX-License-Identifier: Apache-2.0
"""Sphinx configuration of the coco documentation site (``make docs``; warnings are errors).

The pages are the Markdown files of this folder (read by MyST, so they read the same on
a forge and on the site); the API reference is generated from the docstrings of the
three distributions by autosummary and autodoc (``reference/api.md``).
"""

from __future__ import annotations

import importlib.metadata
import re

project = "coco"
author = "The coco developers"
copyright = "the coco developers; Apache-2.0"
release = importlib.metadata.version("coco-core")
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "_templates"]
templates_path = ["_templates"]

# Markdown: GitHub-style heading anchors, so links such as error-spaces.md#kvmerrno work
# on the site as they do on a forge.
myst_heading_anchors = 4
myst_enable_extensions = ["colon_fence"]

# API reference: every module of coco_core, coco_snp and coco_tdx, each name documented
# once, in the module that defines it (the package re-exports are not repeated).
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": True, "show-inheritance": True, "ignore-module-all": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_class_signature = "separated"
napoleon_google_docstring = False
napoleon_numpy_docstring = False

html_theme = "alabaster"
html_title = f"coco {release}"
html_theme_options = {"description": "the CoCo userspace exits of Linux KVM, vendor-neutral"}


def _c_text_as_code(  # noqa: PLR0917  # the signature Sphinx calls the event with
    app: object, what: str, name: str, obj: object, options: object, lines: list[str]
) -> None:
    """Show a layout class's C text (its docstring opens with it, verbatim) as a C block.

    The style guide keeps the header's text verbatim at the top of each ``@c_struct``
    class's docstring; reST would read its ``*`` and indentation as markup. The text runs
    to the first line that closes the outermost struct at column 0 (``};`` or ``} io;``).
    """
    if what != "class" or not hasattr(obj, "_c_layout") or not lines:
        return
    end = next((i for i, line in enumerate(lines) if re.match(r"^}[^;]*;\s*$", line)), None)
    if end is None:
        return
    code = ["", ".. code-block:: c", "", *(f"   {line}" for line in lines[: end + 1]), ""]
    lines[: end + 1] = code


def setup(app: object) -> None:
    """Register the docstring hook."""
    app.connect("autodoc-process-docstring", _c_text_as_code)  # type: ignore[attr-defined]
