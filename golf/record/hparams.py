"""The `Hyperparameters` of a record: code defaults by AST, the log's dump, overrides.

Records declare their hyperparameters as class attributes read from the environment,
`x = int(os.environ.get("X", 1024))` (also `float(…)`, `bool(int(…))`, string defaults,
`.strip()`/`.lower()`/`.split(",")`, `os.path.join`, arithmetic of other fields, f-strings,
minified module aliases such as `_A = None`). `code_defaults(tree)` evaluates each
attribute's expression with a small interpreter over the AST — as if no variable were set
in the environment — and never runs the code: only literals, names bound earlier in the
class (or to literals at module level), a closed set of builtins (`int float bool str
len min max abs round tuple list`), string methods and `os.path.join` are evaluated;
anything else (`str(uuid.uuid4())`, a required `os.environ["X"]`, a call to the record's
own function) is *unresolved*, with the reason, and so is every field that depends on it.

Precedence (`resolve`): code default < the log's hyperparameter dump (newer logs print
`Hyperparameters:` and then `  name: value` lines; `golf.record.logs` parses them) <
explicit overrides (`--set KEY=VALUE`). A dumped or overridden value is converted to the
type of the code default when it has one (`"1"` → True for a bool), else read as a
Python literal when it is one, else kept as text. A key that is unresolved in code but
dumped or overridden becomes resolved.

Not every constant is a hyperparameter: some records hard-code what others read from
the environment, e.g. `Rotary(self.head_dim, train_seq_len=1024)` in two SP1024 records
whatever `TRAIN_SEQ_LEN` says. `literal_call_args(tree, callees)` lists such literal
constructor/call arguments (callee, argument, value, line) so an importer can see them.
"""

from __future__ import annotations

import ast
import math
import operator
import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from golf.record.errors import RecordError
from golf.record.parse import FSTRING

CLASS_NAME = "Hyperparameters"
MAX_VALUE_LEN = 10_000
"""Longest string/sequence an expression may build (a `"x" * 10**9` default is refused)."""
MAX_ITEMS = 10_000


class Unresolved(Exception):
    """An expression the interpreter does not evaluate; the message says why."""


@dataclass(frozen=True)
class HParams:
    """Hyperparameters of one record.

    `values`: name → value (resolved ones only); `unresolved`: name → reason;
    `lines`: name → line of its definition in the code; `env`: name → the environment
    variable it reads; `origin`: name → "code", "log" or "override".
    """

    values: dict[str, Any] = field(default_factory=dict)
    unresolved: dict[str, str] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)

    def require(self, names: Iterable[str]) -> dict[str, Any]:
        """The values of `names`; a RecordError naming every missing or unresolved key."""
        names = list(names)
        bad = [n for n in names if n not in self.values]
        if bad:
            why = "; ".join(f"{n}: {self.unresolved.get(n, 'not defined')}" for n in bad)
            raise RecordError(f"hyperparameters not determined: {why}")
        return {n: self.values[n] for n in names}


def code_defaults(tree: ast.Module) -> HParams:
    """The defaults of the `Hyperparameters` class of `tree` (empty when there is none)."""
    cls = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == CLASS_NAME), None)
    out = HParams()
    if cls is None:
        return out
    module = _module_constants(tree)
    functions = _module_functions(tree)
    _class_body(cls.body, out, module, functions, None)
    return out


