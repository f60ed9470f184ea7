"""What a soak counted: answers by outcome, faults by kind, unexplained transitions; as text or JSON."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tests.chaos.faults import GATEWAY, Fault, FaultKind
from tests.chaos.transitions import describe
from tests.chaos.verdicts import Outcome, Verdict
from tests.chaos.workloads import Request

KINDS = ("full scan", "query", "count", "aggregate")
LISTED = 20  # wrong answers, errors and transitions shown one by one; the rest are only counted


@dataclass
class Tally:
    seed: int
    seconds: float
    data_root: str
    answers: Counter[tuple[Outcome, str]] = field(default_factory=Counter)  # (outcome, request kind) -> answers
    problems: list[tuple[Outcome, str, str]] = field(default_factory=list)  # (outcome, request name, detail)
    faults: list[Fault] = field(default_factory=list)
    unexplained: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)  # guards answers and problems

    def record(self, request: Request, verdict: Verdict) -> None:
        """Called by every client thread."""
        with self._lock:
            self.answers[verdict.outcome, request.kind] += 1
            if verdict.outcome in (Outcome.WRONG, Outcome.ERROR):
                self.problems.append((verdict.outcome, request.name, verdict.detail))

    def count(self, outcome: Outcome) -> int:
        return sum(n for (o, _), n in self.answers.items() if o is outcome)

    @property
    def unrecovered(self) -> list[Fault]:
        return [f for f in self.faults if not f.settled]

    @property
    def passed(self) -> bool:
        """No wrong answer, no unexplained transition, and the cluster recovered from every fault."""
        return not (self.count(Outcome.WRONG) or self.unexplained or self.unrecovered)

    def faults_by_kind(self) -> dict[str, dict[str, int]]:
        return {kind.value: {"injected": sum(f.kind is kind for f in self.faults),
                             "on the gateway": sum(f.kind is kind and f.target == GATEWAY for f in self.faults)}
                for kind in FaultKind}

    def document(self) -> dict[str, Any]:
        return {
            "passed": self.passed, "seed": self.seed, "seconds": self.seconds, "data": self.data_root,
            "answers": {o.value: {"total": self.count(o), **{k: self.answers[o, k] for k in KINDS}} for o in Outcome},
            "unexplained_transitions": self.unexplained,
            "faults": self.faults_by_kind(),
            "fault_log": [{"fault": f.describe(), "injected": f.injected, "serving_again": f.serving_again,
                           "settled": f.settled} for f in self.faults],
            "faults_not_recovered": [f.describe() for f in self.unrecovered],
            "wrong": [{"request": name, "detail": d} for o, name, d in self.problems if o is Outcome.WRONG],
            "errors": [{"request": name, "detail": d} for o, name, d in self.problems if o is Outcome.ERROR],
        }

    def text(self) -> str:
        lines = [f"chaos soak: {self.seconds / 60:.1f} min, seed {self.seed}, data {self.data_root}",
                 f"{'':<26}{'total':>7}" + "".join(f"{k:>11}" for k in KINDS)]
        lines += [f"{o.value:<26}{self.count(o):>7}" + "".join(f"{self.answers[o, k]:>11}" for k in KINDS)
                  for o in Outcome]
        lines.append(f"{'unexplained transitions':<26}{len(self.unexplained):>7}")
        lines.append(f"{'faults injected':<26}{len(self.faults):>7}")
        for kind, counts in self.faults_by_kind().items():
            lines.append(f"  {kind:<24}{counts['injected']:>7}   ({counts['on the gateway']} on the gateway)")
        lines.append(f"{'faults not recovered':<26}{len(self.unrecovered):>7}")
        lines += self._listed("wrong answers", [f"{name}: {d}" for o, name, d in self.problems if o is Outcome.WRONG])
        errors = Counter(f"{name}: {d}" for o, name, d in self.problems if o is Outcome.ERROR)
        lines += self._listed("errors", [f"{n} x {line}" for line, n in errors.most_common()])
        lines += self._listed("unexplained transitions", [describe(t) for t in self.unexplained])
        lines += self._listed("faults not recovered", [f.describe() for f in self.unrecovered])
        lines.append("PASSED" if self.passed else "FAILED")
        return "\n".join(lines)

    @staticmethod
    def _listed(title: str, items: list[str]) -> list[str]:
        if not items:
            return []
        more = [f"  ... and {len(items) - LISTED} more"] if len(items) > LISTED else []
        return [f"{title}:", *(f"  {item}" for item in items[:LISTED]), *more]

