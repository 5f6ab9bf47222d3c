"""Running a generated Python expression safely: ``safe_eval`` walks the syntax tree of a small
language (numbers, strings, lists, a few built-ins and string methods) and never calls ``eval()``.
The code-generation task scores an answer by running it here."""

from __future__ import annotations

import ast
from typing import Any


class UnsafeExpression(ValueError):
    """The expression uses something outside the small language safe_eval accepts, or is too big."""


_FUNCTIONS = {"abs": abs, "max": max, "min": min, "len": len, "sum": sum, "sorted": sorted, "round": round,
              "list": list, "range": range, "str": str}
_METHODS = {"upper", "lower", "title", "strip"}
_BINARY = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
           ast.FloorDiv: lambda a, b: a // b, ast.Mod: lambda a, b: a % b, ast.Div: lambda a, b: a / b,
           ast.Pow: lambda a, b: a ** b}
_MAX_SIZE = 10_000  # longest string or list, and largest number of digits, an expression may build


def _check_size(value: Any) -> Any:
    if isinstance(value, (str, list, tuple, range)) and len(value) > _MAX_SIZE:
        raise UnsafeExpression(f"result of length {len(value)} exceeds {_MAX_SIZE}")
    if isinstance(value, int) and value.bit_length() > 3 * _MAX_SIZE:
        raise UnsafeExpression("integer too large")
    return value


def safe_eval(expression: str) -> Any:
    """Evaluate a small arithmetic/string expression by walking its syntax tree — never with eval().

    Allowed: numbers and strings; + - * / // % ** (exponent at most 100); unary minus; lists and tuples;
    slices; calls of abs max min len sum sorted round list range str; the string methods upper lower
    title strip. Every intermediate result is size-checked, so "'a' * 10**9" fails fast instead of
    filling memory. Anything else raises UnsafeExpression; malformed code raises SyntaxError.

    Why not eval() with empty builtins? Because that is not a sandbox: attribute access such as
    ().__class__.__base__ reaches every class in the interpreter. A whitelist interpreter is short and
    has no such door.
    """
    tree = ast.parse(expression.strip(), mode="eval")
    return _eval_node(tree.body)


def _eval_node(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str)) and not isinstance(node.value,
                                                                                                        bool):
        return _check_size(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _eval_node(node.operand)
        if not isinstance(value, (int, float)):
            raise UnsafeExpression("unary minus applies to numbers only")
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval_node(node.left), _eval_node(node.right)
        if isinstance(node.op, ast.Pow) and (not isinstance(right, (int, float)) or abs(right) > 100):
            raise UnsafeExpression("exponents must be numbers of at most 100")
        if isinstance(node.op, ast.Mult) and isinstance(left, (str, list)) != isinstance(right, (str, list)):
            count = right if isinstance(left, (str, list)) else left
            sequence = left if isinstance(left, (str, list)) else right
            if isinstance(count, int) and len(sequence) * max(count, 0) > _MAX_SIZE:
                raise UnsafeExpression("repetition too long")
        try:
            return _check_size(_BINARY[type(node.op)](left, right))
        except (TypeError, ZeroDivisionError, OverflowError) as exc:
            raise UnsafeExpression(f"{type(exc).__name__}: {exc}") from None
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_eval_node(e) for e in node.elts]
        return _check_size(items if isinstance(node, ast.List) else tuple(items))
    if isinstance(node, ast.Subscript):
        value = _eval_node(node.value)
        if not isinstance(value, (str, list, tuple)):
            raise UnsafeExpression("only strings, lists and tuples can be indexed")
        index = node.slice
        try:
            if isinstance(index, ast.Slice):
                parts = [None if p is None else _eval_node(p) for p in (index.lower, index.upper, index.step)]
                return value[slice(*parts)]
            return value[_eval_node(index)]
        except (TypeError, IndexError, ValueError) as exc:
            raise UnsafeExpression(f"{type(exc).__name__}: {exc}") from None
    if isinstance(node, ast.Call) and not node.keywords:
        args = [_eval_node(a) for a in node.args]
        try:
            if isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS:
                if node.func.id == "range" and len(range(*args)) > _MAX_SIZE:
                    raise UnsafeExpression("range too long")
                return _check_size(_FUNCTIONS[node.func.id](*args))
            if isinstance(node.func, ast.Attribute) and node.func.attr in _METHODS:
                receiver = _eval_node(node.func.value)
                if not isinstance(receiver, str):
                    raise UnsafeExpression(f".{node.func.attr}() applies to strings only")
                return getattr(receiver, node.func.attr)(*args)
        except (TypeError, ValueError) as exc:
            raise UnsafeExpression(f"{type(exc).__name__}: {exc}") from None
    raise UnsafeExpression(f"{type(node).__name__} is not allowed: {ast.unparse(node)[:40]!r}")


def run_expression(expression: str) -> tuple[bool, Any]:
    """(True, value) when safe_eval accepts the expression, else (False, the error's name)."""
    try:
        return True, safe_eval(expression)
    except (SyntaxError, UnsafeExpression, RecursionError) as exc:
        return False, type(exc).__name__
