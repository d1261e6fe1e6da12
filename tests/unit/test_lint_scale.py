"""`harness lint` at scale: the analyses share one walk of each tree, the flow analysis
repeats a round only where a value read early changed later, and the findings stay those
of the straightforward analysis."""

from __future__ import annotations

import ast
import gc
import os
import textwrap
import threading
from collections.abc import Iterable
from pathlib import Path

import pytest

from harness.lint import Finding, check_source, enabled_rules, lint_paths, workers
from harness.lint import flow as flow_module
from harness.lint.project import MAX_DEPTH, Module, Project
from harness.lint.syntax import Syntax


def findings(source: str) -> list[Finding]:
    return check_source(textwrap.dedent(source), "x.py")


# A method reads an attribute that a method analysed after it sets: only a second round
# sees the timestamp reach the file.
LATE_ATTRIBUTE = """
    import time


    class Recorder:
        def save(self, path):
            with open(path, "w") as stream:
                stream.write(str(self.stamp))

        def start(self):
            self.stamp = time.time()
"""


def test_a_value_read_before_it_is_set_is_followed_in_another_round() -> None:
    (finding,) = findings(LATE_ATTRIBUTE)
    assert (finding.line, finding.rule) == (11, "HR010")
    assert "reaches .write() at line 8" in finding.message


def test_programs_whose_reads_were_final_are_not_analysed_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rounds: list[int] = []
    original = flow_module.Flow._stale

    def counted(self: flow_module.Flow) -> set[int]:
        stale = original(self)
        rounds.append(len(stale))
        return stale

    monkeypatch.setattr(flow_module.Flow, "_stale", counted)
    settled = """
        import time, json


        class Recorder:
            def start(self):
                self.stamp = time.time()

            def save(self, path):
                json.dump(self.stamp, open(path, "w"))
    """
    (finding,) = findings(settled)
    assert finding.rule == "HR010"
    assert rounds == [0]  # one round: every read already saw its final value
    rounds.clear()
    findings(LATE_ATTRIBUTE)
    assert rounds == [1, 0]


# -- one walk of each tree ----------------------------------------------------------------

EVERY_KIND = """
import os, json as j
from . import sibling
@decorator(1)
class Model(Base, metaclass=Meta):
    x: int = 3
    async def run(self, a, /, b=2, *args, c, **kwargs) -> list[int]:
        async with open(a) as f, lock:
            async for item in f:
                yield item
        return [y async for y in gen() if y]
def f(x):
    global g
    try:
        g = {k: v for k, v in x.items()} | {1, 2} or (lambda q: q)(x)
    except* ValueError as error:
        raise RuntimeError(f"{error!r:>10}") from error
    match x:
        case [1, *rest] if rest: pass
        case {"k": v, **others}: pass
        case Point(x=0) | None: pass
    while (n := len(x)) > 0:
        del x[0]; x[1:2] = [sum(i for i in range(n))]
    assert not x, ~n
    return x[::2], -n, a if b else c, await_(), *x
"""


# The context and operator nodes, which the record leaves out.
SINGLETONS = (ast.expr_context, ast.operator, ast.unaryop, ast.boolop, ast.cmpop)


def kept(nodes: Iterable[ast.AST]) -> list[ast.AST]:
    return [node for node in nodes if not isinstance(node, SINGLETONS)]


def test_the_recorded_children_and_walk_are_those_of_the_ast_module() -> None:
    syntax = Syntax()
    tree = ast.parse(EVERY_KIND)
    nodes = syntax.read(tree, MAX_DEPTH)
    assert nodes == kept(ast.walk(tree))
    assert {type(node) for node in ast.walk(tree) if isinstance(node, SINGLETONS)} >= {
        ast.Load,
        ast.Store,
        ast.Del,
        ast.BitOr,
        ast.Gt,
        ast.Not,
        ast.Invert,
        ast.USub,
        ast.Or,
    }
    for node in nodes:
        assert syntax.children(node) == tuple(kept(ast.iter_child_nodes(node)))
        assert syntax.walk(node) == kept(ast.walk(node))
    # A scope: its statements and what is below them, but no definition below them, and
    # of a definition among its statements the decorators, defaults and bases, not the body.
    definitions = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    for body in [tree.body, *(n.body for n in nodes if isinstance(n, definitions))]:
        expected, stack = [], list(body)
        while stack:
            node = stack.pop()
            expected.append(node)
            below = kept(ast.iter_child_nodes(node))
            if isinstance(node, definitions):
                stack.extend(c for c in below if c not in node.body)
            else:
                stack.extend(c for c in below if not isinstance(c, definitions))
        assert syntax.scope(body) == expected
        assert syntax.scope(body) == expected  # the second time from the record
    # A node built later (not recorded) gets its children all the same.
    made = ast.BinOp(ast.Constant(1), ast.Add(), ast.Name("x", ast.Load()))
    assert syntax.children(made) == tuple(kept(ast.iter_child_nodes(made)))


