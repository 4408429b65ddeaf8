"""The wheel carries every subpackage, the profile, the schemas and the suites."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_directory_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "privacy_checks").rglob("__init__.py")}
    found |= {".".join(("privacy_checks_suites", *p.parent.relative_to(ROOT / "suites").parts)).rstrip(".")
              for p in (ROOT / "suites").rglob("__init__.py")}
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
