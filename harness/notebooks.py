"""The code cells of a Jupyter notebook, as Python source for reading imports (never run).

Research repositories often keep part of their code in ``.ipynb`` notebooks: an analysis
notebook imports ``seaborn``, a tutorial ``!pip install transformers``, and an image built
from the ``.py`` files alone fails on the first run. `harness init` and `harness lock`
therefore read notebooks beside the Python files (:mod:`harness.python_sources` walks for
both). A notebook is nbformat 4 JSON; it is read with :mod:`json` (no Jupyter), bounded in
depth by :func:`harness.untrusted.parse_json`, and only the ``source`` of ``code`` cells
counts: markdown and raw cells, outputs (often megabytes of images) and metadata are
ignored. A notebook whose kernel is another language (R, Julia) is not Python at all.

Cells hold IPython syntax that is not Python: a line starting with ``%`` (a magic), ``!``
(a shell command) or ``?`` (help), ``name = !command``, ``name?``. Such a line becomes
``pass`` at its indentation, so line numbers stay and a block around it still parses; a
cell magic (``%%time``) either wraps Python, whose body is read, or another language
(``%%bash``, ``%%html``), whose cell is not. A cell that still does not parse is left out
with one line saying why, never the whole notebook. ``%pip install X`` and ``!pip install
X`` lines name distributions the author installs: they are taken as needs too, as names
only (the lock pins versions), bounded in number, and only when each is a requirement's
name (not a URL, a path or a shell variable).
"""

from __future__ import annotations

import ast
import re
import shlex
from dataclasses import dataclass, field

from packaging.requirements import InvalidRequirement, Requirement

from harness import untrusted

SUFFIX = ".ipynb"
# Notebooks embed their outputs (plots as base64 images): a notebook of a few megabytes
# holds kilobytes of code. Only the code cells' source counts against the code budget
# (and has a Python file's bound: python_sources.FILE_LIMIT).
FILE_LIMIT = 16 << 20
# nbformat nests cells, outputs and their data a handful of levels; widget state a few more.
DEPTH_LIMIT = 64
# A notebook of more cells than this is generated, not written.
CELLS_LIMIT = 5000
# Distributions taken from one notebook's install lines; the rest are not.
INSTALLS_LIMIT = 100
_NAME_LIMIT = 100
# Cell magics whose body is Python, run under a timer, a capture or a profiler.
_PYTHON_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun", "python", "python3"})
# Cell magics whose body is a shell script, where ``pip install`` lines are looked for.
_SHELL_CELL_MAGICS = frozenset({"bash", "sh", "script", "system", "!"})
# IPython syntax a line may start with, after its indentation.
_IPYTHON_LINE = re.compile(r"\s*(?:[%!?]|[\w.]+\?{1,2}\s*$|[\w.,\s\[\]]+=\s*[!%])")
_SHELL_COMMAND_LINE = re.compile(r"\s*(?:!|[\w.,\s\[\]]+=\s*!)!?(?P<command>.*)")
_MAGIC_LINE = re.compile(r"\s*(?:[\w.,\s\[\]]+=\s*)?%(?P<command>.*)")
# Shell words that end one command and start another, or redirect (the next word is a file).
_SEPARATORS = frozenset({"&&", "||", ";", "|", "&", ";;", "(", ")"})
_REDIRECT = re.compile(r"\d*[<>]+&?")
_PIP = re.compile(r"(?:.*/)?pip(?:3(?:\.\d+)?)?")
# pip install's options that take a value as the next word.
_PIP_VALUE_OPTIONS = frozenset(
    {
        "-r",
        "--requirement",
        "-c",
        "--constraint",
        "-e",
        "--editable",
        "-i",
        "--index-url",
        "--extra-index-url",
        "-f",
        "--find-links",
        "-t",
        "--target",
        "--prefix",
        "--root",
        "--src",
        "--upgrade-strategy",
        "--platform",
        "--python-version",
        "--implementation",
        "--abi",
        "--no-binary",
        "--only-binary",
        "--progress-bar",
        "-C",
        "--config-settings",
        "--global-option",
        "--log",
        "--cache-dir",
        "--proxy",
        "--retries",
        "--timeout",
        "--exists-action",
        "--trusted-host",
        "--cert",
        "--client-cert",
        "--report",
        "--python",
    }
)