def test_a_modules_nodes_of_one_kind_are_those_of_its_walk_in_order() -> None:
    tree = ast.parse(EVERY_KIND)
    nodes = Syntax().read(tree, MAX_DEPTH)
    assert nodes is not None
    module = Module("every", Path("every.py"), "every.py", EVERY_KIND, tree, True, nodes)
    for kind in {type(node) for node in nodes}:
        assert module.of_kind(kind) == [node for node in nodes if type(node) is kind]
    assert module.of_kind(ast.Call)
    assert module.of_kind(ast.Nonlocal) == []  # a kind the module lacks


def test_a_modules_resolved_path_is_that_of_pathlib_through_links(tmp_path: Path) -> None:
    """The folder is resolved once per run and the name joined to it, unless the file
    itself is a link."""
    real = tmp_path / "real"
    (real / "sub").mkdir(parents=True)
    (real / "sub" / "train.py").write_text("x = 1\n")
    (real / "elsewhere.py").write_text("y = 2\n")
    (real / "sub" / "linked.py").symlink_to(real / "elsewhere.py")
    (tmp_path / "via").symlink_to(real)
    project = Project()
    for path in [
        tmp_path / "via" / "sub" / "train.py",
        tmp_path / "via" / "sub" / "linked.py",
        tmp_path / "via" / "sub" / ".." / "sub" / "train.py",
        real / "sub" / "train.py",
    ]:
        tree = ast.parse(path.read_text())
        nodes = project.syntax.read(tree, MAX_DEPTH)
        assert nodes is not None
        module = project.add(path, path.name, path.read_text(), tree, nodes, linted=True)
        assert module.resolved == path.resolve()
    assert project.modules[1].resolved == real / "elsewhere.py"


def test_calls_come_in_evaluation_order_without_entering_definitions() -> None:
    syntax = Syntax()
    tree = ast.parse("f(g(1), h(k()))\nclass C:\n    x = m()\n")
    assert syntax.read(tree, MAX_DEPTH) is not None
    statement, _ = tree.body
    calls = syntax.calls_in_order(statement)
    assert [ast.unparse(call.func) for call in calls] == ["g", "k", "h", "f"]
    assert syntax.calls_in_order(statement) is calls  # asked again: the record
    assert syntax.calls_in_order(tree) == calls  # the class's body is its own scope


def test_a_tree_too_deep_is_refused_and_nothing_of_it_recorded() -> None:
    syntax = Syntax()
    tree = ast.parse("x = " + "-" * 50 + "1")
    assert syntax.read(tree, 40) is None
    assert syntax._children == {}
    assert syntax.read(tree, 60) is not None


@pytest.mark.parametrize(
    "source", ["x = y", "x = -y", "x = a.b", "x = a < b", "x = a or b", "del x[0]"]
)
def test_the_depth_limit_counts_the_context_and_operator_nodes(source: str) -> None:
    # The deepest node is a context or operator node, which the record leaves out: a
    # tree is refused exactly where ast.walk reaches a node beyond the limit.
    tree = ast.parse(source)
    depths: dict[bool, int] = {True: 0, False: 0}  # by whether the node is left out
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        left_out = isinstance(node, SINGLETONS)
        depths[left_out] = max(depths[left_out], depth)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    deepest = depths[True]
    assert depths[False] < deepest
    assert Syntax().read(tree, deepest - 1) is None
    assert Syntax().read(tree, deepest) is not None


