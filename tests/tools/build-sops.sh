#!/usr/bin/env bash
# Builds the real `sops` and `age-keygen` (the oracles for crates/sops) from their Go modules,
# fetched through the Go module proxy. Usage: tests/tools/build-sops.sh [OUTDIR]
# (default target/tools). Idempotent: builds only what is missing from OUTDIR.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="${1:-$root/target/tools}"
sops_version="v3.13.3"
age_version="v1.3.2"
command -v go >/dev/null || { echo "build-sops.sh: go not found" >&2; exit 1; }
mkdir -p "$out"
out="$(cd "$out" && pwd)"
if [ ! -x "$out/sops" ]; then
  echo "building sops $sops_version from its Go module (first run: a few minutes)" >&2
  GOBIN="$out" go install -trimpath -ldflags "-s -w" "github.com/getsops/sops/v3/cmd/sops@$sops_version"
fi
if [ ! -x "$out/age-keygen" ]; then
  echo "building age-keygen $age_version from its Go module" >&2
  GOBIN="$out" go install -trimpath -ldflags "-s -w" "filippo.io/age/cmd/age-keygen@$age_version"
fi
"$out/sops" --version --disable-version-check >&2 || true
