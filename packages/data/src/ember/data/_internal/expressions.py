"""String filter expressions (``ds.filter(expr="a > 5 and b == 'x'")``) as pyarrow
compute expressions, parsed with ``ast`` (nothing is evaluated).

Supported: column names, literals (numbers, strings, True/False/None, lists/tuples for
``in``), comparisons (``== != < <= > >=``, chained), ``in`` / ``not in``, ``and`` / ``or``
/ ``not``, arithmetic (``+ - * /``, unary minus), ``is_null(col)`` / ``is_valid(col)``,
and ``col("my column")`` for a column whose name is not an identifier.

>>> to_arrow_expression("a > 5 and b == 'x'")
"""
from __future__ import annotations

import ast
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["to_arrow_expression"]

_COMPARE = {ast.Eq: "equal", ast.NotEq: "not_equal", ast.Lt: "less", ast.LtE: "less_equal",
            ast.Gt: "greater", ast.GtE: "greater_equal"}
_ARITH = {ast.Add: "add", ast.Sub: "subtract", ast.Mult: "multiply", ast.Div: "divide"}
_HELP = ("filter(expr=...) supports column names, literals, comparisons (== != < <= > >=), "
         "in / not in [..], and / or / not, + - * /, is_null(col), is_valid(col) and "
         "col('name'); for anything else pass a function: filter(fn=lambda row: ...)")


class _Literal:
    def __init__(self, value: Any) -> None:
        self.value = value


def to_arrow_expression(text: str) -> pc.Expression:
    """Parse ``text`` into a boolean ``pyarrow.compute.Expression`` (ValueError if invalid)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"filter(expr=...) needs a non-empty string, got {text!r}")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        raise ValueError(f"filter(expr={text!r}) is not a valid expression: {e.msg}. "
                         f"{_HELP}") from None
    out = _convert(tree.body, text)
    if isinstance(out, _Literal):
        return pc.scalar(out.value)
    return out


def _expr(node: Any) -> Any:
    return pc.scalar(node.value) if isinstance(node, _Literal) else node


def _convert(node: ast.AST, text: str) -> Any:
    if isinstance(node, ast.BoolOp):
        parts = [_expr(_convert(v, text)) for v in node.values]
        out = parts[0]
        for p in parts[1:]:
            out = (out & p) if isinstance(node.op, ast.And) else (out | p)
        return out
    if isinstance(node, ast.UnaryOp):
        operand = _convert(node.operand, text)
        if isinstance(node.op, ast.Not):
            return ~_expr(operand)
        if isinstance(node.op, ast.USub):
            if isinstance(operand, _Literal):
                return _Literal(-operand.value)
            return pc.negate(operand)
        if isinstance(node.op, ast.UAdd):
            return operand
    if isinstance(node, ast.Compare):
        left = _convert(node.left, text)
        result = None
        for op, right_node in zip(node.ops, node.comparators):
            if isinstance(op, (ast.In, ast.NotIn)):
                right = _convert(right_node, text)
                if not isinstance(right, _Literal) or not isinstance(right.value, list):
                    raise ValueError(f"filter(expr={text!r}): 'in' needs a literal list, "
                                     f"e.g. col in [1, 2]. {_HELP}")
                term = pc.is_in(_expr(left), value_set=pa.array(right.value))
                if isinstance(op, ast.NotIn):
                    term = ~term
            elif type(op) in _COMPARE:
                right = _convert(right_node, text)
                term = getattr(pc, _COMPARE[type(op)])(_expr(left), _expr(right))
            else:
                raise ValueError(f"filter(expr={text!r}): operator {type(op).__name__} is "
                                 f"not supported. {_HELP}")
            result = term if result is None else (result & term)
            left = right
        return result
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITH:
        left, right = _convert(node.left, text), _convert(node.right, text)
        return getattr(pc, _ARITH[type(node.op)])(_expr(left), _expr(right))
    if isinstance(node, ast.Name):
        if node.id in ("True", "False", "None"):  # pragma: no cover - parsed as Constant
            return _Literal({"True": True, "False": False, "None": None}[node.id])
        return pc.field(node.id)
    if isinstance(node, ast.Constant) and (node.value is None or
                                           isinstance(node.value, (bool, int, float, str))):
        return _Literal(node.value)
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        values = [_convert(e, text) for e in node.elts]
        if not all(isinstance(v, _Literal) for v in values):
            raise ValueError(f"filter(expr={text!r}): lists may hold only literals. {_HELP}")
        return _Literal([v.value for v in values])
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords \
            and len(node.args) == 1:
        name = node.func.id
        if name == "col" and isinstance(node.args[0], ast.Constant) and \
                isinstance(node.args[0].value, str):
            return pc.field(node.args[0].value)
        if name in ("is_null", "is_valid"):
            return getattr(pc, name)(_expr(_convert(node.args[0], text)))
    raise ValueError(f"filter(expr={text!r}): {ast.dump(node)[:60]}... is not supported. "
                     f"{_HELP}")
