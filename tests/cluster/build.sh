#!/usr/bin/env bash
# Builds the real kube-apiserver and etcd (and, on request, kube-controller-manager)
# from the Go modules pinned in this directory's go.mod/go.sum, fetched through the
# Go module proxy. Needs only Go (see go.mod for the minimum version).
#
# Usage: tests/cluster/build.sh [--with-controller-manager] [OUTDIR]
#        OUTDIR defaults to <repo>/target/cluster.
#        CLUSTER_WITH_CONTROLLER_MANAGER=1 does the same as the flag.
#
# Idempotent: each binary has a stamp file OUTDIR/.<name>.stamp holding a hash of
# its inputs (go.mod, go.sum, the binary's .go files, this script, the Go version
# and target platform); a binary whose stamp matches is not rebuilt.
# GOCACHE, GOMODCACHE, GOPROXY and GOFLAGS are taken from the environment as they are;
# go.sum is complete, so the default -mod=readonly works and GOFLAGS needs no -mod=mod.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

with_kcm="${CLUSTER_WITH_CONTROLLER_MANAGER:-0}"
out=""
for arg in "$@"; do
  case "$arg" in
    --with-controller-manager) with_kcm=1 ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "build.sh: unknown option $arg" >&2; exit 2 ;;
    *) [ -z "$out" ] || { echo "build.sh: only one OUTDIR" >&2; exit 2; }; out="$arg" ;;
  esac
done
out="${out:-$root/target/cluster}"

command -v go >/dev/null 2>&1 || { echo "build.sh: 'go' not found on PATH" >&2; exit 1; }

log() { echo "[cluster] $*" >&2; }

mkdir -p "$out"
out="$(cd "$out" && pwd)"

# One build at a time per OUTDIR (parallel test runners may all call this script).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$out/.build.lock"
  flock 9
fi

cd "$here"
k8s_version="$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print $2; exit }' go.mod)"
etcd_version="$(awk '$1 == "go.etcd.io/etcd/server/v3" && $2 ~ /^v/ { print $2; exit }' go.mod)"
[ -n "$k8s_version" ] && [ -n "$etcd_version" ] || { echo "build.sh: cannot read versions from go.mod" >&2; exit 1; }
k8s_major="$(echo "${k8s_version#v}" | cut -d. -f1)"
k8s_minor="$(echo "${k8s_version#v}" | cut -d. -f2)"

# Static, cgo-free binaries (as upstream ships them) unless the caller says otherwise.
export CGO_ENABLED="${CGO_ENABLED:-0}"
# This module stands alone: never let a go.work further up pull it into a workspace.
export GOWORK=off

targets=(etcd kube-apiserver)
[ "$with_kcm" = 1 ] && targets+=(kube-controller-manager)

go_id="$(go version) $(go env GOOS GOARCH | tr '\n' ' ') cgo=$CGO_ENABLED"

stamp_of() { # stamp_of NAME -> hash of everything that goes into that binary
  {
    echo "$go_id"
    sha256sum go.mod go.sum build.sh
    find "cmd/$1" -name '*.go' -type f | LC_ALL=C sort | xargs sha256sum
  } | sha256sum | cut -d' ' -f1
}

ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=$k8s_major -X $pkg.gitMinor=$k8s_minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.gitCommit="
done

todo=()
for name in "${targets[@]}"; do
  want="$(stamp_of "$name")"
  if [ -x "$out/$name" ] && [ -f "$out/.$name.stamp" ] && [ "$(cat "$out/.$name.stamp")" = "$want" ]; then
    continue
  fi
  todo+=("$name")
done

if [ "${#todo[@]}" -eq 0 ]; then
  log "up to date in $out: ${targets[*]} (kubernetes $k8s_version, etcd $etcd_version)"
  exit 0
fi

start=$SECONDS
log "fetching Go modules for ${todo[*]} (kubernetes $k8s_version, etcd $etcd_version)..."
pkgs=()
for name in "${todo[@]}"; do pkgs+=("./cmd/$name"); done
# Loading the import graph downloads exactly the modules the build needs.
go list -deps "${pkgs[@]}" >/dev/null
log "modules ready ($((SECONDS - start))s)"

for name in "${todo[@]}"; do
  case "$name" in
    etcd) what="etcd $etcd_version" ;;
    *) what="$name $k8s_version" ;;
  esac
  log "building $what (first run: several minutes)..."
  t0=$SECONDS
  rm -f "$out/.$name.stamp"
  go build -trimpath -buildvcs=false -ldflags "$ldflags" -o "$out/.$name.tmp.$$" "./cmd/$name"
  mv -f "$out/.$name.tmp.$$" "$out/$name"
  stamp_of "$name" >"$out/.$name.stamp"
  log "built $out/$name ($((SECONDS - t0))s)"
done
log "done in $((SECONDS - start))s"
