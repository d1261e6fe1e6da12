"""The shipped schema of ``[tool.harness]`` (``harness/schemas/config.v1.json``) and the one
check of the whole table against it, made once when the configuration is loaded.

The schema is JSON Schema draft 2020-12, so editors and other tools can check a
pyproject.toml with it too; its ``description`` of each key is the reference of the key.
The check here implements only the keywords that file uses (the unit tests refuse a schema
that uses another, and hold its verdicts against the jsonschema library's), for two
reasons: jsonschema and its dependencies take about 0.1 s to import, which every command
that reads the configuration would pay (``harness compare`` among them, whose start is kept
short on purpose: see :mod:`harness.launch`); and the first violation becomes one line that
names the key by its TOML path and says how to write it, from the key's ``examples``.

One difference from JSON Schema, on purpose: TOML keeps integers, floats and booleans
apart, so ``integer`` accepts neither ``true`` nor ``1.0`` (JSON Schema takes ``1.0``).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path as FilePath
from typing import Any

from harness.errors import ConfigError

SCHEMA_FILE = "config.v1.json"
ROOT = ("tool", "harness")
# The keywords the check below implements; the others it meets are annotations.
KEYWORDS = frozenset(
    {
        "type",
        "enum",
        "const",
        "pattern",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "minItems",
        "uniqueItems",
        "items",
        "properties",
        "additionalProperties",
        "propertyNames",
        "required",
        "anyOf",
        "oneOf",
        "not",
    }
)
ANNOTATIONS = frozenset(
    {"$schema", "$id", "$comment", "title", "description", "default", "examples"}
)
# A value quoted in a message is cut here, so that the message stays one short line.
_SHOWN = 60
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
# A name harness turns into a path, an image tag, YAML, shell or workflow text (experiments,
# variants, inputs, hosts, runners): one plain path component, never ``..``, bounded so that
# a run id (date, name, random part) stays one short folder name. The schema's names use
# this very pattern (the tests hold them together); :func:`check_name` applies it to names
# that come from elsewhere (the environment, the command line).
# It ends in (?![\s\S]), the end of the text in JSON Schema's regular expressions and in
# Python's alike, as Python's "$" would also match before a final line break.
PLAIN_NAME_PATTERN = r"^(?!.*[.][.])[A-Za-z0-9][A-Za-z0-9_.-]{0,99}(?![\s\S])"
PLAIN_NAME_RULE = (
    "letters, digits, '.', '_' and '-', starting with a letter or digit, "
    "no '..', at most 100 characters"
)
# An output glob, matched inside the run's artifacts folder: relative, never climbing out
# (no ".." component), one line, no backslash (a separator elsewhere) or NUL.
RELATIVE_GLOB_PATTERN = r"^(?![/])(?!(?:[^/]*/)*[.][.](?:/|(?![\s\S])))[^\\\n\x00]+(?![\s\S])"
_KINDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "a table",
    "array": "a list",
}

Path = tuple[str | int, ...]


@functools.cache
def schema() -> Mapping[str, Any]:
    """The schema shipped in the package."""
    # Read beside this module, not through importlib.resources: that one pulls in zipfile
    # and tempfile, a good part of the start of `harness compare` in a project.
    text = (FilePath(__file__).parent / "schemas" / SCHEMA_FILE).read_text("utf-8")
    loaded: Mapping[str, Any] = json.loads(text)
    return loaded


def validate(table: object) -> None:
    """Raise a ConfigError for the first place where ``table`` (``[tool.harness]``)
    departs from the schema, in the order the file is written."""
    problem = _first_problem(schema(), table, ())
    if problem is not None:
        raise problem


def check_name(name: str, where: str) -> str:
    """``name`` when it is a plain name (see ``PLAIN_NAME_PATTERN``), else a ConfigError
    naming ``where`` it came from."""
    if not re.search(PLAIN_NAME_PATTERN, name):
        raise ConfigError(f"{where}: {_shown(name)} is not a plain name", f"use {PLAIN_NAME_RULE}")
    return name


def header(path: Path) -> str:
    """The TOML table that holds the key at ``path``: ``[tool.harness.hosts.gpu1]``."""
    keys = [*ROOT, *(str(part) for part in path if isinstance(part, str))]
    return "[" + ".".join(_toml_key(key) for key in keys) + "]"


def _first_problem(node: Mapping[str, Any], value: object, path: Path) -> ConfigError | None:
    """The first violation of ``node`` by ``value``, or None; checks in the order a reader
    would fix them: the kind of value, then its contents, then the rules across keys."""
    kinds = node.get("type")
    if kinds is not None and not _is_kind(value, kinds):
        return _error(path, f"expected {_kind_words(kinds)}, got {_shown(value)}")
    if "const" in node and not _equal(value, node["const"]):
        return _error(path, f"expected {_shown(node['const'])}, got {_shown(value)}")
    if "enum" in node and not any(_equal(value, choice) for choice in node["enum"]):
        choices = ", ".join(str(choice) for choice in node["enum"])
        return _error(path, f"expected one of {choices}, got {_shown(value)}")
    for check in (_string_problem, _number_problem, _array_problem, _object_problem):
        problem = check(node, value, path)
        if problem is not None:
            return problem
    return _alternatives_problem(node, value, path)


def _string_problem(node: Mapping[str, Any], value: object, path: Path) -> ConfigError | None:
    if not isinstance(value, str):
        return None
    if "minLength" in node and len(value) < node["minLength"]:
        wanted = "a non-empty string" if node["minLength"] == 1 else "a longer string"
        return _error(path, f"expected {wanted}, got {_shown(value)}")
    if "maxLength" in node and len(value) > node["maxLength"]:
        return _error(path, f"expected at most {node['maxLength']} characters, got {len(value)}")
    # JSON Schema patterns are searched for, not matched: the schema anchors its own.
    if "pattern" in node and not re.search(node["pattern"], value):
        return _error(path, f"{_shown(value)} is not {_title(node)}")
    return None


def _number_problem(node: Mapping[str, Any], value: object, path: Path) -> ConfigError | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if "minimum" in node and value < node["minimum"]:
        return _error(path, f"expected at least {node['minimum']}, got {_shown(value)}")
    if "maximum" in node and value > node["maximum"]:
        return _error(path, f"expected at most {node['maximum']}, got {_shown(value)}")
    return None


def _array_problem(node: Mapping[str, Any], value: object, path: Path) -> ConfigError | None:
    if not isinstance(value, list):
        return None
    if "minItems" in node and len(value) < node["minItems"]:
        wanted = "a non-empty list" if node["minItems"] == 1 else "a longer list"
        return _error(path, f"expected {wanted}, got {_shown(value)}")
    if node.get("uniqueItems"):
        for index, item in enumerate(value):
            if any(_equal(item, earlier) for earlier in value[:index]):
                return _error(path, f"names {_shown(item)} twice")
    if "items" in node:
        for index, item in enumerate(value):
            problem = _first_problem(node["items"], item, (*path, index))
            if problem is not None:
                return problem
    return None


def _object_problem(node: Mapping[str, Any], value: object, path: Path) -> ConfigError | None:
    if not isinstance(value, dict):
        return None
    properties: Mapping[str, Any] = node.get("properties", {})
    for key in node.get("required", ()):
        if key not in value:
            return ConfigError(
                f"{header(path)} has no {key}", f"add {_assignment(key, properties)}"
            )
    others = node.get("additionalProperties", True)
    names = node.get("propertyNames")
    for key, item in value.items():
        if names is not None:
            problem = _name_problem(names, key, path)
            if problem is not None:
                return problem
        if key in properties:
            child = properties[key]
        elif others is False:
            known = ", ".join(sorted(properties))
            return ConfigError(
                f"unknown key {key!r} in {header(path)}",
                f"remove it or use one of: {known}" if known else "remove it: no key is read",
            )
        elif isinstance(others, Mapping):
            child = others
        else:
            continue
        problem = _first_problem(child, item, (*path, key))
        if problem is not None:
            return problem
    return None


def _name_problem(names: Mapping[str, Any], key: str, path: Path) -> ConfigError | None:
    """A key that ``propertyNames`` refuses, with the rule for names (its description)."""
    if _first_problem(names, key, path) is None:
        return None
    return ConfigError(
        f"{header(path)}: the name {key!r} is not allowed",
        f"use {names.get('description', _title(names)).rstrip('.')}",
    )


def _alternatives_problem(node: Mapping[str, Any], value: object, path: Path) -> ConfigError | None:
    """``anyOf``, ``oneOf`` and ``not``. The schema uses alternatives of two shapes: forms
    told apart by their kind (a URL or a table), whose errors are the matching form's; and
    ``required`` alone (exactly one of entry or command), said as such."""
    if "not" in node and _first_problem(node["not"], value, path) is None:
        what = node.get("title")
        return _error(path, f"{_shown(value)} is not {what}" if what else "not allowed here")
    for keyword in ("anyOf", "oneOf"):
        branches: Sequence[Mapping[str, Any]] = node.get(keyword, ())
        if not branches:
            continue
        if all(set(branch) == {"required"} for branch in branches):
            passing = sum(_first_problem(b, value, path) is None for b in branches)
            if passing == 1 or (keyword == "anyOf" and passing):
                continue
            keys = [key for branch in branches for key in branch["required"]]
            properties: Mapping[str, Any] = node.get("properties", {})
            exactly = "exactly " if keyword == "oneOf" else ""
            return ConfigError(
                f"{header(path)} needs {exactly}one of {' or '.join(keys)}",
                "write " + " or ".join(_assignment(key, properties) for key in keys),
            )
        fitting = [b for b in branches if "type" not in b or _is_kind(value, b["type"])]
        if not fitting:
            kinds = " or ".join(dict.fromkeys(_kind_words(branch["type"]) for branch in branches))
            return _error(path, f"expected {kinds}, got {_shown(value)}")
        problems = [_first_problem(branch, value, path) for branch in fitting]
        valid = sum(problem is None for problem in problems)
        if valid == 0:
            # Tables of one kind told apart by the key each requires (url, kind): the
            # error is that of the form whose required keys the value has.
            return next(
                (
                    problem
                    for branch, problem in zip(fitting, problems, strict=True)
                    if isinstance(value, dict) and set(branch.get("required", ())) <= set(value)
                ),
                problems[0],
            )
        if keyword == "oneOf" and valid > 1:
            return _error(path, f"{_shown(value)} fits more than one form")
    return None


# -- messages --------------------------------------------------------------------------------


def _error(path: Path, problem: str) -> ConfigError:
    """``[tool.harness.hosts.gpu1] port: <problem>``, with how to write the key."""
    if not path:
        return ConfigError(f"[tool.harness]: {problem}", "write it as [tool.harness]")
    return ConfigError(f"{_where(path)}: {problem}", _hint(path))


def _where(path: Path) -> str:
    """The table and the key in it: ``[tool.harness.ci] runners[1]``."""
    last = max(i for i, part in enumerate(path) if isinstance(part, str))
    key = _toml_key(str(path[last])) + "".join(f"[{part}]" for part in path[last + 1 :])
    return f"{header(path[:last])} {key}"


def _hint(path: Path) -> str:
    """How to write the value at ``path``: the example of the deepest key on the way that
    has one (a list's example says more than one of its items), else the table to write."""
    node: Mapping[str, Any] = schema()
    written: str | None = None
    for part in path:
        node = _child(node, part)
        examples = node.get("examples")
        if isinstance(part, str) and examples:
            written = f"write {_toml_key(part)} = {_toml(examples[0])}"
    if written is not None:
        return written
    if node.get("type") == "object":
        return f"write it as {header(path)}"
    return f"see the description of the key in harness/schemas/{SCHEMA_FILE}"


def _child(node: Mapping[str, Any], part: str | int) -> Mapping[str, Any]:
    """The schema of one step into a value (through the form of alternatives it takes)."""
    forms = [
        form
        for keyword in ("anyOf", "oneOf")
        for form in node.get(keyword, ())
        if set(form) != {"required"}
    ]
    if forms:
        wanted = "array" if isinstance(part, int) else "object"
        node = next((form for form in forms if form.get("type") == wanted), forms[0])
    if isinstance(part, int):
        return dict(node.get("items", {}))
    properties: Mapping[str, Any] = node.get("properties", {})
    if part in properties:
        return dict(properties[part])
    others = node.get("additionalProperties")
    return dict(others) if isinstance(others, Mapping) else {}


def _assignment(key: str, properties: Mapping[str, Any]) -> str:
    """``key = <its example>``, as a line of TOML."""
    examples = properties.get(key, {}).get("examples")
    return f"{_toml_key(key)} = {_toml(examples[0]) if examples else chr(34) * 2}"


def _title(node: Mapping[str, Any]) -> str:
    title = node.get("title")
    return str(title) if title else f"of the form {node.get('pattern', '?')}"


def _kind_words(kinds: str | Sequence[str]) -> str:
    names = [kinds] if isinstance(kinds, str) else list(kinds)
    return " or ".join(_KINDS.get(name, name) for name in names)


def _shown(value: object) -> str:
    """A value as TOML writes it (tables and lists by kind), cut to stay on one line."""
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return f"a list of {len(value)}" if value else "an empty list"
    if isinstance(value, dt.date | dt.time):
        return f"a date or time ({value.isoformat()})"
    text = _toml(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _toml(value: object) -> str:
    """A value written as TOML, inline (the examples of the schema are plain JSON)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    if isinstance(value, dict):
        pairs = ", ".join(f"{_toml_key(str(k))} = {_toml(v)}" for k, v in value.items())
        return "{ " + pairs + " }"
    return str(value)


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key, ensure_ascii=False)


# -- values ----------------------------------------------------------------------------------


def _is_kind(value: object, kinds: str | Sequence[str]) -> bool:
    names = [kinds] if isinstance(kinds, str) else kinds
    return any(_IS_KIND[name](value) for name in names)


_IS_KIND = {
    "string": lambda value: isinstance(value, str),
    "integer": lambda value: isinstance(value, int) and not isinstance(value, bool),
    "number": lambda value: isinstance(value, int | float) and not isinstance(value, bool),
    "boolean": lambda value: isinstance(value, bool),
    "object": lambda value: isinstance(value, dict),
    "array": lambda value: isinstance(value, list),
}


def _equal(value: object, other: object) -> bool:
    """Equality as JSON Schema means it: true is not 1."""
    return type(value) is type(other) and value == other
