"""The Python 3.12 f-string rewrite of golf.record.parse, run in a child process.

libcst parses the file (its native parser reads 3.12 grammar on 3.11) and every
f-string becomes `__fstring__(part, (expr), …)` with the same number of lines. It runs
apart from the reviewing process because that parser can crash the interpreter on
hostile input (see golf.record.parse); `main` reads the source on stdin and writes the
rewritten source on stdout, or one line on stderr and exit code 2.
"""

from __future__ import annotations

import sys

from golf.record.errors import RecordError
from golf.record.parse import FSTRING

NAME = "<file>"
"""Stands for the file's name in the child's error line; the parent puts the name in."""


def rewrite(source: str, name: str) -> str:
    """`source` with every f-string replaced by an `__fstring__(…)` call (golf.record.parse)."""
    try:
        import libcst as cst
    except ImportError:  # pragma: no cover - installed with golf-eval[review]
        raise RecordError(
            f"{name}: Python 3.12 syntax needs libcst: pip install 'golf-eval[review]'"
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


def main() -> None:
    """stdin → rewritten source on stdout; a RecordError is one line on stderr, exit 2."""
    source = sys.stdin.buffer.read().decode("utf-8", "surrogatepass")
    try:
        out = rewrite(source, NAME)
    except RecordError as e:
        print(str(e), file=sys.stderr)
        raise SystemExit(2) from None
    sys.stdout.buffer.write(out.encode("utf-8", "surrogatepass"))