class NotANotebook(ValueError):
    """The file is not an nbformat 4 notebook of Python: ``reason`` says why, in a few words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Cell:
    """One code cell as Python: its number among all the notebook's cells (from 1) and its
    text, line for line the cell's (so that a line number in a message is the cell's)."""

    number: int
    text: str


@dataclass
class Notebook:
    """A notebook's code cells as Python, and the distributions its install lines name."""

    cells: list[Cell] = field(default_factory=list)
    installs: list[str] = field(default_factory=list)

    def code_size(self) -> int:
        return sum(len(cell.text) for cell in self.cells)


def read(data: bytes) -> Notebook:
    """The code cells of the notebook ``data`` (its file's bytes); raises
    :class:`NotANotebook` when it is not one this can read."""
    try:
        document = untrusted.parse_json(data, what="notebook", depth=DEPTH_LIMIT)
    except untrusted.UntrustedInputError as error:
        raise NotANotebook(error.reason) from None
    if not isinstance(document, dict) or not isinstance(document.get("cells"), list):
        raise NotANotebook("not a notebook: no list of cells")
    if document.get("nbformat") != 4:
        raise NotANotebook(f"nbformat {document.get('nbformat')!r}, not 4")
    language = _language(document.get("metadata"))
    if language not in ("", "python"):
        raise NotANotebook(f"a notebook in {language[:40]}, not Python")
    cells = document["cells"]
    if len(cells) > CELLS_LIMIT:
        raise NotANotebook(f"more than {CELLS_LIMIT} cells")
    notebook = Notebook()
    for number, cell in enumerate(cells, start=1):
        if not isinstance(cell, dict):
            raise NotANotebook(f"cell {number} is not an object")
        if cell.get("cell_type") != "code":
            continue  # markdown and raw cells: text, whatever ``import`` they mention
        text = _source(cell.get("source"), number)
        python, commands = _as_python(text)
        for command in commands:
            _take_installs(command, notebook.installs)
        if python is not None:
            notebook.cells.append(Cell(number, python))
    return notebook


def parse(notebook: Notebook, shown: str) -> tuple[ast.Module, list[str]]:
    """One module of the cells that parse (each statement's line number its cell's), and a
    line for each cell that does not (``eda.ipynb cell 4 (not valid Python: ...)``)."""
    module = ast.Module(body=[], type_ignores=[])
    skipped = []
    for cell in notebook.cells:
        where = f"{shown} cell {cell.number}"
        try:
            tree = ast.parse(cell.text, filename=where)
        except SyntaxError as error:
            skipped.append(f"{where} (not valid Python: {error.msg}, line {error.lineno})")
            continue
        except (ValueError, RecursionError, MemoryError):
            skipped.append(f"{where} (nested too deep, or not Python source)")
            continue
        module.body.extend(tree.body)
    return module, skipped


def _language(metadata: object) -> str:
    """The notebook's kernel language, lowercased ("" when it does not say)."""
    if not isinstance(metadata, dict):
        return ""
    for key, inner in (("language_info", "name"), ("kernelspec", "language")):
        table = metadata.get(key)
        if isinstance(table, dict) and isinstance(table.get(inner), str):
            return str(table[inner]).strip().lower()
    return ""


def _source(source: object, number: int) -> str:
    """A cell's source: a string, or the list of its lines, as nbformat allows."""
    if isinstance(source, str):
        return source
    if isinstance(source, list) and all(isinstance(part, str) for part in source):
        return "".join(source)
    raise NotANotebook(f"cell {number}'s source is not text")


