#!/usr/bin/env python3
"""Benchmark: `ferroflux-helm template` against the real `helm template` over the corpus.

Runs every case of shared/corpus/helm/cases with both binaries (same arguments, same
temp HELM_* dirs), ROUNDS times each, interleaved, and prints per-tool total wall time,
CPU time (user+sys), the ratios, and the peak RSS of one process of each (from wait4). On a shared machine the CPU ratio is the steadier figure.

Usage: corpus_bench.py [--rounds N] [--ours BIN] [--helm BIN] [--cases DIR]
"""
import argparse
import os
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd, env):
    """Runs cmd; returns wall seconds, peak RSS (KiB), CPU seconds, exit status."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    p.returncode = status
    return wall, ru.ru_maxrss, ru.ru_utime + ru.ru_stime, status


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ours", default=os.path.join(HERE, "../../../target/release/ferroflux-helm"))
    ap.add_argument("--helm", default=os.path.join(HERE, "../../../target/oracle/helm"))
    ap.add_argument("--cases", default=os.path.join(HERE, "../../../../shared/corpus/helm/cases"))
    a = ap.parse_args()
    cases = sorted(d for d in os.listdir(a.cases) if os.path.exists(os.path.join(a.cases, d, "args")))
    totals = {"helm": 0.0, "ours": 0.0}
    cpu = {"helm": 0.0, "ours": 0.0}
    peak = {"helm": 0, "ours": 0}
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        for k in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
            env[k] = os.path.join(tmp, "h")
        for _ in range(a.rounds):
            for c in cases:
                d = os.path.join(a.cases, c)
                args = open(os.path.join(d, "args")).read().split()
                tail = ["template", "rel", os.path.join(d, "chart"), "-f", os.path.join(d, "values.yaml")] + args
                for tool, binary in (("helm", a.helm), ("ours", a.ours)):
                    wall, rss, c, _ = run([binary] + tail, env)
                    totals[tool] += wall
                    cpu[tool] += c
                    peak[tool] = max(peak[tool], rss)
    n = len(cases) * a.rounds
    print(f"cases: {len(cases)} x {a.rounds} rounds")
    for tool in ("helm", "ours"):
        print(f"{tool:5s} wall {totals[tool]:8.2f} s (mean {1000 * totals[tool] / n:6.1f} ms)  "
              f"cpu {cpu[tool]:8.2f} s  peak RSS {peak[tool] / 1024:7.1f} MiB")
    print(f"ratio helm/ours: wall {totals['helm'] / totals['ours']:.1f}x, "
          f"cpu {cpu['helm'] / max(cpu['ours'], 0.001):.1f}x, "
          f"peak RSS {peak['helm'] / max(peak['ours'], 1):.1f}x")


if __name__ == "__main__":
    main()
