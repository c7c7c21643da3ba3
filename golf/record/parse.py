"""Parsing a record's Python source into a stdlib `ast.Module`, with limits, never executing.

Why not `ast.parse` alone: golf-eval runs on Python 3.11, and several records use Python
3.12 syntax (PEP 701 f-strings that reuse the outer quote inside a replacement field, as
`f"{", ".join(xs)}"`), which 3.11's tokenizer rejects. Of the two PyPI parsers that read
3.12 grammar from 3.11, `parso` 0.8.7 still rejects those f-strings (5 of the 46 decoded
`train_gpt*.py` files of the official board at 4908dc4), while `libcst` 1.9 (a Rust parser)
reads all 46. So: `ast.parse` first (fast, and what most records need); on a SyntaxError,
`libcst` parses the file and every f-string is rewritten to the 3.11-parsable call
`__fstring__(part, (expr), …)` that keeps its literal parts and its expressions (nested
f-strings included) and the same number of lines, so every other node keeps its line
number; then `ast.parse` reads the result. Other 3.12-only syntax (`type X = …`, generic
`def f[T]()`) is not rewritten and is a RecordError. Analyses see an f-string from a 3.12
file as `Call(func=Name("__fstring__"))` instead of `JoinedStr`; none of them relies on it.

Limits, checked before any parser runs: source size (`MAX_SOURCE_BYTES`) and bracket
nesting (`MAX_BRACKET_DEPTH`, counted over the raw text, so strings count too: an
over-estimate that real records stay far below); after parsing, the tree depth
(`MAX_AST_DEPTH`, measured iteratively). A parser's RecursionError or MemoryError is a
RecordError too.
"""

from __future__ import annotations

import ast

from golf.record.errors import RecordError

MAX_SOURCE_BYTES = 4_000_000
"""Decoded source; the largest record (2026-04-27 LQER) is 158 KB."""
MAX_BRACKET_DEPTH = 100
"""Open brackets at once in the raw text; the records reach 11."""
MAX_AST_DEPTH = 200
"""Nested AST nodes; the records reach 30-odd."""
FSTRING = "__fstring__"
"""The name an f-string of a 3.12-only file becomes a call to."""


def parse_python(source: str, name: str) -> ast.Module:
    """`source` (the text of file `name`) as a stdlib AST, within the limits above."""
    if len(source.encode("utf-8", "surrogatepass")) > MAX_SOURCE_BYTES:
        raise RecordError(f"{name}: source larger than the {MAX_SOURCE_BYTES:,}-byte limit")
    if "\x00" in source:
        raise RecordError(f"{name}: source contains NUL bytes")
    depth = bracket_depth(source)
    if depth > MAX_BRACKET_DEPTH:
        raise RecordError(f"{name}: brackets nest {depth} deep (limit {MAX_BRACKET_DEPTH})")
    try:
        try:
            tree = ast.parse(source, filename=name)
        except SyntaxError as first:
            tree = ast.parse(_rewrite_fstrings(source, name, first), filename=name)
    except SyntaxError as e:
        raise RecordError(f"{name}:{e.lineno}: does not parse ({e.msg})") from None
    except (RecursionError, MemoryError, ValueError) as e:
        raise RecordError(f"{name}: does not parse ({type(e).__name__})") from None
    deepest = ast_depth(tree)
    if deepest > MAX_AST_DEPTH:
        raise RecordError(f"{name}: syntax nests {deepest} deep (limit {MAX_AST_DEPTH})")
    return tree


def bracket_depth(source: str) -> int:
    """The most brackets open at once, counting every `([{` and `)]}` in the raw text."""
    depth = deepest = 0
    for ch in source:
        if ch in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")]}":
            depth = max(0, depth - 1)
    return deepest


def ast_depth(tree: ast.AST) -> int:
    """The depth of the tree, walked with an explicit stack (no recursion)."""
    deepest = 0
    stack = [(tree, 1)]
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        stack.extend((child, d + 1) for child in ast.iter_child_nodes(node))
    return deepest


def _rewrite_fstrings(source: str, name: str, first: SyntaxError) -> str:
    """`source` with every f-string replaced by an `__fstring__(…)` call (see module doc)."""
    try:
        import libcst as cst
    except ImportError:  # pragma: no cover - installed with golf-eval[review]
        raise RecordError(
            f"{name}:{first.lineno}: does not parse with Python 3.11 ({first.msg}); "
            "Python 3.12 syntax needs libcst: pip install 'golf-eval[review]'"
        ) from None
    try:
        module = cst.parse_module(source)
    except cst.ParserSyntaxError as e:
        raise RecordError(f"{name}:{e.raw_line}: does not parse ({e.message})") from None
    except (RecursionError, MemoryError) as e:
        raise RecordError(f"{name}: does not parse ({type(e).__name__})") from None
    empty = cst.Module(body=[])

    class Rewrite(cst.CSTTransformer):
        def leave_FormattedString(self, original, updated):  # type: ignore[no-untyped-def]
            args = []
            for part in _parts(updated.parts):
                if isinstance(part, str):
                    args.append(cst.Arg(cst.SimpleString(repr(part))))
                else:
                    args.append(
                        cst.Arg(part.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()]))
                    )
            call = cst.Call(func=cst.Name(FSTRING), args=args)
            lines = empty.code_for_node(updated).count("\n")
            if lines:  # keep the line count: the newlines go inside the call's parentheses
                code = empty.code_for_node(call)
                return cst.parse_expression(code[:-1] + "\n" * lines + ")")
            return call

        def leave_ConcatenatedString(self, original, updated):  # type: ignore[no-untyped-def]
            # "a" f"b": after the rewrite one side is a call, which cannot be juxtaposed
            left, right = updated.left, updated.right
            if isinstance(left, cst.Call) or isinstance(right, cst.Call):
                return cst.BinaryOperation(
                    left=left,
                    operator=cst.Add(),
                    right=right,
                    lpar=[cst.LeftParen()],
                    rpar=[cst.RightParen()],
                )
            return updated

    def _parts(parts):  # type: ignore[no-untyped-def]
        for part in parts:
            if isinstance(part, cst.FormattedStringText):
                yield part.value
            else:
                yield part.expression
                if part.format_spec:
                    yield from _parts(part.format_spec)

    try:
        return module.visit(Rewrite()).code
    except (RecursionError, MemoryError) as e:
        raise RecordError(f"{name}: does not parse ({type(e).__name__})") from None
    except Exception as e:  # libcst refusing a rewritten expression: still one line
        raise RecordError(
            f"{name}: cannot rewrite its 3.12 f-strings ({type(e).__name__})"
        ) from None
