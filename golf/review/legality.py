"""Static legality heuristics over a record's decoded code (AST only, never executed).

Each heuristic is a pattern match that points a reviewer at lines, not a proof; each
names the condition of issue #1017 (1 strict causality, 2 a full normalized distribution,
3 score before update, 4 a single pass) or the organizers' ruling it bears on.

How the code is read: every function (nested functions inline, so an L-BFGS closure
sits in its loop) is walked in source order with a taint set: names and attributes
whose words include `val`/`validation` (`val_tokens`, `h.val_files`, `val_data`, not
`val_loss`/`val_batch_size`) are validation data, and so is whatever is assigned from
them (`x = val_tokens[a:b]`), a plain reassignment from clean data clearing it. Events:

- score: `+=` of val-derived values into a loss/nll/bpb accumulator (`loss_sum +=`), an
  `accumulate*` helper called on them, or a call of a function that scores;
- train: `.backward()` of a val-derived loss, or a call of a function that trains on val
  and scores nothing itself (its training is judged where it is called).

Heuristics (code: condition):

- `pre_quant_ttt_on_val` (3, 4): a train event on val with no score event before it in a
  loop they share — the tokens are learned before (or without) being scored, and scored
  later by a separate pass. Score-first TTT (score chunk i, then train on chunk i, inside
  one loop) does not match; phased TTT's global SGD on already-scored documents, called
  from the scoring loop after the score, does not match.
- `slot_per_batch_delta` (3): in one loop, fresh `requires_grad` tensors get their own
  optimizer, are stepped on the batch, and the batch is scored afterwards (SLOT: the
  scored positions shape the delta; context-only masks included, since the mask is not
  read). `update_before_score` (3) is the same order without the fresh tensors.
- `gold_token_blend` (2): a mixture `a*X + b*Y` of a target-token probability
  (`target`/`gold`/`tgt` names) and an n-gram/cache/count/hash probability: only the gold
  token's probability is mixed, so the mixture is not a normalized distribution.
- `second_scoring_pass` (4): `min()`/`max()` over several val scores (best of passes).
- `gptq_calibration_on_val` (ruling, 3): a hessian/gptq/calib function given val data.
- `train_data_at_eval` (ruling): training data read inside a loop that scores val, or
  anywhere in a scoring function that calls no other function of the file (a driver
  that trains, scores and logs its shard count is not matched).
- `ttt_warmup_on_val` (ruling, 3): a compile/warm-up loop that trains on val tokens;
  advisory (`ttt_warmup_on_val_throwaway`) when every optimizer there is built over
  objects created in that loop (a throwaway adapter, as 2026-04-10 VarLenAttn does).
- `smeargate_across_bos` (ruling, 1 within documents; advisory): a smear/shift of the
  previous token's embedding with no BOS mask, in code that isolates documents
  (cu_seqlens/varlen attention). Attention over a continuous stream already crosses
  BOS, so without document isolation this is not reported.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from golf.review.findings import Finding

CONDITIONS = {
    "pre_quant_ttt_on_val": "#1017 conditions 3 (score before update) and 4 (single pass)",
    "slot_per_batch_delta": "#1017 condition 3 (score before update)",
    "update_before_score": "#1017 condition 3 (score before update)",
    "gold_token_blend": "#1017 condition 2 (full normalized distribution)",
    "second_scoring_pass": "#1017 condition 4 (single pass); ruling: two-pass rescoring",
    "gptq_calibration_on_val": "ruling: val-calibrated GPTQ (condition 3: statistics of "
    "unscored tokens)",
    "train_data_at_eval": "ruling: no training data at evaluation",
    "ttt_warmup_on_val": "ruling: TTT compile warm-up on val tokens (condition 3)",
    "smeargate_across_bos": "ruling: SmearGate across a BOS (condition 1 within documents)",
    "ttt_warmup_on_val_throwaway": "ruling: TTT compile warm-up on val tokens",
}
TITLES = {
    "pre_quant_ttt_on_val": "optimizer steps on val tokens before they are scored "
    "(pre-quant TTT on val)",
    "slot_per_batch_delta": "per-batch delta optimized on a batch, then that batch scored (SLOT)",
    "update_before_score": "update on a batch before the batch is scored",
    "gold_token_blend": "gold-token-only probability blend (n-gram cache)",
    "second_scoring_pass": "best of several scoring passes",
    "gptq_calibration_on_val": "GPTQ calibrated on val data",
    "train_data_at_eval": "training data read by a scoring function",
    "ttt_warmup_on_val": "compile warm-up trains on val tokens",
    "smeargate_across_bos": "SmearGate mixes across BOS in document-isolated code",
    "ttt_warmup_on_val_throwaway": "compile warm-up steps a throwaway adapter on val tokens "
    "(deleted before scoring: no state reaches the scored model)",
}
SEVERITY = {"smeargate_across_bos": "warn", "ttt_warmup_on_val_throwaway": "warn"}

_NOT_DATA = {
    "loss", "bpb", "every", "size", "batch", "frac", "fraction", "step", "steps", "stride",
    "len", "seq", "time", "ms", "count", "enabled", "interval", "limit", "max", "min", "lr",
    "doc", "docs", "sum", "eval",
}  # fmt: skip
_SCORE_WORDS = {"loss", "nll", "bpb", "bits"}
_TRAIN_DATA_WORDS = {"files", "file", "loader", "shards", "shard", "stream", "pattern"}
_CACHE_WORDS = {"ngram", "ng", "cache", "count", "counts", "hash", "backoff", "bigram"}
_GOLD_WORDS = {"target", "targets", "gold", "tgt", "true"}
_OPTIMIZERS = {"SGD", "Adam", "AdamW", "LBFGS", "RMSprop", "Adagrad", "Muon"}
_AMBIGUOUS = {"step", "forward", "backward", "train", "eval", "zero_grad", "__call__", "__init__"}
EVIDENCE_CHARS = 160


def words(name: str) -> list[str]:
    """`val_tokens` → ["val", "tokens"]; `valTokens` → ["val", "tokens"]."""
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    return [w for w in re.split(r"[^A-Za-z0-9]+", name.lower()) if w]


def is_val_name(name: str) -> bool:
    ws = words(name)
    return any(w in ("val", "validation") for w in ws) and not any(w in _NOT_DATA for w in ws)


@dataclass
class Event:
    kind: str  # score, train, call, fresh, optimizer, gptq, train_read, blend, best, warm
    line: int
    loops: tuple[int, ...]
    detail: str = ""
    warm: bool = False
    names: frozenset[str] = frozenset()


@dataclass
class FunctionScan:
    name: str
    line: int
    events: list[Event] = field(default_factory=list)
    smear_shift: int | None = None
    mentions_bos: bool = False

    def of(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind]


class _Walker:
    """The ordered taint walk of one function (see the module doc)."""

    def __init__(self, scan: FunctionScan, functions: set[str], constants: dict[str, object]):
        self.scan = scan
        self.functions = functions
        self.constants = constants
        self.bound_in: dict[int, set[str]] = {}
        self.gold: set[str] = set()
        self.tainted: set[str] = set()
        self.loops: list[int] = []
        self.warm: list[bool] = [False]
        self.seen: set[tuple[str, int, str]] = set()

    # -- taint
    def tainted_expr(self, node: ast.AST | None) -> bool:
        if node is None:
            return False
        stack = [node]
        while stack:
            n = stack.pop()
            if isinstance(n, ast.Name) and (n.id in self.tainted or is_val_name(n.id)):
                return True
            if isinstance(n, ast.Attribute) and is_val_name(n.attr):
                return True
            if (
                isinstance(n, ast.Constant)
                and isinstance(n.value, str)
                and "fineweb_val" in n.value
            ):
                return True
            if isinstance(n, ast.Call):
                stack.extend(n.args)
                stack.extend(k.value for k in n.keywords)
                if isinstance(n.func, ast.Attribute):
                    stack.append(n.func.value)
                continue
            if isinstance(n, ast.Lambda | ast.FunctionDef):
                continue
            stack.extend(ast.iter_child_nodes(n))
        return False

    def bind(self, target: ast.AST, tainted: bool, strong: bool = True) -> None:
        if isinstance(target, ast.Name):
            for loop in self.loops:
                self.bound_in.setdefault(loop, set()).add(target.id)
            if tainted:
                self.tainted.add(target.id)
            elif strong:
                self.tainted.discard(target.id)
        elif isinstance(target, ast.Tuple | ast.List):
            for elt in target.elts:
                self.bind(elt, tainted, strong)
        elif isinstance(target, ast.Starred):
            self.bind(target.value, tainted, strong)
        elif isinstance(target, ast.Subscript | ast.Attribute):
            base = target.value
            while isinstance(base, ast.Subscript | ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and tainted:
                self.tainted.add(base.id)

    def event(
        self, kind: str, node: ast.AST, detail: str = "", about: ast.AST | None = None
    ) -> None:
        """Record an event at `node`; `about` is the expression whose names it keeps."""
        line = getattr(node, "lineno", self.scan.line)
        key = (kind, line, detail)
        if key in self.seen:
            return
        self.seen.add(key)
        names = frozenset(
            n.id for n in ast.walk(about) if isinstance(n, ast.Name)
        ) if about is not None else frozenset()  # fmt: skip
        self.scan.events.append(Event(kind, line, tuple(self.loops), detail, self.warm[-1], names))

    # -- statements
    def block(self, body: list[ast.stmt]) -> None:
        for stmt in body:
            self.stmt(stmt)

    def stmt(self, s: ast.stmt) -> None:  # noqa: C901 - one branch per statement type
        if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef):
            for a in s.args.args + s.args.kwonlyargs:
                if is_val_name(a.arg):
                    self.tainted.add(a.arg)
            self.warm.append(self.warm[-1] or "warm" in s.name.lower())
            self.block(s.body)
            self.warm.pop()
            return
        if isinstance(s, ast.ClassDef):
            return
        if isinstance(s, ast.Assign | ast.AnnAssign):
            value = s.value
            self.exprs(s, value)
            t = self.tainted_expr(value)
            targets = s.targets if isinstance(s, ast.Assign) else [s.target]
            for target in targets:
                self.bind(target, t)
                if value is not None and self.is_gold(value) and isinstance(target, ast.Name):
                    self.gold.add(target.id)
            if value is not None and isinstance(value, ast.BinOp):
                self.blend(s, value)
            return
        if isinstance(s, ast.AugAssign):
            self.exprs(s, s.value)
            t = self.tainted_expr(s.value)
            if t and isinstance(s.op, ast.Add) and _score_target(s.target):
                self.event("score", s, _target_name(s.target), about=s.value)
            self.bind(s.target, t, strong=False)
            return
        if isinstance(s, ast.For | ast.AsyncFor):
            self.exprs(s, s.iter)
            self.bind(s.target, self.tainted_expr(s.iter))
            self.loop(s, [s.body, s.orelse], _mentions_warm(s.target) or _mentions_warm(s.iter))
            return
        if isinstance(s, ast.While):
            self.exprs(s, s.test)
            self.loop(s, [s.body, s.orelse], _mentions_warm(s.test))
            return
        if isinstance(s, ast.If):
            self.exprs(s, s.test)
            self.warm.append(self.warm[-1] or _mentions_warm(s.test))
            self.block(s.body)
            self.block(s.orelse)
            self.warm.pop()
            return
        if isinstance(s, ast.With | ast.AsyncWith):
            for item in s.items:
                self.exprs(s, item.context_expr)
                if item.optional_vars is not None:
                    self.bind(item.optional_vars, self.tainted_expr(item.context_expr))
            self.block(s.body)
            return
        if isinstance(s, ast.Try):
            self.block(s.body)
            for h in s.handlers:
                self.block(h.body)
            self.block(s.orelse)
            self.block(s.finalbody)
            return
        for child in ast.iter_child_nodes(s):
            if isinstance(child, ast.expr):
                self.exprs(s, child)

    def loop(self, s: ast.stmt, bodies: list[list[ast.stmt]], warm: bool) -> None:
        self.loops.append(id(s))
        self.warm.append(self.warm[-1] or warm)
        for _ in range(2):  # twice: taint carried around the loop
            for body in bodies:
                self.block(body)
        self.warm.pop()
        self.loops.pop()

    # -- expressions
    def exprs(self, stmt: ast.stmt, node: ast.AST | None) -> None:
        if node is None:
            return
        for n in _walk_expr(node):
            if isinstance(n, ast.Call):
                self.call(n)
            elif isinstance(n, ast.Name | ast.Attribute | ast.Constant):
                self.train_read(n)

    def call(self, c: ast.Call) -> None:
        func = c.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        args_tainted = any(self.tainted_expr(a) for a in c.args) or any(
            self.tainted_expr(k.value) for k in c.keywords
        )
        if name == "backward" and isinstance(func, ast.Attribute):
            if self.tainted_expr(func.value):
                self.event("train", c, "backward", about=func.value)
            else:
                self.event("train_clean", c, "backward")
            return
        if name == "step" and isinstance(func, ast.Attribute):
            self.event("step", c)
            return
        if name in _OPTIMIZERS:
            refs = {n.id for a in c.args for n in ast.walk(a) if isinstance(n, ast.Name)}
            local = set().union(*(self.bound_in.get(loop, set()) for loop in self.loops))
            fresh = bool(refs) and refs <= local
            self.event("optimizer", c, "fresh" if fresh else "shared")
        if name in ("zeros", "zeros_like", "empty", "randn", "ones", "full") and any(
            k.arg == "requires_grad" and _truthy(k.value, self.constants) for k in c.keywords
        ):
            self.event("fresh", c)
        if name == "requires_grad_" and isinstance(func, ast.Attribute):
            self.event("fresh", c)
        if name in ("DistributedTokenLoader", "TokenStream"):
            self.event("train_read", c, name)
        wn = words(name)
        if "accumulate" in wn or "accum" in wn:
            if args_tainted:
                self.event("score", c, name)
        if name == "add_" and isinstance(func, ast.Attribute) and _score_target(func.value):
            if args_tainted:
                self.event("score", c, _target_name(func.value))
        if set(wn) & {"hessian", "hessians", "gptq", "calib", "calibration", "calibrate"}:
            if args_tainted:
                self.event("gptq", c, name)
        if name in ("min", "max") and isinstance(func, ast.Name):
            scored = [
                a for a in c.args if isinstance(a, ast.Name) and set(words(a.id)) & {"bpb", "loss"}
            ]
            if len(scored) >= 2:
                self.event("best", c, name)
        if name in self.functions and name not in _AMBIGUOUS:
            self.event("call", c, name + ("+val" if args_tainted else ""))
        for a in c.args:  # a function passed on: timed_eval(label, fn, …)
            if isinstance(a, ast.Name) and a.id in self.functions and a.id not in _AMBIGUOUS:
                self.event("call", c, a.id + ("+val" if args_tainted else ""))

    def train_read(self, n: ast.AST) -> None:
        if isinstance(n, ast.Constant):
            if isinstance(n.value, str) and "fineweb_train" in n.value:
                self.event("train_read", n, "fineweb_train")
            return
        name = n.id if isinstance(n, ast.Name) else n.attr  # type: ignore[union-attr]
        ws = set(words(name))
        if "train" in ws and ws & _TRAIN_DATA_WORDS:
            self.event("train_read", n, name)

    def is_gold(self, node: ast.AST) -> bool:
        """A target-token probability: `target`/`gold` and `prob` words, or a name bound
        from one."""
        for n in ast.walk(node):
            if isinstance(n, ast.Name) and n.id in self.gold:
                return True
            ws = set(_node_words(n))
            if ws & _GOLD_WORDS and ws & {"prob", "probs", "p"}:
                return True
        return False

    def blend(self, s: ast.stmt, value: ast.BinOp) -> None:
        if not isinstance(value.op, ast.Add):
            return
        sides = [value.left, value.right]
        if not all(isinstance(x, ast.BinOp) and isinstance(x.op, ast.Mult) for x in sides):
            return
        names = [{w for n in ast.walk(x) for w in _node_words(n)} for x in sides]
        gold = [self.is_gold(x) for x in sides]
        cache = [bool(ws & _CACHE_WORDS) for ws in names]
        if (gold[0] and cache[1]) or (gold[1] and cache[0]):
            self.event("blend", s)


def _walk_expr(node: ast.AST) -> list[ast.AST]:
    out, stack = [], [node]
    while stack:
        n = stack.pop()
        if isinstance(n, ast.Lambda):
            continue
        out.append(n)
        stack.extend(ast.iter_child_nodes(n))
    return out


def _node_words(n: ast.AST) -> list[str]:
    if isinstance(n, ast.Name):
        return words(n.id)
    if isinstance(n, ast.Attribute):
        return words(n.attr)
    return []


def _truthy(node: ast.AST, constants: dict[str, object]) -> bool:
    if isinstance(node, ast.Name):
        return bool(constants.get(node.id))
    return isinstance(node, ast.Constant) and bool(node.value)


def _constants(tree: ast.Module) -> dict[str, object]:
    """Module names bound once to a literal (the minified aliases `_B = True`)."""
    seen: dict[str, int] = {}
    out: dict[str, object] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign):
            for t in stmt.targets:
                if isinstance(t, ast.Name):
                    seen[t.id] = seen.get(t.id, 0) + 1
                    if isinstance(stmt.value, ast.Constant):
                        out[t.id] = stmt.value.value
    return {k: v for k, v in out.items() if seen[k] == 1}


def _mentions_warm(node: ast.AST) -> bool:
    return any("warm" in w for n in ast.walk(node) for w in _node_words(n))


def _target_name(node: ast.AST) -> str:
    while isinstance(node, ast.Subscript):
        node = node.value
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _score_target(node: ast.AST) -> bool:
    ws = set(words(_target_name(node)))
    return bool(ws & _SCORE_WORDS) or (
        "sum" in ws and not ws & {"byte", "bytes", "count", "tokens"}
    )


# ---- the module ------------------------------------------------------------------------


def scan_functions(tree: ast.Module) -> dict[str, FunctionScan]:
    """Every function and method of `tree` (by name; a name defined twice keeps both as
    `name`, `name#2`), scanned; module-level statements form `<module>`."""
    defs: list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            defs.append((node.name, node))
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    defs.append((item.name, item))
    names = {n for n, _ in defs}
    constants = _constants(tree)
    scans: dict[str, FunctionScan] = {}
    for name, fn in defs:
        key = (
            name
            if name not in scans
            else f"{name}#{sum(k.split('#')[0] == name for k in scans) + 1}"
        )
        scan = FunctionScan(key, fn.lineno)
        walker = _Walker(scan, names, constants)
        for a in fn.args.args + fn.args.kwonlyargs:
            if is_val_name(a.arg):
                walker.tainted.add(a.arg)
            ws = set(words(a.arg))
            if ws & _GOLD_WORDS and ws & {"prob", "probs", "p"}:
                walker.gold.add(a.arg)
        walker.warm.append("warm" in name.lower())
        walker.block(fn.body)
        _smear(scan, fn)
        scans[key] = scan
    module = FunctionScan("<module>", 1)
    walker = _Walker(module, names, constants)
    walker.block([s for s in tree.body if not isinstance(s, ast.FunctionDef | ast.ClassDef)])
    scans["<module>"] = module
    return scans


def _smear(scan: FunctionScan, fn: ast.AST) -> None:
    """Record a smear-style shift of the previous token (a `smear` name and a one-step
    slice along the sequence) and whether the function mentions BOS at all."""
    has_smear, shift = False, None
    for n in ast.walk(fn):
        ws = _node_words(n)
        if any("smear" in w for w in ws):
            has_smear = True
        if any(w in ("bos", "boundary", "boundaries", "doc", "docs") for w in ws):
            scan.mentions_bos = True
        if isinstance(n, ast.Slice) and shift is None:
            lo, hi = n.lower, n.upper
            one = (isinstance(lo, ast.Constant) and lo.value == 1 and hi is None) or (
                isinstance(hi, ast.UnaryOp) and isinstance(hi.op, ast.USub)
                and isinstance(hi.operand, ast.Constant) and hi.operand.value == 1
            )  # fmt: skip
            if one:
                shift = getattr(n, "lineno", None) or getattr(fn, "lineno", 0)
    if has_smear and shift is not None:
        scan.smear_shift = shift


def _doc_isolated(tree: ast.Module) -> bool:
    return any(
        any(w in ("cu", "varlen") or w == "seqlens" for w in _node_words(n)) for n in ast.walk(tree)
    )


def legality_findings(
    tree: ast.Module, lines: list[str], file: str, hparams: dict[str, object] | None = None
) -> list[Finding]:
    """The heuristics of the module doc over one parsed file; `lines` for evidence.

    With `hparams` (the record's resolved values), a match whose lines only run under a
    hyperparameter that is off (`if h.slot_enabled:` with slot_enabled False) is reported
    as `info` ("present but off"), naming the setting."""
    scans = scan_functions(tree)
    callers: dict[str, list[tuple[str, Event]]] = {}
    for scan in scans.values():
        for e in scan.of("call"):
            callers.setdefault(e.detail.split("+")[0], []).append((scan.name, e))

    # scorers: direct score events, or a call of a scorer (fixpoint)
    def logs_training_loss(score: Event, trains: list[Event]) -> bool:
        """`epoch_loss += loss.detach()` next to `loss.backward()` (same loop, same
        names): the training loss logged, not a score."""
        return any(score.loops == t.loops and score.names & t.names for t in trains)

    def own_scores(s: FunctionScan) -> list[Event]:
        return [e for e in s.of("score") if not logs_training_loss(e, s.of("train"))]

    scorer = {n for n, s in scans.items() if own_scores(s)}
    changed = True
    while changed:
        changed = False
        for n, s in scans.items():
            if n not in scorer and any(e.detail.split("+")[0] in scorer for e in s.of("call")):
                scorer.add(n)
                changed = True
    # bare trainers: train on val, score nothing (judged where called), fixpoint upwards
    bare = {n for n, s in scans.items() if s.of("train") and n not in scorer}
    changed = True
    while changed:
        changed = False
        for n, s in scans.items():
            if n in bare or n in scorer:
                continue
            if any(e.detail.split("+")[0] in bare for e in s.of("call")):
                bare.add(n)
                changed = True

    hits: dict[str, list[int]] = {}
    primary: dict[str, list[int]] = {}

    def hit(code: str, line: int, main: bool = True) -> None:
        """`main` lines carry the match (judged by the guards); others are context."""
        hits.setdefault(code, [])
        if line not in hits[code]:
            hits[code].append(line)
        if main:
            primary.setdefault(code, []).append(line)

    for name, scan in scans.items():
        scores = scan.of("score") + [e for e in scan.of("call") if e.detail.split("+")[0] in scorer]
        scores = [s for s in scores if not logs_training_loss(s, scan.of("train"))]
        trains = scan.of("train") + [e for e in scan.of("call") if e.detail.split("+")[0] in bare]
        for t in trains:
            shared = [s for s in scores if set(s.loops) & set(t.loops)]
            if t.warm:
                opts = [e for e in scan.of("optimizer") if set(e.loops) & set(t.loops)]
                throwaway = bool(opts) and all(e.detail == "fresh" for e in opts)
                hit("ttt_warmup_on_val_throwaway" if throwaway else "ttt_warmup_on_val", t.line)
                continue
            if any(s.line < t.line for s in shared):
                continue  # score-first: this loop scores before it trains
            if shared:
                loop_ids = set(t.loops)
                fresh = [e for e in scan.of("fresh") if set(e.loops) & loop_ids]
                code = "slot_per_batch_delta" if fresh else "update_before_score"
                hit(code, t.line)
                for e in fresh[:1] + [s for s in shared if s.line > t.line][:1]:
                    hit(code, e.line, main=False)
                continue
            if name in bare:
                if not callers.get(name):
                    hit("pre_quant_ttt_on_val", t.line)
                continue  # judged at its call sites
            if any(s.line > t.line for s in scores):
                hit("pre_quant_ttt_on_val", t.line)
                later = [s for s in scores if s.line > t.line]
                hit("pre_quant_ttt_on_val", later[0].line, main=False)
        for e in scan.of("gptq"):
            hit("gptq_calibration_on_val", e.line)
        own = own_scores(scan)
        if own and not scan.of("train_clean"):  # a scorer, not the trainer
            # a leaf scorer (it calls no other function of the file), or a read inside
            # a scoring loop: a driver that also scores may count shards for its log
            leaf = not scan.of("call")
            for e in scan.of("train_read"):
                if leaf or any(set(e.loops) & set(s.loops) for s in own):
                    hit("train_data_at_eval", e.line)
        for e in scan.of("blend"):
            hit("gold_token_blend", e.line)
        for e in scan.of("best"):
            hit("second_scoring_pass", e.line)

    if _doc_isolated(tree):
        for scan in scans.values():
            if scan.smear_shift is not None and not scan.mentions_bos:
                hit("smeargate_across_bos", scan.smear_shift)

    guards = Guards(tree, hparams) if hparams else None
    findings = []
    for code, found in hits.items():
        found.sort()
        evidence = [f"{file}:{n}: {_line(lines, n)}" for n in found[:6]]
        if len(found) > 6:
            evidence.append(f"… and {len(found) - 6} more lines")
        severity = SEVERITY.get(code, "flag")
        message = f"heuristic: {TITLES[code]}"
        offs = [guards.off(n) for n in primary.get(code, found)] if guards else []
        if offs and all(offs):
            severity = "info"
            message += f"; present but off ({offs[0]})"
        findings.append(
            Finding(
                code=f"legality.{code}",
                check="legality",
                severity=severity,  # type: ignore[arg-type]
                message=message,
                evidence=evidence,
                condition=CONDITIONS[code],
                heuristic=True,
            )
        )
    return sorted(findings, key=lambda f: f.code)


def _line(lines: list[str], n: int) -> str:
    text = lines[n - 1].strip() if 0 < n <= len(lines) else ""
    return text if len(text) <= EVIDENCE_CHARS else text[: EVIDENCE_CHARS - 1] + "…"


# ---- hyperparameter guards -------------------------------------------------------------


class Guards:
    """Whether a line only runs under a hyperparameter that is off.

    A line is off when an `if` enclosing it (in its function) tests a hyperparameter that
    is falsy in `hparams` (`if h.slot_enabled:`, `if use_slot:` with `use_slot =
    args.slot_enabled and …` in the function, `if not h.x:` in the else branch), or when
    every call of its function is off (up to `MAX_DEPTH` callers up)."""

    MAX_DEPTH = 4

    def __init__(self, tree: ast.Module, hparams: dict[str, object]):
        self.hparams = hparams
        self.parent: dict[int, ast.AST] = {}
        self.at_line: dict[int, ast.stmt] = {}
        self.calls: dict[str, list[ast.Call]] = {}
        depth: dict[int, int] = {id(tree): 0}
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                self.parent[id(child)] = node
                depth[id(child)] = depth[id(node)] + 1
                if isinstance(child, ast.stmt):
                    cur = self.at_line.get(child.lineno)
                    if cur is None or depth[id(child)] > depth[id(cur)]:
                        self.at_line[child.lineno] = child
                if isinstance(child, ast.Call):
                    f = child.func
                    name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
                    if name:
                        self.calls.setdefault(name, []).append(child)
                    for a in child.args:  # a function passed on: timed_eval(label, fn, …)
                        if isinstance(a, ast.Name):
                            self.calls.setdefault(a.id, []).append(child)

    def off(self, line: int) -> str | None:
        stmt = self.at_line.get(line)
        return None if stmt is None else self._off(stmt, 0)

    def _off(self, node: ast.AST, depth: int) -> str | None:
        child, cur = node, self.parent.get(id(node))
        while cur is not None:
            if isinstance(cur, ast.If):
                in_body = any(child is s for s in cur.body)
                value = self._value(cur.test, cur, 0)
                if value is not None and bool(value[0]) != in_body:
                    return value[1]
            if isinstance(cur, ast.FunctionDef | ast.AsyncFunctionDef):
                if depth >= self.MAX_DEPTH:
                    return None
                sites = self.calls.get(cur.name, [])
                reasons = [self._off(site, depth + 1) for site in sites]
                if sites and all(reasons):
                    return reasons[0]
                return None
            child, cur = cur, self.parent.get(id(cur))
        return None

    def _value(self, e: ast.AST, at: ast.AST, depth: int) -> tuple[object, str] | None:
        """(value, reason) of a guard expression, or None when it cannot be told."""
        if depth > 3:
            return None
        if isinstance(e, ast.Attribute) and e.attr in self.hparams:
            return self.hparams[e.attr], f"{e.attr}={self.hparams[e.attr]!r}"
        if (
            isinstance(e, ast.Call) and getattr(e.func, "id", None) == "getattr"
            and len(e.args) >= 2 and isinstance(e.args[1], ast.Constant)
            and e.args[1].value in self.hparams
        ):  # fmt: skip
            name = e.args[1].value
            return self.hparams[name], f"{name}={self.hparams[name]!r}"
        if isinstance(e, ast.UnaryOp) and isinstance(e.op, ast.Not):
            v = self._value(e.operand, at, depth + 1)
            return None if v is None else (not v[0], v[1])
        if isinstance(e, ast.BoolOp) and isinstance(e.op, ast.And):
            for operand in e.values:
                v = self._value(operand, at, depth + 1)
                if v is not None and not v[0]:
                    return v
            return None
        if isinstance(e, ast.Name):
            fn = at
            while fn is not None and not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                fn = self.parent.get(id(fn))
            if fn is None:
                return None
            assigns = [
                s for s in ast.walk(fn)
                if isinstance(s, ast.Assign) and len(s.targets) == 1
                and isinstance(s.targets[0], ast.Name) and s.targets[0].id == e.id
            ]  # fmt: skip
            if len(assigns) == 1:
                return self._value(assigns[0].value, at, depth + 1)
        return None
