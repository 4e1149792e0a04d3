#!/usr/bin/env python3
"""Benchmark: `ferroflux-helm template` against the real `helm template` over the corpus.

Runs every case of shared/corpus/helm/cases with both binaries (same arguments, same
temp HELM_* dirs), ROUNDS times each, interleaved, and prints per-tool total wall time,
the ratio, and the peak RSS of one process of each (from /usr/bin/time).

Usage: corpus_bench.py [--rounds N] [--ours BIN] [--helm BIN] [--cases DIR]
"""
import argparse
import os
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd, env):
    t = time.perf_counter()
    r = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    rss_kb = int(r.stderr.strip().splitlines()[-1])
    return wall, rss_kb, r.returncode


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ours", default=os.path.join(HERE, "../../../target/h-helm/release/ferroflux-helm"))
    ap.add_argument("--helm", default=os.path.join(HERE, "../../../target/oracle/helm"))
    ap.add_argument("--cases", default=os.path.join(HERE, "../../../../shared/corpus/helm/cases"))
    a = ap.parse_args()
    cases = sorted(d for d in os.listdir(a.cases) if os.path.exists(os.path.join(a.cases, d, "args")))
    totals = {"helm": 0.0, "ours": 0.0}
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
                    wall, rss, _ = run([binary] + tail, env)
                    totals[tool] += wall
                    peak[tool] = max(peak[tool], rss)
    n = len(cases) * a.rounds
    print(f"cases: {len(cases)} x {a.rounds} rounds")
    for tool in ("helm", "ours"):
        print(f"{tool:5s} total {totals[tool]:8.2f} s  mean {1000 * totals[tool] / n:7.1f} ms  peak RSS {peak[tool] / 1024:7.1f} MiB")
    print(f"ratio helm/ours: {totals['helm'] / totals['ours']:.1f}x faster; "
          f"peak RSS helm/ours: {peak['helm'] / max(peak['ours'], 1):.1f}x")


if __name__ == "__main__":
    main()
