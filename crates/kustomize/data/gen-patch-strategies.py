#!/usr/bin/env python3
"""Generate patch-strategies.json from a Kubernetes OpenAPI v2 document.

Usage:  gen-patch-strategies.py SWAGGER_JSON > patch-strategies.json

SWAGGER_JSON is an OpenAPI v2 document as served by kube-apiserver at
/openapi/v2 (the test control plane serves one; until it is wired in, the
api/openapi-spec/swagger.json file of the k8s.io/kubernetes Go module of the
same version is the same document). The output is the compact table the
strategic-merge-patch engine of ferroflux-kustomize reads:

  {
    "source": "<info.title> <info.version>",
    "gvk":   {"<apiVersion>|<kind>": "<definition name>", ...},
    "namespaced": {"<apiVersion>|<kind>": true|false, ...},
    "defs":  {"<definition>": {"<field>": [<ref or null>, <is list>,
                                           <patch strategy or "">,
                                           [<merge keys>]], ...}, ...}
  }

Only fields that matter for merging are kept: fields whose type is another
definition (directly, as list items or as map values) and fields that carry
x-kubernetes-patch-strategy. Namespaceability is derived from the API paths
exactly as kustomize does (a GET path under namespaces/{namespace}).
The same generator runs against the control plane's /openapi/v2; a CI check
compares its output with the committed file.
"""
import json
import sys


def ref_name(schema):
    ref = schema.get('$ref')
    if ref and ref.startswith('#/definitions/'):
        return ref[len('#/definitions/'):]
    return None


def field_entry(prop):
    is_list = prop.get('type') == 'array'
    target = None
    if is_list:
        target = ref_name(prop.get('items') or {})
    elif prop.get('type') == 'object' and isinstance(prop.get('additionalProperties'), dict):
        target = ref_name(prop['additionalProperties'])
        if target:
            target = '*' + target  # map of definitions
    else:
        target = ref_name(prop)
        if target is None and prop.get('allOf'):
            target = ref_name(prop['allOf'][0])
    strategy = prop.get('x-kubernetes-patch-strategy', '')
    keys = []
    if strategy:
        if prop.get('x-kubernetes-list-map-keys'):
            keys = list(prop['x-kubernetes-list-map-keys'])
        elif prop.get('x-kubernetes-patch-merge-key'):
            keys = [prop['x-kubernetes-patch-merge-key']]
    if target is None and not strategy:
        return None
    return [target, is_list, strategy, keys]


def main(path):
    with open(path) as f:
        doc = json.load(f)
    out = {'source': '%s %s' % (doc.get('info', {}).get('title', ''),
                                doc.get('info', {}).get('version', '')),
           'gvk': {}, 'namespaced': {}, 'defs': {}}
    for name, d in sorted(doc.get('definitions', {}).items()):
        for g in d.get('x-kubernetes-group-version-kind', []) or []:
            av = g['version'] if not g.get('group') else '%s/%s' % (g['group'], g['version'])
            out['gvk']['%s|%s' % (av, g['kind'])] = name
        fields = {}
        for fname, prop in sorted((d.get('properties') or {}).items()):
            e = field_entry(prop)
            if e is not None:
                fields[fname] = e
        if fields:
            out['defs'][name] = fields
    for p, info in sorted(doc.get('paths', {}).items()):
        get = info.get('get')
        if not get:
            continue
        g = get.get('x-kubernetes-group-version-kind')
        if not g:
            continue
        av = g['version'] if not g.get('group') else '%s/%s' % (g['group'], g['version'])
        key = '%s|%s' % (av, g['kind'])
        if 'namespaces/{namespace}' in p:
            out['namespaced'][key] = True
        elif key not in out['namespaced']:
            out['namespaced'][key] = False
    json.dump(out, sys.stdout, sort_keys=True, separators=(',', ':'))
    sys.stdout.write('\n')


if __name__ == '__main__':
    if len(sys.argv) != 2:
        sys.stderr.write(__doc__)
        sys.exit(2)
    main(sys.argv[1])
