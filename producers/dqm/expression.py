"""A small, safe expression language over input branches for DQM monitoring elements.

``MET_significance``, ``MET_pt / sqrt(MET_sumEt)``, ``Jet_pt * 0.001``, ``abs(Jet_eta)``: names are input
branches, numbers are constants; ``+ - * / ** %``, unary ``-`` and the functions of :data:`FUNCTIONS` (one
argument each). Nothing else is accepted (no attributes, subscripts, comparisons, other calls), and nothing is
evaluated by Python's ``eval``: the parsed tree is walked over numpy arrays.

Values are per event (a flat branch such as ``MET_pt``) or per object (a jagged branch such as ``Jet_eta``:
the flat values of all objects plus their counts per event). Mixing the two repeats the per-event value for
each object of the event (``Jet_pt / MET_pt``); two jagged operands must have the same counts per event.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from framework.exceptions import ConfigurationError

__all__ = ["Expression", "ExpressionError", "Values", "FUNCTIONS"]

FUNCTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sqrt": np.sqrt, "abs": np.abs, "log": np.log, "log10": np.log10, "exp": np.exp,
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "sinh": np.sinh, "cosh": np.cosh, "tanh": np.tanh,
}
_BINARY: dict[type, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.divide, ast.Pow: np.power,
    ast.Mod: np.mod,
}
_UNARY: dict[type, Callable[[np.ndarray], np.ndarray]] = {ast.USub: np.negative, ast.UAdd: np.positive}


@dataclass(frozen=True)
class Values:
    """Values of an expression over a set of events: flat ``values``; ``counts`` per event for per-object
    values (``None``: one value per event)."""

    values: np.ndarray
    counts: np.ndarray | None = None


class ExpressionError(ValueError):
    """The operands of an expression do not fit together in the events (e.g. two collections of different sizes);
    raised while filling, so the framework adds the module and the lumi section."""


class Expression:
    """A parsed expression; ``branches`` are the input branches it reads. Invalid text is a
    :class:`ConfigurationError` naming *where* (the module and monitoring element) and what is allowed."""

    def __init__(self, text: str, where: str):
        self.text = text.strip()
        self.where = where
        if not self.text:
            raise ConfigurationError(f"{where}: the expression is empty; give a branch name such as 'MET_pt'")
        try:
            tree = ast.parse(self.text, mode="eval")
        except SyntaxError as e:
            raise ConfigurationError(f"{where}: expression {self.text!r} is not valid: {e.msg} "
                                     f"(at column {e.offset})") from None
        names: list[str] = []
        self._check(tree.body, names)
        if not names:
            raise ConfigurationError(f"{where}: expression {self.text!r} reads no branch")
        self.branches: tuple[str, ...] = tuple(dict.fromkeys(names))
        self._tree = tree.body

    def _check(self, node: ast.AST, names: list[str]) -> None:
        if isinstance(node, ast.Name):
            if node.id in FUNCTIONS:
                raise ConfigurationError(f"{self.where}: in {self.text!r}, {node.id} is a function: write {node.id}(...)")
            names.append(node.id)
        elif isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            pass
        elif isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            self._check(node.left, names)
            self._check(node.right, names)
        elif isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            self._check(node.operand, names)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS
              and len(node.args) == 1 and not node.keywords):
            self._check(node.args[0], names)
        else:
            part = ast.get_source_segment(self.text, node) or type(node).__name__
            raise ConfigurationError(
                f"{self.where}: expression {self.text!r}: {part!r} is not allowed. Use branch names, numbers, "
                f"+ - * / ** %, and the functions {', '.join(FUNCTIONS)} (one argument each)")

    def evaluate(self, columns: dict[str, Values]) -> Values:
        """The expression over the events of *columns* (``{branch: Values}``), as float64."""
        with np.errstate(all="ignore"):  # log(0), x/0: -inf, inf, nan go to the histograms' flow bins
            return self._eval(self._tree, columns)

    def _eval(self, node: ast.AST, columns: dict[str, Values]) -> Values:
        if isinstance(node, ast.Name):
            v = columns[node.id]
            return Values(np.asarray(v.values, dtype=np.float64), v.counts)
        if isinstance(node, ast.Constant):
            return Values(np.asarray(float(node.value)), None)
        if isinstance(node, ast.UnaryOp):
            v = self._eval(node.operand, columns)
            return Values(_UNARY[type(node.op)](v.values), v.counts)
        if isinstance(node, ast.Call):
            v = self._eval(node.args[0], columns)
            return Values(FUNCTIONS[node.func.id](v.values), v.counts)
        assert isinstance(node, ast.BinOp)
        a, b = self._eval(node.left, columns), self._eval(node.right, columns)
        a_vals, b_vals, counts = broadcast(a, b, self.text)
        return Values(_BINARY[type(node.op)](a_vals, b_vals), counts)


def broadcast(a: Values, b: Values, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Bring per-event and per-object values to one shape (a constant is a 0-d array and fits anything)."""
    if a.counts is None and b.counts is None:
        return a.values, b.values, None
    if a.counts is not None and b.counts is not None:
        if len(a.counts) != len(b.counts) or not np.array_equal(a.counts, b.counts):
            raise ExpressionError(f"{what!r}: its jagged operands have different numbers of values per event "
                                  "(different collections); combine branches of one collection")
        return a.values, b.values, a.counts
    if a.counts is None:
        return (a.values if a.values.ndim == 0 else np.repeat(a.values, b.counts)), b.values, b.counts
    return a.values, (b.values if b.values.ndim == 0 else np.repeat(b.values, a.counts)), a.counts
