use super::*;
use serde_json::json;

fn custom_resource(ready: &str, generation: i64, observed: i64) -> Value {
    json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w", "namespace": "ns", "generation": generation},
        "spec": {"size": 3},
        "status": {"observedGeneration": observed, "conditions": [
            {"type": "Ready", "status": ready, "reason": "R", "message": "m"}]}
    })
}

fn widget_checks() -> Vec<CustomHealthCheck> {
    vec![CustomHealthCheck {
        api_version: "example.com/v1".into(),
        kind: Some("Widget".into()),
        current: "status.conditions.filter(e, e.type == 'Ready').all(e, e.status == 'True')".into(),
        in_progress: Some(
            "status.conditions.exists(e, e.type == 'Ready' && e.status == 'Unknown')".into(),
        ),
        failed: Some(
            "status.conditions.filter(e, e.type == 'Ready').all(e, e.status == 'False')".into(),
        ),
    }]
}

#[test]
fn maps_expressions_to_statuses() {
    let reader = HealthCheckReader::new(&widget_checks()).unwrap();
    let eval = |o: &Value| reader.evaluate(o).unwrap();
    assert_eq!(eval(&custom_resource("True", 1, 1)), Ok(Status::Current));
    assert_eq!(eval(&custom_resource("False", 1, 1)), Ok(Status::Failed));
    assert_eq!(
        eval(&custom_resource("Unknown", 1, 1)),
        Ok(Status::InProgress)
    );
    // No expression true: InProgress.
    assert_eq!(
        eval(&custom_resource("Weird", 1, 1)),
        Ok(Status::InProgress)
    );
    // observedGeneration lagging wins over the expressions.
    assert_eq!(eval(&custom_resource("True", 2, 1)), Ok(Status::InProgress));
}

#[test]
fn in_progress_is_evaluated_before_failed_and_current() {
    let e = StatusEvaluator::new("true", Some("true"), Some("true")).unwrap();
    assert_eq!(e.evaluate(&json!({})), Ok(Status::InProgress));
    let e = StatusEvaluator::new("true", Some("false"), Some("true")).unwrap();
    assert_eq!(e.evaluate(&json!({})), Ok(Status::Failed));
    let e = StatusEvaluator::new("true", None, Some("")).unwrap();
    assert_eq!(e.evaluate(&json!({})), Ok(Status::Current));
}

#[test]
fn observed_generation_that_is_not_an_integer_is_ignored() {
    let e = StatusEvaluator::new("status.ok", None, None).unwrap();
    let obj =
        json!({"metadata": {"generation": 2}, "status": {"observedGeneration": "1", "ok": true}});
    assert_eq!(e.evaluate(&obj), Ok(Status::Current));
}

#[test]
fn evaluation_errors_name_the_expression() {
    let e = StatusEvaluator::new("status.missing == 1", None, None).unwrap();
    let err = e.evaluate(&json!({"status": {}})).unwrap_err();
    assert!(
        err.starts_with("failed to evaluate the CEL expression 'status.missing == 1': "),
        "{err}"
    );
    let e = StatusEvaluator::new("metadata.name", None, None).unwrap();
    assert_eq!(
        e.evaluate(&json!({"metadata": {"name": "x"}})),
        Err("failed to evaluate CEL expression as boolean: 'metadata.name'".into())
    );
}

#[test]
fn flux_example_expressions() {
    // From Flux's docs and tests: has(), filter, all, exists, map, size, string functions.
    let obj = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cfg", "labels": {"app": "web"}},
        "data": {"a": "1", "b": "2"},
        "status": {"phase": "Bound", "conditions": [
            {"type": "Ready", "status": "True"}, {"type": "Synced", "status": "True"}]}
    });
    for source in [
        "has(status.phase) && status.phase == 'Bound'",
        "!has(status.missing)",
        "status.conditions.map(c, c.type).exists(t, t == 'Synced')",
        "size(status.conditions) == 2 && size(data) == 2",
        "metadata.name.startsWith('cf') && metadata.name.endsWith('g') && metadata.name.contains('f')",
        "metadata.labels['app'].upperAscii() == 'WEB'",
        "status.conditions.exists_one(c, c.type == 'Ready')",
        "int(data.a) + 1 == 2",
        "status.conditions[0].?reason.orValue('none') == 'none'",
        "1 == 1.0 && 2u < 3",
    ] {
        let e = Expression::parse(source).unwrap();
        assert_eq!(e.evaluate_object(&obj), Ok(true), "{source}");
    }
}

