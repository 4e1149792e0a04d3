//! CEL as Flux uses it (`fluxcd/pkg:runtime/cel`): `spec.healthCheckExprs` (kstatus from
//! CEL expressions over an object) and `spec.dependsOn[].readyExpr` (a boolean over `self`
//! and `dep`), evaluated against objects as JSON.
//!
//! Why a crate of its own rather than a `cel` module in `ferroflux-kstatus`: kstatus is
//! pure and has one dependency (`serde_json`), and is used by every crate that waits on
//! objects; CEL brings a parser generator runtime, regex and chrono. Keeping the glue here
//! leaves kstatus as it is, and only the controllers that accept CEL pay for it. This
//! crate depends on kstatus for [`Status`], not the other way round.
//!
//! The interpreter is the `cel` crate (cel-rust). Flux's environment is cel-go with the
//! `strings` and `encoders` extensions, optional types, cross-type numeric comparison
//! and the `sets` extension; the first four are here, `sets.*` is not (an expression using
//! it fails when evaluated, with "Undeclared reference to 'sets'").
//!
//! Semantics kept from Flux:
//! - health check expressions are only parsed (not type-checked): the object's top-level
//!   keys are the variables, so an expression naming a field the object lacks fails when
//!   evaluated, not when parsed;
//! - `readyExpr` is compiled against the two variables `self` and `dep`: an undeclared
//!   identifier and a result that is not statically a bool are configuration errors (as
//!   cel-go's checker reports them, approximated here: see [`Expression::compile_bool`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};

use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue, operators};
pub use ferroflux_kstatus::Status;
use serde_json::Value;

/// The environment every expression is compiled and run in.
fn env() -> Arc<cel::Env> {
    static ENV: OnceLock<Arc<cel::Env>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = cel::Env::stdlib();
        // Both extensions only add overloads; failing to register them is a bug here.
        env.add_extension(cel::extensions::strings)
            .expect("register the strings extension");
        env.add_extension(cel::extensions::encoders)
            .expect("register the encoders extension");
        Arc::new(env)
    })
    .clone()
}

/// A parsed CEL expression, ready to be evaluated any number of times.
pub struct Expression {
    source: String,
    program: cel::Program,
}

impl std::fmt::Debug for Expression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Expression").field(&self.source).finish()
    }
}

impl Expression {
    /// Parses `source` (no type checking). The error reads like Flux's:
    /// `failed to parse the CEL expression '<source>': <issues>`.
    pub fn parse(source: &str) -> Result<Expression, String> {
        let program = env()
            .compile(source)
            .map_err(|e| format!("failed to parse the CEL expression '{source}': {e}"))?;
        Ok(Expression {
            source: source.to_string(),
            program,
        })
    }

    /// Parses `source` and checks it the way Flux compiles `readyExpr` (cel-go `Compile`
    /// with `variables` declared as `google.protobuf.Struct` and a `bool` output type):
    /// an identifier that is neither a declared variable, a macro variable, a type name
    /// nor a function namespace is `undeclared reference to '<name>'`, and a result that
    /// can be shown not to be a bool is `CEL expression output type mismatch: expected
    /// bool, got <type>` (a field or index of a variable is `dyn`). Function calls whose
    /// type is not known here are let through; their result is checked when evaluated.
    pub fn compile_bool(source: &str, variables: &[&str]) -> Result<Expression, String> {
        let expression = Expression::parse(source)?;
        let root = expression.program.expression();
        let mut bound: Vec<String> = variables.iter().map(|v| v.to_string()).collect();
        if let Some((id, name)) = first_undeclared(root, &mut bound) {
            let offset = expression
                .program
                .source_info()
                .offset_for(id)
                .map(|(start, _)| start as usize)
                .unwrap_or(0);
            let (line, column) = line_and_column(source, offset);
            return Err(format!(
                "failed to parse the CEL expression '{source}': ERROR: <input>:{line}:{column}: undeclared reference to '{name}' (in container '')"
            ));
        }
        match static_type(root) {
            Some(t) if t != "bool" => Err(format!(
                "CEL expression output type mismatch: expected bool, got {t}"
            )),
            _ => Ok(expression),
        }
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates to a bool with `variables` bound. Errors read like Flux's:
    /// `failed to evaluate the CEL expression '<source>': <error>`, and
    /// `failed to evaluate CEL expression as boolean: '<source>'` for another type.
    pub fn evaluate_bool<'a>(
        &self,
        variables: impl IntoIterator<Item = (&'a str, &'a Value)>,
    ) -> Result<bool, String> {
        let mut context = cel::Context::with_env(env());
        for (name, value) in variables {
            context.add_variable(name, value.clone()).map_err(|e| {
                format!(
                    "failed to evaluate the CEL expression '{}': {e}",
                    self.source
                )
            })?;
        }
        match self.program.execute(&context) {
            Ok(cel::Value::Bool(b)) => Ok(b),
            Ok(_) => Err(format!(
                "failed to evaluate CEL expression as boolean: '{}'",
                self.source
            )),
            Err(e) => Err(format!(
                "failed to evaluate the CEL expression '{}': {e}",
                self.source
            )),
        }
    }

