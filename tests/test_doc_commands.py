"""The commands in README.md and docs/*.md stay true: they exist, their options parse, some run.

Every command line of a ```bash block (lines ending in ``\\`` joined, comments dropped, split at
``;``, ``&&``, ``||`` and ``|``) that calls ``decaygym-*`` or ``python -m scripts.*`` must name an
entry of ``[project.scripts]`` in pyproject.toml, and that script's ``parse_args`` must accept its
arguments (where ``../shared/data`` is absent, an empty stand-in takes the place of a data path
it names); so must a library module a page runs with ``python -m`` (``decay_model.streaming``).
Other commands (``cd``, ``cat``, ``pip install``, ``pytest``, RL Zoo, TensorBoard, ...) are not
checked. The commands of a block preceded by ``<!-- run-in-tests -->`` also run for real,
in a temporary folder, so their relative ``--out`` lands there; a command that reads
``../shared/data`` skips with the reason when that data is absent.

The links of these pages must lead to files that exist, and to headings that exist there."""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
RUN_MARKER = "<!-- run-in-tests -->"
OPERATORS = {";", "&&", "||", "|", "&"}
REDIRECTIONS = {">", ">>", "<", ">&", "<&"}
#: a run-in-tests command that takes longer than this fails
RUN_TIMEOUT_S = 120
#: packages whose modules a page may run with ``python -m`` (each such module has ``parse_args``)
PACKAGES = ("scripts", "decay_model", "agents", "envs")
#: the fixtures of tests/conftest.py that skip when a data set of ../shared/data is absent
SHARED_FIXTURES = {"taobao_userbehavior_head": "taobao_path", "obd_zozotown_small": "obd_path"}


@dataclass(frozen=True)
class DocCommand:
    """One command of a documentation page's bash block."""

    page: str
    """The page, relative to the repository root."""
    line: int
    """Its first line in the page (1-based)."""
    text: str
    """The command as written (continuation lines joined)."""
    words: tuple[str, ...]
    """Its words, environment assignments and redirections removed."""
    run: bool
    """Whether its block is marked ``<!-- run-in-tests -->``."""

    def __str__(self) -> str:
        return f"{self.page}:{self.line}: {self.text}"


def script_entries() -> dict[str, str]:
    """``[project.scripts]``: command name → module (``scripts.fit_decay``)."""
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    return {name: target.split(":")[0] for name, target in scripts.items()}


def bash_blocks(path: Path) -> list[tuple[int, list[str], bool]]:
    """Each ```bash block: (line of its first content line, its lines, marked run-in-tests)."""
    lines = path.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if lines[i].strip() == "```bash":
            before = next((ln.strip() for ln in reversed(lines[:i]) if ln.strip()), "")
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip().startswith("```"))
            blocks.append((i + 2, lines[i + 1 : end], before == RUN_MARKER))
            i = end
        i += 1
    return blocks


def simple_commands(text: str) -> list[list[str]]:
    """The simple commands of one shell line, each as its words without redirections."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    tokens = list(lexer)
    k = 0
    while k < len(tokens):
        token = tokens[k]
        if token in OPERATORS:
            commands.append([])
        elif token in REDIRECTIONS:
            if commands[-1] and commands[-1][-1].isdigit():  # 2>/dev/null: the 2 is the stream
                commands[-1].pop()
            k += 1  # the redirection's target
        else:
            commands[-1].append(token)
        k += 1
    return [c for c in commands if c]


def page_commands(path: Path) -> list[DocCommand]:
    """Every command of the page's bash blocks, continuation lines joined, comments dropped."""
    page = path.relative_to(REPO_ROOT).as_posix()
    found = []
    for first, lines, run in bash_blocks(path):
        k = 0
        while k < len(lines):
            start, text = first + k, lines[k]
            while text.endswith("\\") and k + 1 < len(lines):
                k += 1
                text = text[:-1].rstrip() + " " + lines[k].strip()
            k += 1
            if not text.strip() or text.lstrip().startswith("#"):
                continue
            for words in simple_commands(text):
                while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
                    words = words[1:]  # PYTHONPATH=. decaygym-...
                if words:
                    found.append(DocCommand(page, start, text.strip(), tuple(words), run))
    return found


def decaygym_call(words: tuple[str, ...]) -> tuple[str, list[str]] | None:
    """(command name or ``python -m`` module, its arguments) of a decaygym command; None for others."""
    if words[0].startswith("decaygym"):
        return words[0], list(words[1:])
    if (
        re.fullmatch(r"python[0-9.]*", words[0])
        and len(words) > 2
        and words[1] == "-m"
        and words[2].split(".")[0] in PACKAGES
    ):
        return words[2], list(words[3:])
    return None