#[test]
fn invalid_configuration_errors_read_like_flux() {
    let mut checks = widget_checks();
    checks[0].in_progress = Some("foo.".into());
    let err = HealthCheckReader::new(&checks).unwrap_err();
    assert!(
        err.starts_with("failed to create custom status evaluator for healthchecks[0]: failed to parse the expression InProgress: failed to parse the CEL expression 'foo.': ERROR: <input>:1:"),
        "{err}"
    );
    let mut checks = widget_checks();
    checks[0].current = String::new();
    assert_eq!(
        HealthCheckReader::new(&checks).unwrap_err(),
        "failed to create custom status evaluator for healthchecks[0]: expression Current not specified"
    );
    let mut checks = widget_checks();
    checks.push(checks[0].clone());
    assert_eq!(
        HealthCheckReader::new(&checks).unwrap_err(),
        "duplicate custom health check for GroupKind Widget.example.com at healthchecks[1]"
    );
}

#[test]
fn kind_entry_wins_over_group_entry() {
    let reader = HealthCheckReader::new(&[
        CustomHealthCheck {
            api_version: "example.com/v1".into(),
            current: "false".into(),
            failed: Some("true".into()),
            ..Default::default()
        },
        CustomHealthCheck {
            api_version: "example.com/v1beta1".into(),
            kind: Some("Widget".into()),
            current: "true".into(),
            ..Default::default()
        },
    ])
    .unwrap();
    let widget = json!({"apiVersion": "example.com/v2", "kind": "Widget"});
    let gadget = json!({"apiVersion": "example.com/v1", "kind": "Gadget"});
    let other = json!({"apiVersion": "other.com/v1", "kind": "Widget"});
    assert_eq!(reader.evaluate(&widget), Some(Ok(Status::Current)));
    assert_eq!(reader.evaluate(&gadget), Some(Ok(Status::Failed)));
    assert_eq!(reader.evaluate(&other), None);
}

#[test]
fn ready_expr_is_compiled_against_self_and_dep() {
    let vars = ["self", "dep"];
    let e = Expression::compile_bool(
        "self.metadata.annotations['app/version'] == dep.metadata.annotations['app/version']",
        &vars,
    )
    .unwrap();
    let me = json!({"metadata": {"annotations": {"app/version": "v1"}}});
    let dep = json!({"metadata": {"annotations": {"app/version": "v1"}}});
    let other = json!({"metadata": {"annotations": {"app/version": "v2"}}});
    assert_eq!(e.evaluate_bool([("self", &me), ("dep", &dep)]), Ok(true));
    assert_eq!(e.evaluate_bool([("self", &me), ("dep", &other)]), Ok(false));

    assert_eq!(
        Expression::compile_bool("self.generation == deps.generation", &vars).unwrap_err(),
        "failed to parse the CEL expression 'self.generation == deps.generation': ERROR: <input>:1:20: undeclared reference to 'deps' (in container '')"
    );
    assert_eq!(
        Expression::compile_bool("dep.spec.suspend", &vars).unwrap_err(),
        "CEL expression output type mismatch: expected bool, got dyn"
    );
    // Macro variables are declared inside their macro only.
    Expression::compile_bool(
        "dep.status.conditions.exists(c, c.type == 'Ready' && c.status == 'True')",
        &vars,
    )
    .unwrap();
    assert!(Expression::compile_bool("[1].all(x, x > 0) && x == 1", &vars).is_err());
    assert!(Expression::compile_bool("1 +", &vars).is_err());
}
