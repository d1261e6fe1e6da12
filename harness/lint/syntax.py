"""One walk of each syntax tree, shared by every analysis of `harness lint`.

The analyses visit the same trees many times: the depth check, the imports, the call graph,
each scope's facts, the calls of each statement in evaluation order, the seeding walk that
re-enters a function for every state it is called in. ``ast.iter_child_nodes`` recomputes
a node's children on each visit (a generator over the node's fields), which made those
visits most of the linter's time. So each tree is walked once, when it is read: the walk
checks the depth, lists the nodes in ``ast.walk`` order and records every node's children;
later traversals read the record. The trees are never changed after they are read, and
the record lives as long as they do (a node's ``id`` stays its own).

The record leaves out the context and operator nodes (``Load``, ``Store``, ``Add``,
``Eq``, ...): a third of all nodes, yet no analysis visits them (they are read as the
``ctx`` and ``op`` of their parent), and ``ast.parse`` shares one instance of each among
all trees. The depth check still counts them, as ``ast.walk`` reaches them.
"""

from __future__ import annotations

import ast

Children = tuple[ast.AST, ...]
_LEAF: Children = ()
_DEFINITIONS = frozenset({ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef})
# Where calls_in_order need not look: definitions, and the leaves most nodes are.
_NO_CALLS_BELOW = _DEFINITIONS | {ast.Name, ast.Constant}


class Syntax:
    """The children of every node of the trees read (see the module's docstring)."""

    def __init__(self) -> None:
        self._children: dict[int, Children] = {}
        self._calls: dict[int, list[ast.Call]] = {}
        # Per body of statements: its scope's nodes.
        self._scopes: dict[int, list[ast.AST]] = {}

    def read(self, tree: ast.AST, max_depth: int) -> list[ast.AST] | None:
        """Record ``tree``; its nodes in ``ast.walk`` order (less the context and
        operator nodes), or None (nothing recorded) when it nests deeper than
        ``max_depth``."""
        found: dict[int, Children] = {}
        nodes: list[ast.AST] = [tree]
        level: list[ast.AST] = [tree]
        depth = 0
        while level:
            if depth > max_depth:
                return None
            below: list[ast.AST] = []
            for node in level:
                children = child_nodes(node)
                found[id(node)] = children
                below.extend(children)
            if depth == max_depth and any(type(node) in _WITH_SINGLETONS for node in level):
                return None  # their context or operator node lies one level deeper
            nodes.extend(below)
            level = below
            depth += 1
        self._children.update(found)
        return nodes

    def children(self, node: ast.AST) -> Children:
        """:func:`child_nodes`, from the record for a node of a tree read."""
        known = self._children.get(id(node))
        return known if known is not None else child_nodes(node)

    def walk(self, node: ast.AST) -> list[ast.AST]:
        """``ast.walk(node)``: the node and everything below it, breadth first (less the
        context and operator nodes)."""
        found = [node]
        for each in found:
            found.extend(self.children(each))
        return found

    def scope(self, body: list[ast.stmt]) -> list[ast.AST]:
        """The statements of ``body`` and everything below them, except the bodies of
        the functions and classes they define (a scope's own facts, not its nested
        scopes'), depth first; kept for a body of a tree read (the call graph and the flow
        analysis both ask)."""
        known = self._scopes.get(id(body))
        if known is not None:
            return known
        recorded = self._children
        stack: list[ast.AST] = list(body)
        found: list[ast.AST] = []
        while stack:
            node = stack.pop()
            found.append(node)
            below = recorded.get(id(node))
            if below is None:
                below = child_nodes(node)
            if not below:
                continue  # a leaf: a name, a constant
            if type(node) in _DEFINITIONS:
                # A statement of ``body`` that defines: its decorators, defaults and bases
                # are evaluated in this scope, its body is not.
                inner = {id(statement) for statement in node.body}  # type: ignore[attr-defined]
                stack.extend(child for child in below if id(child) not in inner)
                continue
            for child in below:
                if type(child) not in _DEFINITIONS:
                    stack.append(child)
        if body and id(body[0]) in recorded:
            self._scopes[id(body)] = found
        return found

    def calls_in_order(self, node: ast.AST) -> list[ast.Call]:
        """The calls in ``node`` in evaluation order (arguments before the call that
        receives them), not entering the functions and classes it defines."""
        known = self._calls.get(id(node))
        if known is not None:
            return known
        calls: list[ast.Call] = []
        self._add_calls(node, calls)
        if id(node) in self._children:
            # The seeding walk asks again for every state a function is entered in.
            self._calls[id(node)] = calls
        return calls

    def _add_calls(self, node: ast.AST, calls: list[ast.Call]) -> None:
        for child in self.children(node):
            if type(child) not in _NO_CALLS_BELOW:  # parsed trees hold no subclasses
                self._add_calls(child, calls)
        if isinstance(node, ast.Call):
            calls.append(node)


def child_nodes(node: ast.AST) -> Children:
    """What ``ast.iter_child_nodes`` yields, as a tuple, less the context and operator
    nodes."""
    kind = type(node)
    fields = _FIELDS.get(kind)
    if fields is None:
        fields = _FIELDS[kind] = _node_fields(kind)
    if not fields:
        return _LEAF  # a name, a constant: nearly half of all nodes
    found: list[ast.AST] = []
    for name in fields:
        value = getattr(node, name, None)
        if isinstance(value, ast.AST):
            found.append(value)
        elif value and isinstance(value, list):
            for item in value:
                if isinstance(item, ast.AST):  # not None (a dict's ``**``), not a str
                    found.append(item)
    return tuple(found) if found else _LEAF


# Fields that hold the context and operator nodes left out of the record.
_SINGLETON_FIELDS = frozenset({"ctx", "op", "ops"})
# Fields that hold names, numbers or flags, never a node: not looked at.
_PLAIN_FIELDS = frozenset(
    {
        "id",
        "attr",
        "name",
        "asname",
        "arg",
        "module",
        "level",
        "conversion",
        "is_async",
        "type_comment",
        "kind",
        "simple",
        "tag",
    }
)
# Per node type: the fields child_nodes reads.
_FIELDS: dict[type[ast.AST], tuple[str, ...]] = {}
# Node types with a context or operator node (Name, Attribute, BinOp, Compare, ...).
_WITH_SINGLETONS = frozenset(
    kind
    for kind in vars(ast).values()
    if isinstance(kind, type)
    and issubclass(kind, ast.AST)
    and _SINGLETON_FIELDS.intersection(kind._fields)
)


def _node_fields(kind: type[ast.AST]) -> tuple[str, ...]:
    skipped = _SINGLETON_FIELDS | _PLAIN_FIELDS
    return tuple(
        name
        for name in kind._fields
        if name not in skipped and not (kind is ast.Constant and name == "value")
    )


__all__ = ["Syntax", "child_nodes"]