    /// Evaluates with the top-level keys of `object` as the variables (how Flux binds an
    /// object for health check expressions).
    pub fn evaluate_object(&self, object: &Value) -> Result<bool, String> {
        match object.as_object() {
            Some(map) => self.evaluate_bool(map.iter().map(|(k, v)| (k.as_str(), v))),
            None => self.evaluate_bool([]),
        }
    }
}

/// 1-based line and column of a character offset, as cel-go prints locations.
fn line_and_column(source: &str, offset: usize) -> (usize, usize) {
    let before: Vec<char> = source.chars().take(offset).collect();
    let line = 1 + before.iter().filter(|c| **c == '\n').count();
    let column = 1 + before.iter().rev().take_while(|c| **c != '\n').count();
    (line, column)
}

/// Names usable as identifiers without being declared: type names and the namespaces of
/// the extension functions.
const BUILTIN_IDENTS: &[&str] = &[
    "bool",
    "bytes",
    "double",
    "int",
    "uint",
    "string",
    "list",
    "map",
    "type",
    "null_type",
    "dyn",
    "optional",
    "base64",
    "google",
];

/// The first identifier of `expr` that is not bound, with its node id.
fn first_undeclared(expr: &IdedExpr, bound: &mut Vec<String>) -> Option<(u64, String)> {
    match &expr.expr {
        Expr::Ident(name) => {
            if bound.iter().any(|b| b == name) || BUILTIN_IDENTS.contains(&name.as_str()) {
                None
            } else {
                Some((expr.id, name.clone()))
            }
        }
        Expr::Select(select) => first_undeclared(&select.operand, bound),
        Expr::Call(call) => {
            if let Some(target) = &call.target
                && let Some(found) = first_undeclared(target, bound)
            {
                return Some(found);
            }
            call.args.iter().find_map(|a| first_undeclared(a, bound))
        }
        Expr::List(list) => list
            .elements
            .iter()
            .find_map(|e| first_undeclared(e, bound)),
        Expr::Map(map) => map.entries.iter().find_map(|e| match &e.expr {
            EntryExpr::MapEntry(m) => {
                first_undeclared(&m.key, bound).or_else(|| first_undeclared(&m.value, bound))
            }
            EntryExpr::StructField(f) => first_undeclared(&f.value, bound),
        }),
        Expr::Struct(s) => s.entries.iter().find_map(|e| match &e.expr {
            EntryExpr::MapEntry(m) => {
                first_undeclared(&m.key, bound).or_else(|| first_undeclared(&m.value, bound))
            }
            EntryExpr::StructField(f) => first_undeclared(&f.value, bound),
        }),
        Expr::Comprehension(c) => {
            if let Some(found) = first_undeclared(&c.iter_range, bound)
                .or_else(|| first_undeclared(&c.accu_init, bound))
            {
                return Some(found);
            }
            let before = bound.len();
            bound.push(c.iter_var.clone());
            if let Some(v2) = &c.iter_var2 {
                bound.push(v2.clone());
            }
            bound.push(c.accu_var.clone());
            let found = first_undeclared(&c.loop_cond, bound)
                .or_else(|| first_undeclared(&c.loop_step, bound))
                .or_else(|| first_undeclared(&c.result, bound));
            bound.truncate(before);
            found
        }
        Expr::Literal(_) | Expr::Unspecified => None,
    }
}

