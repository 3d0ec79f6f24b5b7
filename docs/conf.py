"""Sphinx configuration: MyST Markdown pages, the furo theme, autodoc for the API."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# autodoc imports the package, which needs configured settings and loaded apps.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
import django  # noqa: E402

django.setup()

from django_taskqueue import __version__  # noqa: E402

project = "django-taskqueue"
author = "django-taskqueue contributors"
copyright = "django-taskqueue contributors"
release = __version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options: dict[str, object] = {}

html_theme = "furo"
html_title = "django-taskqueue"
html_static_path: list[str] = []
