"""What every benchmark module shares: a measured row, the report, synthetic ids, timing and thread limits."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from winner.core import runtime


@dataclass
class Row:
    """One measured figure: winner's and (if run) PyTorch's median rate, in units per second."""

    workload: str
    batch: int
    threads: int
    unit: str
    winner: float
    torch: float | None = None
    flops_per_unit: float = 0.0
    runs: list[float] = field(default_factory=list)
    torch_runs: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return self.winner / self.torch if self.torch else None


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    gemm_gflops: dict[int, float] = field(default_factory=dict)
    first_call_seconds: dict[str, float] = field(default_factory=dict)
    checks: dict[str, object] = field(default_factory=dict)
    machine: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict:
        rows = []
        for r in self.rows:
            d = asdict(r)
            d["ratio"] = r.ratio
            ceiling = self.gemm_gflops.get(r.threads)
            d["fraction_of_gemm_ceiling"] = (r.winner * r.flops_per_unit / 1e9 / ceiling
                                             if ceiling and r.flops_per_unit else None)
            rows.append(d)
        return {"rows": rows, "gemm_gflops": {str(k): v for k, v in self.gemm_gflops.items()},
                "first_call_seconds": self.first_call_seconds, "checks": self.checks, "machine": self.machine}


def zipf_ids(rng: np.random.Generator, vocab: int, n: int) -> np.ndarray:
    """n word ids with probability ~ 1/(rank + 2.7) (Zipf-Mandelbrot), as in running text."""
    p = 1.0 / (np.arange(vocab) + 2.7)
    return rng.choice(vocab, size=n, p=p / p.sum()).astype(np.int32)


def windows_of(stream: np.ndarray, positions: int) -> np.ndarray:
    """(N, positions) sliding windows over a token stream (edges wrap: the shapes are what matters here)."""
    idx = (np.arange(len(stream))[:, None] + np.arange(positions)[None, :]) % len(stream)
    return np.ascontiguousarray(stream[idx])


def median_rate(units: int, fn: Callable[[], None], repeats: int) -> tuple[float, list[float]]:
    """Median of `repeats` timed runs of fn (units per second); fn is run once before, untimed."""
    fn()
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        rates.append(units / (time.perf_counter() - t0))
    return statistics.median(rates), rates


def set_all_threads(n: int, torch_module=None) -> None:
    runtime.set_threads(n)
    if torch_module is not None:
        torch_module.set_num_threads(n)


def lookup_tagging_rows(report: Report, name: str, what: str, n_tok: int, tag: Callable[[str], np.ndarray],
                        threads: tuple[int, ...], repeats: int, progress: Callable[[str], None], note: str) -> None:
    """Check that tag("lookup") equals tag("gemm"), then time tag("lookup") on n_tok tokens at each thread count:
    one row `name` per count; `what` names the workload in the check and the progress lines."""
    ref, fast = tag("gemm"), tag("lookup")
    report.checks[f"tagging with {what}: max |log p difference|, lookup vs straightforward"] = float(
        np.abs(ref - fast).max())
    for t in threads:
        progress(f"tagging {n_tok} tokens with {what}, {t} thread(s)")
        set_all_threads(t)
        rate, runs = median_rate(n_tok, lambda: tag("lookup"), repeats)
        report.rows.append(Row(name, 4096, t, "tokens/s", rate, runs=runs, note=note))
