#!/usr/bin/env python3
"""Benchmark: `ferroflux-helm template` against the real `helm template` over the corpus.

First builds `ferroflux-helm` as it ships (the `dist` profile, statically linked like the
image's binaries and like helm's own Go binary), unless --ours names a binary. Then runs every
case of shared/corpus/helm/cases with both binaries (same arguments, same temp HELM_* dirs),
ROUNDS times each, interleaved, and prints per-tool total wall time, CPU time (user+sys) and
the ratios. On a shared machine the CPU ratio is the steadier figure.

Peak RSS is measured in a separate pass under GNU time (`/usr/bin/time`, Debian's `time`):
the rusage of a child of this Python process starts at Python's own resident size (about
14 MiB), which would hide a smaller peak.

Usage: corpus_bench.py [--rounds N] [--ours BIN] [--helm BIN] [--cases DIR]
"""
import argparse
import os
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "../../.."))
TARGET = "x86_64-unknown-linux-gnu"


def build_ours():
    """Builds the shipped ferroflux-helm (static, dist profile); returns its path."""
    env = dict(os.environ)
    # --target keeps these flags off build scripts and proc macros.
    env["RUSTFLAGS"] = "-C target-feature=+crt-static -C relocation-model=static"
    subprocess.run(["cargo", "build", "--locked", "--profile", "dist", "-p", "ferroflux-helm",
                    "--target", TARGET], cwd=ROOT, env=env, check=True)
    target_dir = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    return os.path.join(target_dir, TARGET, "dist", "ferroflux-helm")


def peak_rss_kib(cmd, env):
    """Peak RSS of cmd in KiB, from GNU time; None when /usr/bin/time is missing."""
    if not os.path.exists("/usr/bin/time"):
        return None
    with tempfile.NamedTemporaryFile("r") as f:
        subprocess.run(["/usr/bin/time", "-f", "%M", "-o", f.name] + cmd, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return int(f.read().strip().splitlines()[-1])


def run(cmd, env):
    """Runs cmd; returns wall seconds and CPU seconds (user+sys)."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    p.returncode = status
    return wall, ru.ru_utime + ru.ru_stime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ours", help="a ferroflux-helm binary (default: build the shipped one)")
    ap.add_argument("--helm", default=os.path.join(HERE, "../../../target/oracle/helm"))
    ap.add_argument("--cases", default=os.path.join(HERE, "../../../../shared/corpus/helm/cases"))
    a = ap.parse_args()
    if a.ours is None:
        a.ours = build_ours()
    cases = sorted(d for d in os.listdir(a.cases) if os.path.exists(os.path.join(a.cases, d, "args")))
    totals = {"helm": 0.0, "ours": 0.0}
    cpu = {"helm": 0.0, "ours": 0.0}
    peak = {"helm": None, "ours": None}
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
                    wall, c = run([binary] + tail, env)
                    totals[tool] += wall
                    cpu[tool] += c
        for c in cases:
            d = os.path.join(a.cases, c)
            args = open(os.path.join(d, "args")).read().split()
            tail = ["template", "rel", os.path.join(d, "chart"), "-f", os.path.join(d, "values.yaml")] + args
            for tool, binary in (("helm", a.helm), ("ours", a.ours)):
                rss = peak_rss_kib([binary] + tail, env)
                peak[tool] = None if rss is None else max(peak[tool] or 0, rss)
    n = len(cases) * a.rounds
    print(f"cases: {len(cases)} x {a.rounds} rounds")
    print(f"ours: {a.ours}")
    for tool in ("helm", "ours"):
        rss = "n/a (no /usr/bin/time)" if peak[tool] is None else f"{peak[tool] / 1024:7.1f} MiB"
        print(f"{tool:5s} wall {totals[tool]:8.2f} s (mean {1000 * totals[tool] / n:6.1f} ms)  "
              f"cpu {cpu[tool]:8.2f} s  peak RSS {rss}")
    ratio_rss = ("n/a" if None in peak.values()
                 else f"{peak['helm'] / max(peak['ours'], 1):.1f}x")
    print(f"ratio helm/ours: wall {totals['helm'] / totals['ours']:.1f}x, "
          f"cpu {cpu['helm'] / max(cpu['ours'], 0.001):.1f}x, "
          f"peak RSS {ratio_rss}")


if __name__ == "__main__":
    main()
