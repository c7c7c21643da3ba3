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
number; then `ast.parse` reads the result. libcst's parser is native code that
overflows its stack (SIGSEGV, not an exception) on deeply chained unary operators,
`not`s or lambdas, which a hostile file can pair with one 3.12 f-string to get past
`ast.parse`: so libcst runs in a child process (golf.record.fstrings) under a time and
memory limit, and a crash there is a RecordError here. Other 3.12-only syntax (`type X = …`, generic
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
import os
import subprocess
import sys

from golf.record.errors import RecordError

MAX_SOURCE_BYTES = 4_000_000
"""Decoded source; the largest record (2026-04-27 LQER) is 158 KB."""
MAX_BRACKET_DEPTH = 100
"""Open brackets at once in the raw text; the records reach 11."""
MAX_AST_DEPTH = 200
"""Nested AST nodes; the records reach 30-odd."""
REWRITE_TIMEOUT_S = 60
REWRITE_MEMORY_BYTES = 4 << 30
"""Limits of the child process that runs libcst (see `_rewrite_fstrings`)."""
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
    """`source` with every f-string replaced by an `__fstring__(…)` call (see module doc),
    computed by golf.record.fstrings in a child process."""
    if "f-string" not in first.msg and "f'" not in source and 'f"' not in source:
        raise first  # not the 3.12 f-string syntax: a plain syntax error
    try:
        done = subprocess.run(
            [sys.executable, "-c", "from golf.record.fstrings import main; main()"],
            input=source.encode("utf-8", "surrogatepass"),
            capture_output=True,
            timeout=REWRITE_TIMEOUT_S,
            preexec_fn=_limit_child if os.name == "posix" else None,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
    except subprocess.TimeoutExpired:
        raise RecordError(f"{name}: the 3.12 parser ran past {REWRITE_TIMEOUT_S} s") from None
    if done.returncode == 0:
        return done.stdout.decode("utf-8", "surrogatepass")
    reason = done.stderr.decode("utf-8", "replace").strip().splitlines()
    if done.returncode < 0:
        raise RecordError(f"{name}: the 3.12 parser crashed (signal {-done.returncode})")
    why = reason[-1] if reason else f"<file>: the 3.12 parser failed (exit {done.returncode})"
    raise RecordError(why.replace("<file>", name, 1))


def _limit_child() -> None:  # pragma: no cover - runs in the child
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (REWRITE_MEMORY_BYTES, REWRITE_MEMORY_BYTES))
