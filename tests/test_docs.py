"""The documentation reads cleanly where people read it, and names what it should."""

import re
import tomllib

import pytest

from tests.processes import ROOT

# Read on GitHub as well as on the site: no MyST-only syntax.
PLAIN_MARKDOWN = [
    "README.md",
    "docs/quickstart.md",
    "docs/concepts.md",
    "docs/deployment.md",
    "docs/periodic.md",
    "docs/coming-from-celery.md",
    "docs/coming-from-django-q2.md",
]


@pytest.mark.parametrize("page", PLAIN_MARKDOWN)
def test_pages_read_on_github_have_no_directive_syntax(page):
    text = (ROOT / page).read_text()
    found = re.findall(r"^(?::::*\{|```\{|\{eval-rst\}|\{note\}).*$", text, re.MULTILINE)
    assert not found, f"{page}: {found}"


def test_the_api_page_says_it_is_read_on_the_site():
    head = (ROOT / "docs/api.md").read_text()[:400]
    assert "readthedocs.io" in head


def test_read_the_docs_builds_the_sphinx_site_with_warnings_as_errors():
    config = (ROOT / ".readthedocs.yaml").read_text()
    assert re.search(r"^\s+configuration: docs/conf.py$", config, re.MULTILINE)
    assert re.search(r"^\s+fail_on_warning: true$", config, re.MULTILINE)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["urls"]["Documentation"].startswith("https://django-taskqueue.readthedocs.io")


def test_the_install_docs_name_every_extra():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    quickstart = (ROOT / "docs/quickstart.md").read_text()
    for extra in extras:
        assert f"django-taskqueue[{extra}]" in quickstart, extra