def test_the_collector_is_off_while_linting_and_restored_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[bool] = []
    original = flow_module.Flow.run

    def watched(self: flow_module.Flow) -> list[flow_module.FlowFinding]:
        seen.append(gc.isenabled())
        return original(self)

    monkeypatch.setattr(flow_module.Flow, "run", watched)
    before = gc.get_threshold()
    assert gc.isenabled()
    findings(LATE_ATTRIBUTE)
    assert seen == [False]
    assert gc.isenabled()
    assert gc.get_threshold() == before
    gc.disable()
    try:
        findings(LATE_ATTRIBUTE)
        assert not gc.isenabled()  # off before, off after
    finally:
        gc.enable()


# Modules importing each other, a class whose methods are nested in a function, functions
# nested in functions: every kind of link between the parts of a program.
LINKED_PROJECT = {
    "a.py": "import b\n\n\ndef seed(value):\n    b.seed(value)\n",
    "b.py": (
        "import random\nimport a\n\n\ndef seed(value):\n    random.seed(value)\n\n\n"
        "def make():\n    class Local:\n        def step(self):\n            return inner()\n\n"
        "    def inner():\n        return random.random()\n\n    return Local().step()\n"
    ),
    "train.py": (
        "import json, time\nimport a, b\n\n\nclass Model:\n    def __init__(self):\n"
        "        self.stamp = time.time()\n\n    def save(self):\n"
        "        json.dump(self.stamp, open('out.json', 'w'))\n\n\n"
        "a.seed(0)\nModel().save()\nprint(b.make())\n"
    ),
}


def test_a_lint_leaves_no_cycles_for_the_collector(tmp_path: Path) -> None:
    """The trees are freed when the lint ends, by reference counting: a cycle left among
    the modules, classes and functions would keep every tree for a collection that
    traverses them all."""
    for name, source in LINKED_PROJECT.items():
        (tmp_path / name).write_text(source)
    rules = enabled_rules(["ALL"], [])
    lint_paths([tmp_path], rules, relative_to=tmp_path, jobs=1)  # imports, caches warmed
    gc.collect()
    gc.disable()
    try:
        result = lint_paths([tmp_path], rules, relative_to=tmp_path, jobs=1)
        assert {finding.rule for finding in result.findings} >= {"HR010"}
        del result
        assert gc.collect() == 0
    finally:
        gc.enable()


# -- programs in parallel ------------------------------------------------------------------


