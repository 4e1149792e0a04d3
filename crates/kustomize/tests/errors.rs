//! Bad input gives a clear error naming the file or field.

use std::path::Path;

use ferroflux_kustomize::{BuildOptions, Error, MemFs, build};

fn err(fs: &MemFs, dir: &str) -> Error {
    build(fs, Path::new(dir), &BuildOptions::default()).expect_err("build must fail")
}

#[test]
fn cycle_between_kustomizations() {
    let mut fs = MemFs::new();
    fs.add("/r/a/kustomization.yaml", "resources:\n- ../b\n");
    fs.add("/r/b/kustomization.yaml", "resources:\n- ../a\n");
    let e = err(&fs, "/r/a");
    assert!(matches!(e, Error::Cycle(_)), "{e}");
}

#[test]
fn path_escaping_the_root() {
    let mut fs = MemFs::new();
    fs.add(
        "/r/secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n",
    );
    fs.add(
        "/r/app/kustomization.yaml",
        "resources:\n- ../secret.yaml\n",
    );
    let e = err(&fs, "/r/app");
    assert!(matches!(e, Error::OutsideRoot { .. }), "{e}");
}

#[test]
fn missing_resource_names_the_path() {
    let mut fs = MemFs::new();
    fs.add("/r/kustomization.yaml", "resources:\n- nope.yaml\n");
    let e = err(&fs, "/r");
    assert!(e.to_string().contains("nope.yaml"), "{e}");
}

#[test]
fn malformed_yaml_names_the_file() {
    let mut fs = MemFs::new();
    fs.add("/r/kustomization.yaml", "resources:\n- bad.yaml\n");
    fs.add("/r/bad.yaml", "apiVersion: v1\nkind: [\n");
    let e = err(&fs, "/r");
    assert!(matches!(e, Error::MalformedYaml { .. }), "{e}");
    assert!(e.to_string().contains("bad.yaml"), "{e}");
}

#[test]
fn unknown_kustomization_field() {
    let mut fs = MemFs::new();
    fs.add("/r/kustomization.yaml", "resourcez:\n- a.yaml\n");
    let e = err(&fs, "/r");
    assert!(matches!(e, Error::InvalidKustomization { .. }), "{e}");
}

#[test]
fn duplicate_ids() {
    let mut fs = MemFs::new();
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n";
    fs.add("/r/kustomization.yaml", "resources:\n- a.yaml\n- b.yaml\n");
    fs.add("/r/a.yaml", cm);
    fs.add("/r/b.yaml", cm);
    let e = err(&fs, "/r");
    assert!(e.to_string().contains("already registered id"), "{e}");
}

#[test]
fn remote_bases_are_refused() {
    let mut fs = MemFs::new();
    fs.add(
        "/r/kustomization.yaml",
        "resources:\n- https://github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v5.7.1\n",
    );
    let e = err(&fs, "/r");
    assert!(matches!(e, Error::Unsupported(_)), "{e}");
}

#[test]
fn exec_plugins_are_refused() {
    let mut fs = MemFs::new();
    fs.add(
        "/r/kustomization.yaml",
        "transformers:\n- |-\n  apiVersion: example.com/v1\n  kind: Exec\n  metadata:\n    name: x\n",
    );
    let e = err(&fs, "/r");
    assert!(matches!(e, Error::Unsupported(_)), "{e}");
}

#[test]
fn patch_target_missing() {
    let mut fs = MemFs::new();
    fs.add(
        "/r/kustomization.yaml",
        "resources:\n- a.yaml\npatches:\n- patch: |-\n    apiVersion: v1\n    kind: ConfigMap\n    metadata:\n      name: other\n    data: {x: y}\n",
    );
    fs.add(
        "/r/a.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n",
    );
    let e = err(&fs, "/r");
    assert!(e.to_string().contains("other"), "{e}");
}

#[test]
fn builds_a_small_tree_in_memory() {
    let mut fs = MemFs::new();
    fs.add(
        "/r/base/kustomization.yaml",
        "resources:\n- d.yaml\nconfigMapGenerator:\n- name: cfg\n  literals: [A=1]\n",
    );
    fs.add(
        "/r/base/d.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\nspec:\n  template:\n    spec:\n      containers:\n      - name: c\n        image: nginx\n        envFrom:\n        - configMapRef: {name: cfg}\n",
    );
    fs.add(
        "/r/prod/kustomization.yaml",
        "namePrefix: prod-\nresources:\n- ../base\n",
    );
    let objs = build(&fs, Path::new("/r/prod"), &BuildOptions::default()).unwrap();
    let text = ferroflux_kustomize::to_yaml_stream(&objs);
    assert!(text.contains("name: prod-cfg-"), "{text}");
    assert!(text.contains("name: prod-app"), "{text}");
    // the reference follows the generated, prefixed and hashed name
    let cm_name = objs[0]["metadata"]["name"].as_str().unwrap().to_string();
    assert!(
        text.contains(&format!("configMapRef:\n            name: {cm_name}")),
        "{text}"
    );
}
