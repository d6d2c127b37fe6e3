"""Per-module timing (FastTimerService-like): calls, time in acquire, produce and waiting."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ModuleTiming:
    label: str
    type_: str
    calls: int = 0
    acquire: float = 0.0
    produce: float = 0.0
    wait: float = 0.0
    parts: dict[str, float] = field(default_factory=dict)

    def merge(self, other: ModuleTiming) -> None:
        self.calls += other.calls
        self.acquire += other.acquire
        self.produce += other.produce
        self.wait += other.wait
        for k, v in other.parts.items():
            self.parts[k] = self.parts.get(k, 0.0) + v


@dataclass
class TimingSummary:
    modules: dict[str, ModuleTiming] = field(default_factory=dict)
    wall: float = 0.0
    events: int = 0

    def table(self) -> str:
        """The summary as a text table."""
        head = f"{'module':<36} {'type':<44} {'calls':>7} {'acquire ms':>11} {'produce ms':>11} {'wait ms':>10} {'ms/evt':>8}"
        lines = ["TimeReport per module (sums over all streams; wait = time between acquire and the end of its external work)", head, "-" * len(head)]
        n = max(self.events, 1)
        for t in self.modules.values():
            lines.append(
                f"{t.label[:36]:<36} {t.type_[:44]:<44} {t.calls:>7} {t.acquire * 1e3:>11.1f} {t.produce * 1e3:>11.1f} "
                f"{t.wait * 1e3:>10.1f} {(t.acquire + t.produce) * 1e3 / n:>8.3f}"
            )
            if t.parts:
                lines.append(" " * 4 + "of which: " + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in t.parts.items()))
        rate = self.events / self.wall if self.wall > 0 else 0.0
        lines.append(f"TimeReport: {self.events} events in {self.wall:.3f} s wall = {rate:.1f} events/s")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "wall_s": self.wall,
            "events": self.events,
            "events_per_s": self.events / self.wall if self.wall > 0 else 0.0,
            "modules": {
                t.label: {"type": t.type_, "calls": t.calls, "acquire_s": t.acquire, "produce_s": t.produce, "wait_s": t.wait,
                          "parts_s": dict(t.parts)}
                for t in self.modules.values()
            },
        }