def _class_body(
    body: list[ast.stmt],
    out: HParams,
    module: dict[str, Any],
    functions: dict[str, ast.FunctionDef],
    condition: str | None,
) -> None:
    """Assignments of a class body in order; an `if` whose test resolves follows its
    branch, one whose test does not makes every name either branch assigns unresolved."""
    for stmt in body:
        if isinstance(stmt, ast.If):
            ev = _Eval(out.values, out.unresolved, module, functions)
            try:
                branch = stmt.body if ev.eval(stmt.test) else stmt.orelse
                _class_body(branch, out, module, functions, condition)
            except Unresolved as e:
                why = condition or f"assigned under a condition that {e}"
                _class_body(stmt.body + stmt.orelse, out, module, functions, why)
            continue
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target, expr = stmt.targets[0], stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            target, expr = stmt.target, stmt.value
        else:
            continue
        if not isinstance(target, ast.Name):
            continue
        name = target.id
        out.lines[name] = stmt.lineno
        ev = _Eval(out.values, out.unresolved, module, functions)
        try:
            value = ev.eval(expr)
            if condition is not None:
                raise Unresolved(condition)
            out.values[name] = value
            out.unresolved.pop(name, None)
            out.origin[name] = "code"
        except Unresolved as e:
            out.values.pop(name, None)
            out.unresolved[name] = str(e)
        except (RecursionError, MemoryError) as e:
            out.values.pop(name, None)
            out.unresolved[name] = f"too deep to evaluate ({type(e).__name__})"
        if ev.env_name is not None:
            out.env[name] = ev.env_name


def resolve(
    code: HParams,
    dump: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
) -> HParams:
    """`code` defaults overridden by a log's `dump`, then by explicit `overrides`."""
    out = HParams(
        dict(code.values),
        dict(code.unresolved),
        dict(code.lines),
        dict(code.env),
        dict(code.origin),
    )
    for origin, layer in (("log", dump or {}), ("override", overrides or {})):
        for name, text in layer.items():
            out.values[name] = convert(text, code.values.get(name))
            out.unresolved.pop(name, None)
            out.origin[name] = origin
    return out


def parse_override(item: str) -> tuple[str, str]:
    """`KEY=VALUE` (as `--set` takes it) split; a RecordError when there is no `=`."""
    key, eq, value = item.partition("=")
    if not eq or not key.strip().isidentifier():
        raise RecordError(f"--set {item!r}: expected KEY=VALUE with KEY a name")
    return key.strip(), value


def convert(text: str, like: Any) -> Any:
    """A dumped/overridden value as the type of the code default `like` (see module doc)."""
    text = text.strip()
    if isinstance(like, bool):
        low = text.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off", ""):
            return False
        raise RecordError(f"{text!r} is not a boolean")
    if isinstance(like, int):
        try:
            return int(text)
        except ValueError:
            try:
                as_float = float(text)
            except ValueError:
                raise RecordError(f"{text!r} is not an integer") from None
            if as_float.is_integer():
                return int(as_float)
            raise RecordError(f"{text!r} is not an integer") from None
    if isinstance(like, float):
        try:
            return float(text)
        except ValueError:
            raise RecordError(f"{text!r} is not a number") from None
    if isinstance(like, str):
        return text
    if len(text) <= MAX_VALUE_LEN:
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
            pass
    return text


@dataclass(frozen=True)
class LiteralArg:
    """A literal argument of a call in the code: `callee(…, keyword=value)` at `line`
    (`keyword` is `#i` for the i-th positional argument)."""

    callee: str
    keyword: str
    value: Any
    line: int


def literal_call_args(tree: ast.Module, callees: Iterable[str] | None = None) -> list[LiteralArg]:
    """Literal (constant) arguments of calls to `callees` (names as called: `Rotary`,
    `nn.Linear`; every call when None), in line order — the hard-coded constants an
    importer should compare with the hyperparameters."""
    wanted = set(callees) if callees is not None else None
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        callee = dotted(node.func)
        if callee is None or (wanted is not None and callee not in wanted and
                              callee.rsplit(".", 1)[-1] not in wanted):  # fmt: skip
            continue
        for i, arg in enumerate(node.args):
            if isinstance(arg, ast.Constant):
                found.append(LiteralArg(callee, f"#{i}", arg.value, node.lineno))
        for kw in node.keywords:
            if kw.arg and isinstance(kw.value, ast.Constant):
                found.append(LiteralArg(callee, kw.arg, kw.value.value, node.lineno))
    return sorted(found, key=lambda a: (a.line, a.callee, a.keyword))