/// The static type of `expr` where it can be told without declarations: `Some("bool")`
/// for comparisons, logic, `has()`, `all`/`exists`/`exists_one` and boolean functions;
/// `Some("dyn")` for a variable, field or index; a literal's type; `None` when unknown.
fn static_type(expr: &IdedExpr) -> Option<String> {
    const BOOL_FUNCTIONS: &[&str] = &[
        operators::LOGICAL_AND,
        operators::LOGICAL_OR,
        operators::LOGICAL_NOT,
        operators::EQUALS,
        operators::NOT_EQUALS,
        operators::GREATER,
        operators::GREATER_EQUALS,
        operators::LESS,
        operators::LESS_EQUALS,
        operators::IN,
        operators::NOT_STRICTLY_FALSE,
        "startsWith",
        "endsWith",
        "contains",
        "matches",
        "bool",
    ];
    match &expr.expr {
        Expr::Literal(l) => Some(
            match l {
                LiteralValue::Boolean(_) => "bool",
                LiteralValue::Int(_) => "int",
                LiteralValue::UInt(_) => "uint",
                LiteralValue::Double(_) => "double",
                LiteralValue::String(_) => "string",
                LiteralValue::Bytes(_) => "bytes",
                LiteralValue::Null => "null_type",
            }
            .to_string(),
        ),
        Expr::Ident(_) => Some("dyn".into()),
        Expr::Select(s) if s.test => Some("bool".into()),
        Expr::Select(_) => Some("dyn".into()),
        Expr::List(_) => Some("list".into()),
        Expr::Map(_) => Some("map".into()),
        Expr::Call(call) => {
            let name = call.func_name.as_str();
            if BOOL_FUNCTIONS.contains(&name) {
                Some("bool".into())
            } else if name == operators::INDEX {
                Some("dyn".into())
            } else if name == operators::CONDITIONAL && call.args.len() == 3 {
                let (a, b) = (static_type(&call.args[1]), static_type(&call.args[2]));
                match (a, b) {
                    (Some(a), Some(b)) if a == b => Some(a),
                    (Some(a), Some(b)) if a == "dyn" || b == "dyn" => Some("dyn".into()),
                    _ => None,
                }
            } else if name == "size" {
                Some("int".into())
            } else {
                None
            }
        }
        Expr::Comprehension(c) => match &c.result.expr {
            // all/exists (and map/filter) return their accumulator: its initial value
            // tells the type.
            Expr::Ident(name) if *name == c.accu_var => static_type(&c.accu_init),
            _ => static_type(&c.result),
        },
        Expr::Struct(_) | Expr::Unspecified => None,
    }
}

/// The three expressions of one `healthCheckExprs` entry.
#[derive(Debug)]
pub struct StatusEvaluator {
    current: Expression,
    in_progress: Option<Expression>,
    failed: Option<Expression>,
}

impl StatusEvaluator {
    /// Parses the expressions; `current` is required, empty optional ones are unset.
    /// Errors as Flux's: `expression Current not specified`,
    /// `failed to parse the expression <Current|InProgress|Failed>: <error>`.
    pub fn new(
        current: &str,
        in_progress: Option<&str>,
        failed: Option<&str>,
    ) -> Result<StatusEvaluator, String> {
        if current.is_empty() {
            return Err("expression Current not specified".into());
        }
        let parse = |which: &str, source: &str| {
            Expression::parse(source)
                .map_err(|e| format!("failed to parse the expression {which}: {e}"))
        };
        let current = parse("Current", current)?;
        let failed = match failed.filter(|s| !s.is_empty()) {
            Some(s) => Some(parse("Failed", s)?),
            None => None,
        };
        let in_progress = match in_progress.filter(|s| !s.is_empty()) {
            Some(s) => Some(parse("InProgress", s)?),
            None => None,
        };
        Ok(StatusEvaluator {
            current,
            in_progress,
            failed,
        })
    }