def _as_python(text: str) -> tuple[str | None, list[str]]:
    """The cell as Python (None when its cell magic makes it another language), and the
    shell and magic commands it holds, for their install lines."""
    lines = text.split("\n")
    first = lines[0].strip()
    if first.startswith("%%"):
        name, _, arguments = first[2:].partition(" ")
        if name in _SHELL_CELL_MAGICS and (name != "script" or arguments.strip() in ("bash", "sh")):
            return None, _joined(lines[1:])
        if name not in _PYTHON_CELL_MAGICS:
            return None, []
        lines[0] = ""
    commands: list[str] = []
    python: list[str] = []
    continued = False
    for line in lines:
        text = line.rstrip()
        if continued:
            # A line ending in a backslash goes on in the next, as IPython joins them.
            python.append("")
            commands[-1] += " " + text.removesuffix("\\")
        elif _IPYTHON_LINE.match(line):
            indentation = line[: len(line) - len(line.lstrip())]
            python.append(f"{indentation}pass")
            commands.append(_command(text.removesuffix("\\")))
        else:
            python.append(line)
            continue
        continued = text.endswith("\\")
    return "\n".join(python), commands


def _joined(lines: list[str]) -> list[str]:
    """A shell cell's lines, those ending in a backslash joined to the next."""
    joined: list[str] = []
    continued = False
    for line in lines:
        text = line.rstrip()
        if continued:
            joined[-1] += " " + text.removesuffix("\\")
        else:
            joined.append(text.removesuffix("\\"))
        continued = text.endswith("\\")
    return joined


def _command(line: str) -> str:
    """The command of a shell line (``!pip install x``) or a line magic (``%pip install
    x``), or "" for help syntax."""
    shell = _SHELL_COMMAND_LINE.fullmatch(line)
    if shell is not None:
        return shell["command"]
    magic = _MAGIC_LINE.fullmatch(line)
    return magic["command"] if magic is not None else ""


def _take_installs(command: str, installs: list[str]) -> None:
    """Add to ``installs`` the names ``pip install`` is given in ``command``, within the
    bound; words that are not a requirement's name (a URL, a path, ``$PKG``) are not."""
    try:
        lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words = list(lexer)
    except ValueError:
        return  # an unclosed quote: not a command to read
    simple: list[str] = []
    for word in [*words, ";"]:
        if word in _SEPARATORS:
            for name in _pip_install_names(simple):
                if len(installs) >= INSTALLS_LIMIT:
                    return
                if name not in installs:
                    installs.append(name)
            simple = []
        else:
            simple.append(word)


def _pip_install_names(words: list[str]) -> list[str]:
    """The requirement names of one simple command, when it is ``pip install``,
    ``python -m pip install`` or ``uv pip install``."""
    if not words:
        return []
    if _PIP.fullmatch(words[0]):
        rest = words[1:]
    elif words[1:3] == ["-m", "pip"]:
        rest = words[3:]
    elif words[0] == "uv" and words[1:2] == ["pip"]:
        rest = words[2:]
    else:
        return []
    if rest[:1] != ["install"]:
        return []
    names = []
    skip_next = False
    for word in rest[1:]:
        if skip_next:
            skip_next = False
        elif word in _PIP_VALUE_OPTIONS or _REDIRECT.fullmatch(word):
            skip_next = True
        elif not word.startswith("-"):
            name = _requirement_name(word)
            if name is not None:
                names.append(name)
    return names


def _requirement_name(word: str) -> str | None:
    if len(word) > _NAME_LIMIT or any(mark in word for mark in "${}/\\"):
        return None
    try:
        requirement = Requirement(word)
    except InvalidRequirement:
        return None
    return None if requirement.url else requirement.name


__all__ = [
    "CELLS_LIMIT",
    "DEPTH_LIMIT",
    "FILE_LIMIT",
    "INSTALLS_LIMIT",
    "SUFFIX",
    "Cell",
    "NotANotebook",
    "Notebook",
    "parse",
    "read",
]
