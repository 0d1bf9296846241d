"""tools/go-tools.txt is the one list of the Go programs: build.sh and the Makefile read it, and what
still names programs on its own (build.sh's recipes, the native sandbox's components) must agree."""

from __future__ import annotations

import re
import subprocess

from sandbox.components import go_tools
from sandbox.env import ROOT

LIST = ROOT / "tools" / "go-tools.txt"


def _listed() -> dict[str, str]:
    """name -> who builds it, as go-tools.txt says."""
    rows = (line.split() for line in LIST.read_text().splitlines() if line.strip() and not line.startswith("#"))
    return {name: built_by for name, built_by in rows}


def test_every_listed_program_has_a_recipe_in_build_sh() -> None:
    script = (ROOT / "tools" / "build.sh").read_text()
    recipes = script.split("\nrecipe() {", 1)[1].split("\n    esac", 1)[0]
    names = {name.strip() for pattern in re.findall(r"^ {8}([a-z_| -]+)\)$", recipes, re.MULTILINE)
             for name in pattern.split("|")}
    assert names == set(_listed())


def test_build_sh_knows_the_listed_programs_and_no_other() -> None:
    done = subprocess.run(["bash", str(ROOT / "tools" / "build.sh"), "no-such-program"], capture_output=True,
                          text=True, timeout=30, check=False)
    assert done.returncode == 2
    known = re.search(r"\(known: (.*)\)", done.stderr)
    assert known is not None, done.stderr
    assert known[1].split() == list(_listed())


def test_make_tools_builds_the_programs_marked_make() -> None:
    database = subprocess.run(["make", "--no-print-directory", "-pn", "help"], cwd=ROOT, capture_output=True,
                              text=True, timeout=60, check=False).stdout
    line = re.search(r"^GO_TOOLS := (.*)$", database, re.MULTILINE)
    assert line is not None
    assert line[1].split() == [name for name, built_by in _listed().items() if built_by == "make"]


def test_make_tools_builds_the_programs_marked_check_too_and_make_up_none_of_them() -> None:
    database = subprocess.run(["make", "--no-print-directory", "-pn", "help"], cwd=ROOT, capture_output=True,
                              text=True, timeout=60, check=False).stdout
    line = re.search(r"^CHECK_TOOLS := (.*)$", database, re.MULTILINE)
    assert line is not None
    marked_check = [name for name, built_by in _listed().items() if built_by == "check"]
    assert marked_check and line[1].split() == marked_check
    assert re.search(r"^\t@tools/build.sh \$\(GO_TOOLS\) \$\(CHECK_TOOLS\) ", database, re.MULTILINE)
    assert not set(marked_check) & set(go_tools())


def test_make_tools_builds_every_program_the_native_sandbox_runs() -> None:
    built_by_make = {name for name, built_by in _listed().items() if built_by == "make"}
    assert go_tools()
    assert set(go_tools()) <= built_by_make