def dotted(node: ast.expr) -> str | None:
    """`a.b.c` for a Name/Attribute chain, None for anything else."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


# ---- the interpreter -------------------------------------------------------------------

_ENV_GETTERS = {"os.environ.get", "environ.get", "os.getenv", "getenv"}
_BUILTINS: dict[str, Any] = {
    "int": int, "float": float, "bool": bool, "str": str, "len": len, "min": min,
    "max": max, "abs": abs, "round": round, "tuple": tuple, "list": list,
}  # fmt: skip
_STR_METHODS = {
    "strip", "lstrip", "rstrip", "lower", "upper", "split", "rsplit", "replace",
    "startswith", "endswith", "join", "format", "title", "removeprefix", "removesuffix",
    "isdigit",
}  # fmt: skip
_FUNCTIONS: dict[str, Any] = {
    "os.path.join": posixpath.join, "math.sqrt": math.sqrt, "math.log": math.log,
    "math.log2": math.log2, "math.ceil": math.ceil, "math.floor": math.floor,
}  # fmt: skip
_BINOPS: dict[type, Any] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow, ast.BitAnd: operator.and_, ast.BitOr: operator.or_,
    ast.BitXor: operator.xor, ast.LShift: operator.lshift, ast.RShift: operator.rshift,
}  # fmt: skip
_CMPOPS: dict[type, Any] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b, ast.Is: operator.is_, ast.IsNot: operator.is_not,
}  # fmt: skip
_MODULE = object()


def _module_constants(tree: ast.Module) -> dict[str, Any]:
    """Module-level names bound once to an evaluable literal (minified aliases `_A=None`)."""
    counts: dict[str, int] = {}
    exprs: dict[str, ast.expr] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                if isinstance(target, ast.Name):
                    counts[target.id] = counts.get(target.id, 0) + 1
                    exprs[target.id] = stmt.value
    out: dict[str, Any] = {}
    for name, expr in exprs.items():
        if counts[name] != 1:
            continue
        try:
            out[name] = ast.literal_eval(expr)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return out


def _module_functions(tree: ast.Module) -> dict[str, ast.FunctionDef]:
    """Module-level functions defined once: the env helpers some records call
    (`_e("SEED", 1337, int)`); `_Eval` interprets their assignments, ifs and returns."""
    seen: dict[str, int] = {}
    defs: dict[str, ast.FunctionDef] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.FunctionDef):
            seen[stmt.name] = seen.get(stmt.name, 0) + 1
            defs[stmt.name] = stmt
    return {n: f for n, f in defs.items() if seen[n] == 1}


MAX_CALL_DEPTH = 8
MAX_STATEMENTS = 1_000
"""Statements one field's evaluation may run inside the record's helper functions."""


class _Eval:
    def __init__(
        self,
        scope: dict[str, Any],
        unresolved: dict[str, str],
        module: dict[str, Any],
        functions: dict[str, ast.FunctionDef] | None = None,
    ):
        self.scope, self.unresolved, self.module = scope, unresolved, module
        self.functions = functions or {}
        self.locals: dict[str, Any] = {}
        self.env_name: str | None = None
        self.depth = 0
        self.statements = 0

    def eval(self, node: ast.expr) -> Any:
        value = self._eval(node)
        if (
            isinstance(value, str | bytes | list | tuple | dict | set)
            and len(value) > MAX_VALUE_LEN
        ):
            raise Unresolved("value too large")
        return value

    def _eval(self, node: ast.expr) -> Any:  # noqa: C901 - one branch per node type
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            for scope in (self.locals, self.scope):
                if node.id in scope:
                    return scope[node.id]
            if node.id in _BUILTINS:
                return _BUILTINS[node.id]
            if node.id in self.unresolved:
                raise Unresolved(f"depends on {node.id} ({self.unresolved[node.id]})")
            if node.id in self.module:
                return self.module[node.id]
            raise Unresolved(f"reads the name {node.id}")
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            items = [self.eval(e) for e in node.elts]
            return tuple(items) if isinstance(node, ast.Tuple) else (
                items if isinstance(node, ast.List) else set(items))  # fmt: skip
        if isinstance(node, ast.Dict):
            if any(k is None for k in node.keys):
                raise Unresolved("dict unpacking")
            return {self.eval(k): self.eval(v) for k, v in zip(node.keys, node.values, strict=True)}  # type: ignore[arg-type]
        if isinstance(node, ast.BinOp):
            return self._binop(node)
        if isinstance(node, ast.UnaryOp):
            v = self.eval(node.operand)
            ops = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_,
                   ast.Invert: operator.invert}  # fmt: skip
            return self._apply(ops[type(node.op)], v)
        if isinstance(node, ast.BoolOp):
            value = None
            for e in node.values:
                value = self.eval(e)
                if isinstance(node.op, ast.And) and not value:
                    return value
                if isinstance(node.op, ast.Or) and value:
                    return value
            return value
        if isinstance(node, ast.Compare):
            left = self.eval(node.left)
            for op, comp in zip(node.ops, node.comparators, strict=True):
                right = self.eval(comp)
                if not self._apply(_CMPOPS[type(op)], left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.IfExp):
            return self.eval(node.body) if self.eval(node.test) else self.eval(node.orelse)
        if isinstance(node, ast.JoinedStr):
            return "".join(self._fstring_part(v) for v in node.values)
        if isinstance(node, ast.Attribute) and dotted(node) in ("os.environ", "environ"):
            return {}  # as if nothing were set: `"RANK" in os.environ` is False
        if isinstance(node, ast.Subscript):
            if dotted(node.value) in ("os.environ", "environ"):
                key = node.slice.value if isinstance(node.slice, ast.Constant) else "?"
                raise Unresolved(f"requires the environment variable {key} (no default)")
            base = self.eval(node.value)
            if isinstance(node.slice, ast.Slice):
                sl = node.slice
                parts = [None if p is None else self.eval(p) for p in (sl.lower, sl.upper, sl.step)]
                return self._apply(operator.getitem, base, slice(*parts))
            return self._apply(operator.getitem, base, self.eval(node.slice))
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.ListComp | ast.GeneratorExp | ast.SetComp):
            return self._comprehension(node)
        raise Unresolved(f"{type(node).__name__} expression")

    def _fstring_part(self, node: ast.expr) -> str:
        if isinstance(node, ast.Constant):
            return str(node.value)
        if isinstance(node, ast.FormattedValue):
            value = self.eval(node.value)
            conv = {115: str, 114: repr, 97: ascii}.get(node.conversion, None)
            if conv is not None:
                value = conv(value)
            spec = self._eval(node.format_spec) if node.format_spec is not None else ""
            return self._apply(format, value, spec)
        return str(self.eval(node))

    def _binop(self, node: ast.BinOp) -> Any:
        left, right = self.eval(node.left), self.eval(node.right)
        if isinstance(node.op, ast.Pow) and isinstance(right, int | float) and abs(right) > 64:
            raise Unresolved("exponent too large")
        if isinstance(node.op, ast.LShift) and isinstance(right, int) and right > 64:
            raise Unresolved("shift too large")
        if isinstance(node.op, ast.Mult):
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, str | bytes | list | tuple) and isinstance(n, int):
                    if len(seq) * n > MAX_VALUE_LEN:
                        raise Unresolved("value too large")
        return self._apply(_BINOPS[type(node.op)], left, right)

    def _call(self, node: ast.Call) -> Any:
        name = dotted(node.func)
        if name in _ENV_GETTERS:
            if not node.args:
                raise Unresolved("reads an environment variable without a name")
            self.env_name = str(self.eval(node.args[0]))
            default: ast.expr | None = node.args[1] if len(node.args) > 1 else None
            for kw in node.keywords:
                if kw.arg == "default":
                    default = kw.value
            return None if default is None else self.eval(default)
        if name == FSTRING:  # an f-string of a 3.12-only file (golf.record.parse)
            return "".join(str(self.eval(a)) for a in node.args)
        if any(kw.arg is None for kw in node.keywords) or any(
            isinstance(a, ast.Starred) for a in node.args
        ):
            raise Unresolved(f"calls {name or 'a function'} with unpacked arguments")
        args = [self.eval(a) for a in node.args]
        kwargs = {kw.arg: self.eval(kw.value) for kw in node.keywords if kw.arg}
        if isinstance(node.func, ast.Name) and node.func.id in self.locals:
            fn = self.locals[node.func.id]
            if fn in _BUILTINS.values():
                return self._apply(fn, *args, **kwargs)
            raise Unresolved(f"calls the value of {node.func.id}")
        if name in _BUILTINS and name not in self.scope:
            return self._apply(_BUILTINS[name], *args, **kwargs)
        if name in self.functions and name not in self.scope:
            return self._function(self.functions[name], args, kwargs)
        if name in _FUNCTIONS:
            return self._apply(_FUNCTIONS[name], *args, **kwargs)
        if isinstance(node.func, ast.Attribute) and node.func.attr in _STR_METHODS:
            obj = self.eval(node.func.value)
            if isinstance(obj, str):
                return self._apply(getattr(obj, node.func.attr), *args, **kwargs)
        raise Unresolved(f"calls {name or 'an expression'}(…)")

    def _function(self, fdef: ast.FunctionDef, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """A record's helper run on evaluated arguments: assignments, ifs, returns only."""
        a = fdef.args
        if a.vararg or a.kwarg or a.posonlyargs or a.kwonlyargs:
            raise Unresolved(f"calls {fdef.name}(…) with a complex signature")
        if self.depth >= MAX_CALL_DEPTH:
            raise Unresolved(f"calls {fdef.name}(…) too deeply")
        names = [p.arg for p in a.args]
        if len(args) > len(names) or set(kwargs) - set(names):
            raise Unresolved(f"calls {fdef.name}(…) with arguments it does not take")
        bound = dict(zip(names, args, strict=False)) | kwargs
        defaults = dict(zip(names[len(names) - len(a.defaults) :], a.defaults, strict=True))
        for n in names:
            if n not in bound:
                if n not in defaults:
                    raise Unresolved(f"calls {fdef.name}(…) without {n}")
                bound[n] = self.eval(defaults[n])
        saved, self.locals = self.locals, bound
        self.depth += 1
        try:
            done, value = self._block(fdef.body, fdef.name)
        finally:
            self.locals = saved
            self.depth -= 1
        return value

    def _block(self, body: list[ast.stmt], fname: str) -> tuple[bool, Any]:
        for stmt in body:
            self.statements += 1
            if self.statements > MAX_STATEMENTS:
                raise Unresolved(f"{fname}(…) runs too long")
            if isinstance(stmt, ast.Return):
                return True, None if stmt.value is None else self.eval(stmt.value)
            if (
                isinstance(stmt, ast.Assign)
                and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name)
            ):
                self.locals[stmt.targets[0].id] = self.eval(stmt.value)
            elif isinstance(stmt, ast.If):
                done, value = self._block(stmt.body if self.eval(stmt.test) else stmt.orelse, fname)
                if done:
                    return True, value
            elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                continue  # a docstring
            elif isinstance(stmt, ast.Pass):
                continue
            else:
                raise Unresolved(f"{fname}(…) runs a {type(stmt).__name__} statement")
        return False, None

    def _comprehension(self, node: ast.ListComp | ast.GeneratorExp | ast.SetComp) -> Any:
        if len(node.generators) != 1 or not isinstance(node.generators[0].target, ast.Name):
            raise Unresolved("comprehension with several loops")
        gen = node.generators[0]
        var = gen.target.id  # type: ignore[union-attr]
        items = list(self.eval(gen.iter))[: MAX_ITEMS + 1]
        if len(items) > MAX_ITEMS:
            raise Unresolved("value too large")
        out = []
        saved = self.locals.get(var, _MODULE)
        try:
            for item in items:
                self.locals[var] = item
                if all(self.eval(cond) for cond in gen.ifs):
                    out.append(self.eval(node.elt))
        finally:
            if saved is _MODULE:
                self.locals.pop(var, None)
            else:
                self.locals[var] = saved
        return set(out) if isinstance(node, ast.SetComp) else out

    @staticmethod
    def _apply(fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ValueError, TypeError, ArithmeticError, KeyError, IndexError, AttributeError) as e:
            raise Unresolved(f"{type(e).__name__}: {e}") from None
