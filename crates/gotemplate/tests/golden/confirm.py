#!/usr/bin/env python3
"""Confirms the golden table against the real helm.

For every case in cases.py it writes a tiny chart whose `_case.tpl` defines the case's
template and whose `templates/out.yaml` is `out: {{ include "golden.case" . | toJson }}`,
runs `helm template g CHART --namespace demo --kube-version 1.33.0`, and records the value
of `out` (or that helm failed, with its message) in golden.json.

Usage: confirm.py [HELM]   (default: /work/main/target/oracle/helm, see shared/corpus/helm/README.md)
"""
import json
import os
import subprocess
import sys
import tempfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from cases import CASES  # noqa: E402

CHART_YAML = """apiVersion: v2
name: golden
version: 0.1.0
appVersion: "1.0"
keywords: [a, b]
maintainers:
  - name: m
    email: m@example.com
"""
FILES = {"files/a.txt": "one\ntwo\n", "files/b.conf": "k=v"}
OUT = 'out: {{ include "golden.case" . | toJson }}\n'


def chart_files(tpl, values, defs):
    f = {
        "Chart.yaml": CHART_YAML,
        "values.yaml": values,
        "templates/_case.tpl": '{{- define "golden.case" -}}' + tpl + "{{- end -}}\n" + defs,
        "templates/out.yaml": OUT,
    }
    f.update(FILES)
    return f


def main():
    helm = sys.argv[1] if len(sys.argv) > 1 else "/work/main/target/oracle/helm"
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        for k in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
            env[k] = os.path.join(tmp, "h")
        names = set()
        for name, tpl, values, defs in CASES:
            assert name not in names, name
            names.add(name)
            d = os.path.join(tmp, name)
            for p, text in chart_files(tpl, values, defs).items():
                os.makedirs(os.path.dirname(os.path.join(d, p)), exist_ok=True)
                with open(os.path.join(d, p), "w") as fh:
                    fh.write(text)
            r = subprocess.run([helm, "template", "g", d, "--namespace", "demo", "--kube-version", "1.33.0"],
                               capture_output=True, text=True, env=env, timeout=30)
            case = {"name": name, "template": tpl, "values": values, "defines": defs}
            if r.returncode == 0:
                docs = [x for x in yaml.safe_load_all(r.stdout) if x]
                case["want"] = docs[0]["out"]
            else:
                case["error"] = r.stderr.strip().replace(d, "CHART")
            out.append(case)
    with open(os.path.join(HERE, "golden.json"), "w") as fh:
        json.dump({"oracle": "helm v4.1.4 template (shared/corpus/helm/README.md)",
                   "chart": {"Chart.yaml": CHART_YAML, "files": FILES, "out.yaml": OUT},
                   "cases": out}, fh, indent=1, ensure_ascii=False)
        fh.write("\n")
    errs = sum(1 for c in out if "error" in c)
    print(f"{len(out)} cases confirmed ({len(out) - errs} outputs, {errs} errors)")


if __name__ == "__main__":
    main()
