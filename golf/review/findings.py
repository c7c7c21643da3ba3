"""What a review returns: named findings with evidence, per-seed rows, verdicts.

Severities, strongest first: `fail` (a rule is broken by the folder's own numbers),
`flag` (a legality heuristic matched: a reviewer must read the lines it names), `warn`
(an anomaly or an advisory heuristic), `info` (context), `pass` (a check that ran clean).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Severity = Literal["fail", "flag", "warn", "info", "pass"]
SEVERITIES: tuple[Severity, ...] = ("fail", "flag", "warn", "info", "pass")
LIMIT_BYTES = 16_000_000
"""Code bytes + compressed model bytes, decimal (the rules)."""
LIMIT_SECONDS = 600.0
"""Training and evaluation wall time, each (the rules, 8×H100)."""


@dataclass(frozen=True)
class Finding:
    """One named result. `check` groups findings (size, claims, time, significance,
    legality, code, files, dynamic); `evidence` holds `file:line: text` strings;
    `condition` names the issue #1017 condition or ruling a legality heuristic bears on;
    `heuristic` marks static pattern matches (not proofs)."""

    code: str
    check: str
    severity: Severity
    message: str
    evidence: list[str] = field(default_factory=list)
    condition: str | None = None
    heuristic: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SeedRow:
    """One seed: the claim and what its log says."""

    seed: str
    log: str | None = None
    claimed_bpb: float | None = None
    logged_bpb: float | None = None
    logged_loss: float | None = None
    kind: str | None = None
    model_bytes: int | None = None
    code_bytes: int | None = None
    total_bytes: int | None = None
    train_s: float | None = None
    eval_s: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Review:
    """The review of one record folder."""

    folder: str
    claimed_bpb: float | None = None
    claimed_loss: float | None = None
    claimed_std: float | None = None
    seeds: list[SeedRow] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    significance: dict[str, Any] | None = None
    code: dict[str, Any] = field(default_factory=dict)
    unknown_fields: dict[str, Any] = field(default_factory=dict)

    def add(self, finding: Finding) -> None:
        self.findings.append(finding)

    def of(self, check: str) -> list[Finding]:
        return [f for f in self.findings if f.check == check]

    def verdict_of(self, check: str) -> str:
        """`fail`, `flag`, `warn`, `ok` (passes or infos only) or `unknown` (none ran)."""
        found = self.of(check)
        if not found:
            return "unknown"
        worst = min(SEVERITIES.index(f.severity) for f in found)
        return {0: "fail", 1: "flag", 2: "warn"}.get(worst, "ok")

    @property
    def verdict(self) -> str:
        """One line: FAIL (a rule broken), REVIEW (legality heuristics matched), PASS."""
        fails = [f for f in self.findings if f.severity == "fail"]
        flags = [f for f in self.findings if f.severity == "flag"]
        warns = [f for f in self.findings if f.severity == "warn"]
        if fails:
            head = "FAIL: " + "; ".join(f.message for f in fails[:3])
            more = len(fails) - 3
            return head + (f" (+{more} more)" if more > 0 else "")
        if flags:
            return "REVIEW: legality heuristics matched: " + ", ".join(f.code for f in flags)
        tail = f" ({len(warns)} warning{'s' * (len(warns) != 1)})" if warns else ""
        return "PASS: size, claims, time and static legality checks clean" + tail

    def as_dict(self) -> dict[str, Any]:
        return {
            "folder": self.folder,
            "verdict": self.verdict,
            "verdicts": {c: self.verdict_of(c) for c in ("size", "claims", "time", "legality")},
            "claimed": {
                "val_bpb": self.claimed_bpb,
                "val_loss": self.claimed_loss,
                "val_bpb_std": self.claimed_std,
            },
            "seeds": [s.as_dict() for s in self.seeds],
            "findings": [f.as_dict() for f in self.findings],
            "significance": self.significance,
            "code": self.code,
            "unknown_fields": self.unknown_fields,
        }
