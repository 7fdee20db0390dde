"""The lowest versions pyproject.toml claims, as a pip constraints file, and the lowest Python.

    python3 .ci/lowest_constraints.py            # constraints: one ``name==lowest`` per line
    python3 .ci/lowest_constraints.py --python   # the lowest Python claimed, e.g. ``3.11``

Generated from ``[project].dependencies`` and ``requires-python`` every time, so the tested
bounds cannot drift from the declared ones. Every runtime dependency must declare a ``>=``
lower bound: one without it is an error (a bound nobody tests is not a bound). Environment
markers are kept, so a dependency for some Pythons only is pinned only where it installs.
Test-only tools (the ``test`` extra) are not constrained: they may float.

Standard library only (it runs before anything is installed in the lowest environment).
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
REQUIREMENT = re.compile(
    r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*"
    r"(?P<specs>[^;]*?)\s*(?:;\s*(?P<marker>.+?))?\s*$"
)
LOWER = re.compile(r">=\s*(?P<version>[0-9][0-9A-Za-z.+!-]*)")


def lowest_pin(requirement: str) -> str:
    """``name==lowest`` (with the requirement's marker) for one dependency string."""
    match = REQUIREMENT.match(requirement)
    if match is None:
        raise ValueError(f"cannot read the requirement {requirement!r}")
    lower = LOWER.search(match["specs"])
    if lower is None:
        raise ValueError(f"{requirement!r} declares no '>=' lower bound")
    pin = f"{match['name']}=={lower['version']}"
    return f"{pin} ; {match['marker']}" if match["marker"] else pin


def constraints(project: dict[str, object]) -> list[str]:
    """One pin per runtime dependency, in the order pyproject.toml lists them."""
    dependencies = project.get("dependencies", [])
    assert isinstance(dependencies, list)
    return [lowest_pin(str(requirement)) for requirement in dependencies]


def lowest_python(project: dict[str, object]) -> str:
    """The version in ``requires-python``'s ``>=`` bound, as ``major.minor``."""
    lower = LOWER.search(str(project.get("requires-python", "")))
    if lower is None:
        raise ValueError("requires-python declares no '>=' lower bound")
    return ".".join(lower["version"].split(".")[:2])


def main(argv: list[str]) -> int:
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    try:
        lines = [lowest_python(project)] if "--python" in argv else constraints(project)
    except ValueError as error:
        print(f"lowest_constraints: {error}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