def module_of(name: str, entries: dict[str, str]) -> str | None:
    """The module of a command name, or a ``python -m`` module of a script or a library package."""
    if name in entries:
        return entries[name]
    return name if name in entries.values() or name.split(".")[0] in PACKAGES[1:] else None


ALL_COMMANDS = [c for page in PAGES for c in page_commands(page)]
CHECKED = [c for c in ALL_COMMANDS if decaygym_call(c.words)]
RUN = [c for c in CHECKED if c.run]


def test_the_pages_hold_commands_to_check():
    assert len(PAGES) > 1, "docs/*.md not found"
    assert len(CHECKED) >= 20, [str(c) for c in CHECKED]
    assert RUN, f"no block is marked {RUN_MARKER}"


def shared_data_or_stand_in(argv: list[str], tmp_path: Path) -> list[str]:
    """The arguments with ``../shared/...`` made absolute, or an empty stand-in where that data is absent.

    A parser may check that a file exists; the stand-in lets its options be checked without the data.
    """
    out = []
    for arg in argv:
        if arg.startswith("../shared/"):
            path = REPO_ROOT.parent / arg.removeprefix("../")
            if not path.exists():
                path = tmp_path / arg.removeprefix("../")
                if path.suffix:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.touch()
                else:
                    path.mkdir(parents=True, exist_ok=True)
            arg = str(path)
        out.append(arg)
    return out


@pytest.mark.parametrize("command", CHECKED, ids=lambda c: f"{c.page}:{c.line}")
def test_command_exists_and_its_arguments_parse(command, tmp_path):
    name, argv = decaygym_call(command.words)
    module = module_of(name, script_entries())
    assert module, f"{command}\n{name} is not an entry of [project.scripts] in pyproject.toml"
    argv = shared_data_or_stand_in(argv, tmp_path)
    parse_args = importlib.import_module(module).parse_args
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            parse_args(argv)
        except SystemExit as exc:
            if exc.code not in (0, None):  # --help exits 0
                pytest.fail(f"{command}\n{module}.parse_args rejects it:\n{stderr.getvalue()}")


def shared_data_or_skip(request: pytest.FixtureRequest, argv: list[str]) -> list[str]:
    """The arguments with ``../shared/...`` made absolute; skips when that data is absent."""
    out = []
    for arg in argv:
        if arg.startswith("../shared/"):
            data_set = Path(arg).parts[3] if len(Path(arg).parts) > 3 else ""
            if data_set in SHARED_FIXTURES:
                request.getfixturevalue(SHARED_FIXTURES[data_set])  # skips with the reason
            path = REPO_ROOT.parent / arg.removeprefix("../")
            if not path.exists():
                pytest.skip(f"{arg} not found: this command needs ../shared beside the repo")
            arg = str(path)
        out.append(arg)
    return out


@pytest.mark.parametrize("command", RUN, ids=lambda c: f"{c.page}:{c.line}")
def test_marked_command_runs(command, request, tmp_path):
    name, argv = decaygym_call(command.words)
    module = module_of(name, script_entries())
    assert module, f"{command}\n{name} is not an entry of [project.scripts] in pyproject.toml"
    argv = shared_data_or_skip(request, argv)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "OMP_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
    }
    done = subprocess.run(
        [sys.executable, "-m", module, *argv],
        cwd=tmp_path,  # a relative --out lands in the temporary folder
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    output = done.stdout[-3000:] + done.stderr[-3000:]
    assert done.returncode == 0, f"{command}\nexit {done.returncode}:\n{output}"


def test_every_script_has_a_line_in_the_readme_index():
    readme = (REPO_ROOT / "README.md").read_text()
    index = readme.split("## Command-line tools", 1)[1].split("\n## ", 1)[0]
    missing = [name for name in script_entries() if f"- `{name}`:" not in index]
    assert not missing, f"README.md's command-line tools list lacks {missing}"


def test_the_readme_keeps_the_quick_table_markers():
    readme = (REPO_ROOT / "README.md").read_text()
    start, end = readme.find("<!-- quick-table:start -->"), readme.find("<!-- quick-table:end -->")
    assert 0 <= start < end, "README.md: the quick-table markers are missing or out of order"


def heading_anchors(path: Path) -> set[str]:
    """The anchors GitHub gives the page's headings (lower case, punctuation dropped, spaces → -)."""
    anchors, fenced = set(), False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (match := re.match(r"#{1,6} (.+)", line)):
            anchors.add(re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-"))
    return anchors


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_relative_links_resolve(page):
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", target):
            continue
        file_part, _, anchor = target.partition("#")
        linked = (page.parent / file_part).resolve() if file_part else page
        assert linked.exists(), f"{page.name}: link {target} leads to no file"
        if anchor and linked.suffix == ".md":
            assert anchor in heading_anchors(linked), f"{page.name}: link {target}: no such heading"
