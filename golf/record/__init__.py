"""Reading a Parameter Golf record folder — torch-free, never executing its code.

A record folder (`records/track_10min_16mb/<name>/` of openai/parameter-golf) holds
`train_gpt.py`, train logs, `submission.json` and a README. Everything here treats the
folder as untrusted: files are read under size caps, symlinks and non-regular files are
refused, a self-extracting shim is decompressed under a cap, code is parsed with limits
and never run or imported. Every refusal is a `RecordError` (a GolfError) with one line.

Stable API (used by `golf review` and by `golf import RECORD_DIR`):

    from golf.record import read_record, RecordError
    rec = read_record(folder)           # never raises for a bad file: see rec.problems
    rec.source                          # Source | None: kind plain/shim/stub, code, sizes
    rec.submission                      # Submission | None: claims, per seed, unknown keys
    rec.logs                            # list[LogRun]: scores, sizes, times, dump, seed
    rec.problems                        # list[str]: one line per file that could not be read
    rec.tree()                          # ast.Module of the code (RecordError if none/bad)
    rec.hparams(overrides={"K": "V"}, seed=None)
                                        # HParams: code defaults < log dump < overrides;
                                        # .values, .unresolved (name -> reason), .require()
    rec.literal_call_args(["Rotary"])   # hard-coded constants, e.g. Rotary(train_seq_len=1024)

Modules: `source` (script, shim decode, stub detection), `parse` (3.11 `ast`, with a
libcst rewrite of Python 3.12 f-strings run in a child process by `fstrings`; limits),
`hparams` (AST interpreter of the
Hyperparameters class), `logs` (train logs line by line), `submission` (submission.json
in every seen shape), `files` (capped, in-folder reads), `errors`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from golf.record.errors import RecordError
from golf.record.hparams import (
    HParams,
    LiteralArg,
    code_defaults,
    literal_call_args,
    parse_override,
    resolve,
)
from golf.record.logs import LogRun, ScoreLine, SizeLine, find_logs, parse_log
from golf.record.source import Source, read_source
from golf.record.submission import SeedClaim, Submission, find_submission, read_submission

__all__ = [
    "HParams",
    "LiteralArg",
    "LogRun",
    "Record",
    "RecordError",
    "ScoreLine",
    "SeedClaim",
    "SizeLine",
    "Source",
    "Submission",
    "parse_override",
    "read_record",
]


@dataclass
class Record:
    """One record folder, read (see the package doc)."""

    folder: Path
    source: Source | None = None
    submission: Submission | None = None
    logs: list[LogRun] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    _tree: ast.Module | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.folder.name

    def tree(self) -> ast.Module:
        """The parsed code (parsed once per Record); RecordError without code."""
        if self.source is None:
            raise RecordError(f"{self.name}: no readable train_gpt.py")
        if self._tree is None:
            self._tree = self.source.tree()
        return self._tree

    def code_hparams(self) -> HParams:
        """The Hyperparameters defaults of the code alone."""
        return code_defaults(self.tree())

    def hparams(
        self, overrides: Mapping[str, str] | None = None, seed: int | str | None = None
    ) -> HParams:
        """Code defaults < the hyperparameter dump of a log (the log of `seed` when given,
        else the first log with a dump) < `overrides`."""
        dump = None
        for run in self.logs:
            if run.hparams and (seed is None or str(run.seed) == str(seed)):
                dump = run.hparams
                break
        return resolve(self.code_hparams(), dump, overrides)

    def literal_call_args(self, callees: Iterable[str] | None = None) -> list[LiteralArg]:
        """Literal arguments of calls to `callees` in the code (see golf.record.hparams)."""
        return literal_call_args(self.tree(), callees)

    def runs(self, seed: int | str) -> list[LogRun]:
        """The logs of one seed, in file order."""
        return [r for r in self.logs if r.seed is not None and str(r.seed) == str(seed)]


def read_record(folder: Path | str) -> Record:
    """Read a record folder; a file that cannot be read becomes a line in `problems`
    (the folder itself missing is a RecordError)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RecordError(f"{folder}: not a folder")
    rec = Record(folder)
    try:
        rec.source = read_source(folder)
    except RecordError as e:
        rec.problems.append(str(e))
    if find_submission(folder) is not None:
        try:
            rec.submission = read_submission(folder)
        except RecordError as e:
            rec.problems.append(str(e))
    else:
        rec.problems.append(f"{folder.name}: no submission.json")
    try:
        paths = find_logs(folder)
    except RecordError as e:
        rec.problems.append(str(e))
        paths = []
    for path in paths:
        try:
            rec.logs.append(parse_log(folder, path))
        except RecordError as e:
            rec.problems.append(str(e))
    return rec