def gallery(root: Path, scripts: int) -> Path:
    """A folder of separate scripts, a few seeding through one helper."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "common.py").write_text(
        "import random\n\n\ndef seed_all(seed):\n    random.seed(seed)\n"
    )
    for number in range(scripts):
        helper = "import common\ncommon.seed_all(0)\n" if number % 5 == 0 else ""
        (root / f"plot_{number:03d}.py").write_text(
            f"import json, time\nimport numpy as np\nimport torch\n{helper}"
            f"x = np.random.rand({number + 1})\nlayer = torch.nn.Linear(2, 2)\n"
            "json.dump([x.tolist(), time.time()], open('out.json', 'w'))\n"
            "torch.save(layer.state_dict(), 'layer.pt')\n"
        )
    return root


def test_programs_analysed_in_several_processes_give_the_same_findings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = gallery(tmp_path, 60)
    rules = enabled_rules(["ALL"], [])
    alone = lint_paths([root], rules, relative_to=root, jobs=1)
    forks: list[int] = []
    fork = os.fork

    def counted() -> int:
        forks.append(1)
        return fork()

    # Alone in its process (a test runner's own threads aside): forked.
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    monkeypatch.setattr(os, "fork", counted)
    shared = lint_paths([root], rules, relative_to=root, jobs=3)
    assert len(forks) == 2  # this process analyses a share too
    assert shared == alone
    assert {f.rule for f in alone.findings} >= {"HR002", "HR010", "HR017"}
    # Each omission of the helper stays one finding with the uses of every script that
    # calls it, whichever process analysed them.
    omissions = [f for f in alone.findings if f.path == "common.py"]
    assert [f.rule for f in omissions] == ["HR002", "HR017"]
    assert all("12 use(s) in 12 files" in f.message for f in omissions)


def test_few_files_or_a_running_thread_are_analysed_in_this_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_fork() -> int:
        raise AssertionError("started fork workers")

    monkeypatch.setattr(os, "fork", no_fork)
    monkeypatch.setattr(workers, "available_cores", lambda: 2)
    rules = enabled_rules(["ALL"], [])
    few = gallery(tmp_path / "few", workers.MIN_FILES - 2)
    assert lint_paths([few], rules, relative_to=few).findings
    many = gallery(tmp_path / "many", workers.MIN_FILES + 2)
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert lint_paths([many], rules, relative_to=many).findings
    finally:
        stop.set()
        thread.join()
    # Alone in its process (a test runner's own threads aside), many files go to workers.
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    with pytest.raises(AssertionError, match="started fork workers"):
        lint_paths([many], rules, relative_to=many)


def test_a_share_whose_worker_failed_is_analysed_in_this_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = gallery(tmp_path, 60)
    rules = enabled_rules(["ALL"], [])
    alone = lint_paths([root], rules, relative_to=root, jobs=1)
    forks: list[int] = []
    fork = os.fork

    def counted() -> int:
        forks.append(1)
        return fork()

    # Alone in its process (a test runner's own threads aside): forked.
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    monkeypatch.setattr(os, "fork", counted)
    # A worker that dies before it sends anything (killed, out of memory).
    monkeypatch.setattr(workers, "_encode", lambda found: os._exit(3))
    assert lint_paths([root], rules, relative_to=root, jobs=2) == alone
    # A worker whose findings do not read back.
    monkeypatch.setattr(workers, "_encode", lambda found: b"[[1, 2]]")
    assert lint_paths([root], rules, relative_to=root, jobs=2) == alone
    assert len(forks) == 2


def test_findings_travel_from_a_worker_as_they_are(tmp_path: Path) -> None:
    found = lint_paths([gallery(tmp_path, 10)], enabled_rules(["ALL"], [])).findings
    assert any(finding.related for finding in found)
    assert workers._decode(workers._encode(list(found))) == list(found)


def test_a_name_read_before_a_later_assignment_is_followed_in_another_pass() -> None:
    late = """
        import json, time


        def run(path):
            previous = 0
            for _ in range(3):
                total = previous + 1
                previous = time.time()
            json.dump(total, open(path, "w"))
    """
    (finding,) = findings(late)
    assert (finding.line, finding.rule) == (9, "HR010")
    # The module's body, then run(): once more after its first pass only.
    assert _passes(late) == [False, True, False]


def test_a_comprehension_alone_takes_no_second_pass() -> None:
    """A comprehension's name is unbound again after it: its reads inside are not reads
    of the scope's name, so a function whose other reads saw their final values is done
    after one pass; a comprehension over a listing still reaches the result."""
    source = """
        import json, os


        def run(path):
            names = [name.upper() for name in os.listdir(path) if name]
            json.dump(names, open(path, "w"))
    """
    (finding,) = findings(source)
    assert (finding.line, finding.rule) == (6, "HR014")
    assert _passes(source) == [False, False]  # the module's body, then run(): one pass each


def test_a_name_read_in_a_comprehension_before_its_value_outside_grows_takes_a_pass() -> None:
    """What a comprehension's name held before it still counts: a later assignment to it
    outside is read by the next pass."""
    source = """
        import json, time


        def run(path):
            item = 0
            kept = [item for _ in range(3) for item in [item]]
            item = time.time()
            json.dump(kept, open(path, "w"))
    """
    assert [(f.line, f.rule) for f in findings(source)] == [(8, "HR010")]


# -- programs in which no value can differ between runs ------------------------------------

# Each program holds one kind of source alone, which reaches a result: the flow analysis
# must run for it (a program with none is not analysed, see Flow._may_have_sources).
ONE_SOURCE = {
    "clock": ("import json, time\njson.dump(time.time(), open('o', 'w'))\n", "HR010"),
    "clock in a default": (
        "import argparse, datetime\nparser = argparse.ArgumentParser()\n"
        "parser.add_argument('--out', default=str(datetime.date.today()))\n"
        "args = parser.parse_args()\nopen(args.out, 'w').write('x')\n",
        "HR010",
    ),
    "entropy": ("import os\nopen('o', 'wb').write(os.urandom(8))\n", "HR011"),
    "secrets": ("import secrets\nopen('o', 'w').write(secrets.token_hex())\n", "HR011"),
    "listing": (
        "import json, os\nfound = []\nfor name in os.listdir('.'):\n    found.append(name)\n"
        "json.dump(found, open('o', 'w'))\n",
        "HR014",
    ),
    "walk": (
        "import json, os\nfound = [d for d, _, _ in os.walk('.')]\n"
        "json.dump(found, open('o', 'w'))\n",
        "HR014",
    ),
    "glob method": (
        "import json\nfrom pathlib import Path\nfound = [str(p) for p in Path('.').glob('*')]\n"
        "json.dump(found, open('o', 'w'))\n",
        "HR014",
    ),
    "completion": (
        "import json\nfrom concurrent.futures import as_completed\n"
        "found = [f.result() for f in as_completed(jobs)]\njson.dump(found, open('o', 'w'))\n",
        "HR015",
    ),
    "unordered method": (
        "import json\nfound = list(pool.imap_unordered(str, range(3)))\n"
        "json.dump(found, open('o', 'w'))\n",
        "HR015",
    ),
    "unordered parallel": (
        "import json\nfrom joblib import Parallel\n"
        "found = list(Parallel(return_as='generator_unordered')(jobs))\n"
        "json.dump(found, open('o', 'w'))\n",
        "HR015",
    ),
    "string hash": ("import random\nrandom.seed(hash('run'))\n", "HR016"),
    "set literal": (
        "import json\nfound = []\nfor x in {'a', 'b'}:\n    found.append(x)\n"
        "json.dump(found, open('o', 'w'))\n",
        "HR012",
    ),
    "set call": ("import json\njson.dump(','.join(set(names)), open('o', 'w'))\n", "HR012"),
    "set comprehension": (
        "import json\nkept = {n for n in names}\njson.dump(list(kept), open('o', 'w'))\n",
        "HR012",
    ),
    "unseeded draw": ("import numpy as np\nnp.save('o.npy', np.random.rand(3))\n", "HR002"),
    "draw as a seed": (
        "import random\nimport numpy as np\nrandom.seed(np.random.randint(9))\n",
        "HR018",
    ),
}


@pytest.mark.parametrize("kind", list(ONE_SOURCE))
def test_a_program_with_one_kind_of_source_is_analysed(kind: str) -> None:
    source, rule = ONE_SOURCE[kind]
    assert rule in {finding.rule for finding in check_source(source, "x.py")}


def test_a_program_without_sources_is_not_analysed_for_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    analysed: list[object] = []
    original = flow_module._Analysis.run

    def counted(self: flow_module._Analysis, body: list[ast.stmt]) -> None:
        analysed.append(body)
        original(self, body)

    monkeypatch.setattr(flow_module._Analysis, "run", counted)
    quiet = """
        import json
        import numpy as np
        import torch
        from sklearn.cluster import KMeans

        x = np.loadtxt("points.txt")
        labels = KMeans(3).fit_predict(x)
        layer = torch.nn.Linear(2, 2)
        json.dump(labels.tolist(), open("labels.json", "w"))
    """
    # The state rules still hold: the estimator and the layer are unseeded.
    assert {finding.rule for finding in findings(quiet)} == {"HR013", "HR017"}
    assert analysed == []
    findings(quiet.replace("layer =", "print(hash('x'))\n        layer ="))
    assert analysed  # a source, even one that reaches nothing: analysed


def test_sources_reach_their_sinks_in_the_order_of_the_code() -> None:
    # A set of sources iterates by their nodes' addresses: the first to reach a seed
    # decides the finding's message, so the order must be the code's, run after run.
    from harness.lint.flow import Source, _in_code_order  # noqa: PLC0415 (the helper under test)

    tree = ast.parse("a = time.time()\nb = os.getpid()\nc = random.random()\n")
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)]
    sources = [Source("HR010", None, call, ast.unparse(call)) for call in reversed(calls)]
    ordered = [source.detail for source in _in_code_order(frozenset(sources))]
    assert ordered == ["time.time()", "os.getpid()", "random.random()"]


def _passes(source: str) -> list[bool]:
    """Whether each pass of the flow analysis over ``source`` asked for another."""
    passes: list[bool] = []
    original = flow_module._Analysis._stale

    def counted(self: flow_module._Analysis) -> bool:
        passes.append(original(self))
        return passes[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(flow_module._Analysis, "_stale", counted)
        findings(source)
    return passes