    /// The status of `object` (Flux's RFC 0009 order): InProgress while an integer
    /// `status.observedGeneration` differs from `metadata.generation`; then the first of
    /// `inProgress`, `failed`, `current` that is true gives InProgress, Failed, Current;
    /// none true is InProgress. An evaluation error is returned (the poller reads it as
    /// Unknown).
    pub fn evaluate(&self, object: &Value) -> Result<Status, String> {
        if let Some(observed) = object
            .pointer("/status/observedGeneration")
            .and_then(Value::as_i64)
            && let Some(generation) = object
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
            && observed != generation
        {
            return Ok(Status::InProgress);
        }
        let order = [
            (self.in_progress.as_ref(), Status::InProgress),
            (self.failed.as_ref(), Status::Failed),
            (Some(&self.current), Status::Current),
        ];
        for (expression, status) in order {
            if let Some(expression) = expression
                && expression.evaluate_object(object)?
            {
                return Ok(status);
            }
        }
        Ok(Status::InProgress)
    }
}

/// One `healthCheckExprs` entry, as written in a spec.
#[derive(Clone, Debug, Default)]
pub struct CustomHealthCheck {
    /// `apiVersion`: only its group is used.
    pub api_version: String,
    /// `kind`: when absent the entry applies to every kind of the group.
    pub kind: Option<String>,
    /// `current` (required).
    pub current: String,
    /// `inProgress`.
    pub in_progress: Option<String>,
    /// `failed`.
    pub failed: Option<String>,
}

/// The group of an API version (`v1` → core, `apps/v1` → `apps`).
pub fn group_of(api_version: &str) -> &str {
    api_version.split_once('/').map(|(g, _)| g).unwrap_or("")
}

/// A Go `schema.GroupKind` as `String()` prints it.
fn group_kind(group: &str, kind: &str) -> String {
    if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    }
}

/// All `healthCheckExprs` of a spec, by GroupKind (Flux's CEL status reader).
#[derive(Debug, Default)]
pub struct HealthCheckReader {
    /// Keyed by (group, kind); kind is empty for group-wide entries.
    evaluators: HashMap<(String, String), StatusEvaluator>,
}

impl HealthCheckReader {
    /// Parses every entry. Errors as Flux's: `duplicate custom health check for GroupKind
    /// <gk> at healthchecks[<i>]` and `failed to create custom status evaluator for
    /// healthchecks[<i>]: <error>`.
    pub fn new(checks: &[CustomHealthCheck]) -> Result<HealthCheckReader, String> {
        let mut evaluators = HashMap::new();
        for (i, check) in checks.iter().enumerate() {
            let group = group_of(&check.api_version).to_string();
            let kind = check.kind.clone().unwrap_or_default();
            let key = (group, kind);
            if evaluators.contains_key(&key) {
                return Err(format!(
                    "duplicate custom health check for GroupKind {} at healthchecks[{i}]",
                    group_kind(&key.0, &key.1)
                ));
            }
            let evaluator = StatusEvaluator::new(
                &check.current,
                check.in_progress.as_deref(),
                check.failed.as_deref(),
            )
            .map_err(|e| {
                format!("failed to create custom status evaluator for healthchecks[{i}]: {e}")
            })?;
            evaluators.insert(key, evaluator);
        }
        Ok(HealthCheckReader { evaluators })
    }

    /// Whether no expressions were given.
    pub fn is_empty(&self) -> bool {
        self.evaluators.is_empty()
    }

    /// The evaluator for a GroupKind: the kind-specific entry, else the group's.
    pub fn evaluator(&self, group: &str, kind: &str) -> Option<&StatusEvaluator> {
        self.evaluators
            .get(&(group.to_string(), kind.to_string()))
            .or_else(|| self.evaluators.get(&(group.to_string(), String::new())))
    }

    /// The status of `object` if an entry matches its GroupKind.
    pub fn evaluate(&self, object: &Value) -> Option<Result<Status, String>> {
        let api_version = object.get("apiVersion").and_then(Value::as_str)?;
        let kind = object.get("kind").and_then(Value::as_str)?;
        self.evaluator(group_of(api_version), kind)
            .map(|e| e.evaluate(object))
    }

    /// The GroupKinds configured (for logs).
    pub fn group_kinds(&self) -> BTreeSet<String> {
        self.evaluators
            .keys()
            .map(|(g, k)| group_kind(g, k))
            .collect()
    }
}

#[cfg(test)]
mod tests;
