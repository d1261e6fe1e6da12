"""The scripts in a repository's root that look like its training entry points.

A research repository is run as ``python train.py``: it has no ``module:function`` to
call, and `harness init`'s example experiment only gets in the way. When nothing is
declared, init declares such scripts as ``command`` experiments instead, found from their
syntax trees (never run):

- a script is a file in the project's root that runs something when started: an ``if
  __name__ == "__main__":`` block, an ``argparse`` parser built outside any function, or a
  body of statements at module level (a loop, a call); a module of definitions only is a
  library, and packaging, test and tooling files are none;
- the training ones are those named for it (``train*.py``, ``gpt_train.py``,
  ``pretrain.py``, ``finetune.py``, ``main.py``, ``run.py``, ``fit_model.py``), best
  first, at most :data:`MOST`; with none so named, those that make a training call
  (``loss.backward()``, ``model.fit(X, y)``, ``trainer.train()``: Karpathy's
  ``bigram.py`` and ``gpt.py``); with none of those either, the only script is taken
  when it imports more than the standard library (a script that builds the README is no
  experiment); several scripts and no sign of training leave the choice to the user.

The command has no arguments: which of a script's options make a short, meaningful run
(a step limit, a data path) is the user's call; the step-like options the parser declares
are named, so the user knows what to add.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Sequence, Set
from dataclasses import dataclass

from harness.config_schema import PLAIN_NAME_PATTERN

# "A few": more training scripts than this are named, not all declared.
MOST = 3
# Files in a root folder that are not experiments whatever they hold.
_NOT_EXPERIMENTS = frozenset(
    {"setup.py", "conftest.py", "noxfile.py", "fabfile.py", "manage.py", "harness_example.py"}
)
_TRAINING_NAMES = ("main", "run", "fit")
# Calls that write files besides those named save*, to_*, write*, dump* and log_*:
# loggers and checkpoints that write as they go, and folders made to be written to.
_WRITERS = frozenset(
    {
        "SummaryWriter",
        "ModelCheckpoint",
        "Trainer",
        "imwrite",
        "imsave",
        "savetxt",
        "copyfile",
        "mkdir",
        "makedirs",
        "add_scalar",
        "FileHandler",
    }
)
# Frameworks of apps that serve (a model behind an HTTP endpoint, a demo page).
_WEB_FRAMEWORKS = frozenset(
    {"flask", "fastapi", "uvicorn", "streamlit", "gradio", "dash", "django", "bottle"}
)
# Methods whose call trains: autograd's backward pass, the fit of scikit-learn, Keras,
# XGBoost, LightGBM and Lightning's Trainer.
_TRAINING_METHODS = frozenset({"backward", "fit", "fit_generator", "train_on_batch"})
# argparse options that bound a run: worth naming so the user can add one.
_STEP_OPTION = re.compile(
    r"^--?(max[-_]?)?(n[-_]?|num[-_]?)?(steps?|iters?|iterations|epochs?|updates)$"
)


@dataclass(frozen=True)
class Script:
    """A script to declare as an experiment."""

    path: str
    name: str  # the experiment's name, from the file's stem
    why: str  # what makes it a script: "a __main__ block, argparse"
    step_options: tuple[str, ...]  # the parser's options that bound a run (--max-steps)
    # Whether it imports anything beyond the standard library: a script that trains does
    # (a framework, NumPy, the project's model); one that builds the README does not.
    imports_beyond_stdlib: bool = True
    # The training call it makes, if any (".backward()"): a script not named for
    # training that makes one trains all the same.
    trains: str = ""
    # Whether it may write a file (a save, a dump, an open for writing, a logger that
    # writes, the project's own code): one that cannot only prints its results.
    writes_files: bool = True
    # Whether it imports a web framework: an app that serves, not an experiment.
    serves: bool = False

    def command(self) -> list[str]:
        return ["python", self.path]


@dataclass(frozen=True)
class Found:
    """The scripts to declare, and the scripts found but not declared."""

    chosen: tuple[Script, ...]
    others: tuple[str, ...]
    # Scripts in subfolders that are named for training, train, or run the project's own
    # code (``projects/adder/adder.py`` importing the project's package), named when none
    # is declared (never declared: a tutorial's many folders each hold one).
    deeper: tuple[str, ...] = ()


def script(path: str, tree: ast.Module) -> Script | None:
    """The file at ``path`` (relative to the root) as a script, or None when it is not one.
    A notebook is never a script: it is read for its imports only."""
    name = path.rsplit("/", 1)[-1]
    if not name.endswith(".py") or not _may_be_experiment(name):
        return None
    return _script(path, tree)


def find(scripts: Sequence[Script], running_project_code: Set[str] = frozenset()) -> Found:
    """The root's training scripts among ``scripts``, best first (see the module's
    docstring); ``running_project_code`` are the paths of files that import the project's
    own modules."""
    # A web app (app.py serving a model with Flask) runs until stopped: never an experiment.
    root = [s for s in scripts if "/" not in s.path and not s.serves]
    training = sorted(
        (s for s in root if _training_rank(s.name) is not None),
        key=lambda s: (_training_rank(s.name), s.path),
    )
    if not training:
        training = sorted((s for s in root if s.trains), key=lambda s: s.path)
    if training:
        chosen = tuple(training[:MOST])
    elif len(root) == 1 and root[0].imports_beyond_stdlib:
        chosen = (root[0],)
    else:
        chosen = ()
    others = tuple(s.path for s in scripts if "/" not in s.path and s not in chosen)
    deeper = (
        ()
        if chosen
        else tuple(
            s.path
            for s in scripts
            if "/" in s.path
            and not s.serves
            and (_training_rank(s.name) is not None or s.trains or s.path in running_project_code)
        )
    )
    return Found(chosen, others, deeper)


def _may_be_experiment(name: str) -> bool:
    return not (
        name in _NOT_EXPERIMENTS
        or name.startswith(("test_", "_"))
        or name.endswith("_test.py")
        or name == "conf.py"
    )


def _training_rank(name: str) -> int | None:
    """0 for train, 1 for train_*, 2 for a word starting train, pretrain or finetune
    (``gpt_train``, ``finetune``), 3 for main, run and fit*; None otherwise."""
    lowered = name.lower()
    words = re.split(r"[^a-z0-9]+", lowered)
    if lowered == "train":
        return 0
    if words[0].startswith("train"):
        return 1
    if any(word.startswith(("train", "pretrain", "finetune")) for word in words):
        return 2
    if lowered in _TRAINING_NAMES or words[0] == "fit":
        return 3
    return None


def _script(path: str, tree: ast.Module) -> Script | None:
    reasons = []
    body = tree.body
    if any(_is_main_guard(statement) for statement in body):
        reasons.append("a __main__ block")
    calls = _load_time_calls(body)
    if any(_called(call) == "ArgumentParser" for call in calls):
        reasons.append("argparse")
    if not reasons and any(_runs_something(statement) for statement in body):
        reasons.append("statements at module level")
    name = _experiment_name(path.rsplit("/", 1)[-1].removesuffix(".py"))
    if not reasons or name is None:
        return None
    calls, imported, imports_own_code = _calls_and_imports(tree)
    # The parser is often built in main(), called from the __main__ block: its options
    # are sought in the whole file.
    options = [
        option
        for call in calls
        if _called(call) == "add_argument"
        for option in _strings(call.args)
        if _STEP_OPTION.match(option)
    ]
    trains = _training_call(calls)
    if trains:
        reasons.append(f"calls {trains}")
    return Script(
        path,
        name,
        ", ".join(reasons),
        tuple(dict.fromkeys(options)),
        # The project's own code (a relative import) is beyond the standard library too.
        imports_beyond_stdlib=imports_own_code or bool(imported - sys.stdlib_module_names),
        trains=trains,
        # The project's own code may write: its writes are not looked at.
        writes_files=imports_own_code or any(_writes(call) for call in calls),
        serves=bool(imported & _WEB_FRAMEWORKS),
    )


def _calls_and_imports(tree: ast.Module) -> tuple[list[ast.Call], set[str], bool]:
    """In one walk of the file: its calls, the first names of the modules it imports
    absolutely (``torch`` for ``import torch.nn``), and whether it imports relatively
    (the project's own code)."""
    calls: list[ast.Call] = []
    imported: set[str] = set()
    relative = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            calls.append(node)
        elif isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level or node.module is None:
                relative = True
            else:
                imported.add(node.module.split(".")[0])
    return calls, imported, relative


def _writes(call: ast.Call) -> bool:
    """Whether a call writes a file: it saves, dumps, logs or opens for writing."""
    called = _called(call)
    if called in _WRITERS or called.startswith(("save", "to_", "write", "dump", "log_")):
        return True
    return called == "open" and _opens_for_writing(call)


def _opens_for_writing(call: ast.Call) -> bool:
    mode = call.args[1] if len(call.args) > 1 else None
    mode = next((k.value for k in call.keywords if k.arg == "mode"), mode)
    if mode is None:
        return False
    if not isinstance(mode, ast.Constant) or not isinstance(mode.value, str):
        return True  # a mode computed at run time may write
    return any(letter in mode.value for letter in "wax+")


def _training_call(calls: list[ast.Call]) -> str:
    """The first call that trains a model (``loss.backward()``, ``model.fit(X, y)``,
    ``trainer.train()``), as ``.backward()``; "" when there is none."""
    for node in calls:
        if isinstance(node.func, ast.Attribute) and (
            node.func.attr in _TRAINING_METHODS
            or (node.func.attr == "train" and _named_trainer(node.func.value))
        ):
            return f".{node.func.attr}()"
    return ""


def _named_trainer(node: ast.expr) -> bool:
    """``trainer`` or ``self.trainer``: Hugging Face's and others' ``trainer.train()``
    (``model.train()`` only switches a module to training mode)."""
    name = (
        node.id
        if isinstance(node, ast.Name)
        else node.attr
        if isinstance(node, ast.Attribute)
        else ""
    )
    return "trainer" in name.lower()


def _experiment_name(stem: str) -> str | None:
    """The file's stem as an experiment name (letters, digits, ``.``, ``_``, ``-``)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-._")
    name = re.sub(r"\.{2,}", ".", name)
    return name if re.search(PLAIN_NAME_PATTERN, name) else None


def _is_main_guard(statement: ast.stmt) -> bool:
    if not isinstance(statement, ast.If) or not isinstance(statement.test, ast.Compare):
        return False
    sides = [statement.test.left, *statement.test.comparators]
    names = {side.id for side in sides if isinstance(side, ast.Name)}
    texts = {side.value for side in sides if isinstance(side, ast.Constant)}
    return names == {"__name__"} and texts == {"__main__"}


def _runs_something(statement: ast.stmt) -> bool:
    """A statement that does work when the file runs (not a definition, import or name)."""
    if isinstance(statement, ast.Expr):
        return isinstance(statement.value, ast.Call | ast.Await)
    return isinstance(statement, ast.For | ast.While | ast.With | ast.AsyncFor | ast.AsyncWith)


def _load_time_calls(body: list[ast.stmt]) -> list[ast.Call]:
    """The calls in ``body`` outside any function or class (a stack, not recursion)."""
    calls = []
    stack: list[ast.AST] = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            continue
        if isinstance(node, ast.Call):
            calls.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return sorted(calls, key=lambda call: (call.lineno, call.col_offset))


def _called(call: ast.Call) -> str:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return ""


def _strings(nodes: list[ast.expr]) -> list[str]:
    return [
        node.value
        for node in nodes
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


__all__ = ["MOST", "Found", "Script", "find", "script"]
