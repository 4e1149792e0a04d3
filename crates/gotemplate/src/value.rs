//! The value model: close to the Go values Helm templates see.
//!
//! Helm's `.Values` come through JSON, so numbers are `float64` there; template literals and
//! most sprig results are `int` / `int64`. We keep that distinction because `typeOf`, `kindIs`,
//! `printf "%d"` and `eq` observe it.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// A Go `map[string]interface{}`: iterated in sorted key order, like Go's template and fmt do.
pub type Map = BTreeMap<String, Value>;

/// A Go map: a shared, mutable reference (sprig's `set`, `unset` and `merge` mutate in place).
#[derive(Clone, Default)]
pub struct MapRef(Arc<RwLock<Map>>);

impl MapRef {
    pub fn new(m: Map) -> Self {
        MapRef(Arc::new(RwLock::new(m)))
    }
    pub fn read(&self) -> RwLockReadGuard<'_, Map> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }
    pub fn write(&self) -> RwLockWriteGuard<'_, Map> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }
    /// A shallow copy of the entries.
    pub fn snapshot(&self) -> Map {
        self.read().clone()
    }
    pub fn get(&self, k: &str) -> Option<Value> {
        self.read().get(k).cloned()
    }
    pub fn contains_key(&self, k: &str) -> bool {
        self.read().contains_key(k)
    }
    pub fn len(&self) -> usize {
        self.read().len()
    }
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }
    pub fn insert(&self, k: impl Into<String>, v: Value) {
        self.write().insert(k.into(), v);
    }
    pub fn ptr_eq(&self, o: &MapRef) -> bool {
        Arc::ptr_eq(&self.0, &o.0)
    }
    /// A deep copy (sprig's deepCopy): no map shared with the original.
    pub fn deep_copy(&self) -> MapRef {
        MapRef::new(
            self.read()
                .iter()
                .map(|(k, v)| (k.clone(), v.deep_copy()))
                .collect(),
        )
    }
}

/// Which Go integer type a [`Value::Int`] stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntKind {
    /// Go `int` (template literals, `len`, `atoi`, ...).
    Int,
    /// Go `int64` (sprig math, `--set` integers).
    Int64,
}

/// A Go-like dynamic value.
#[derive(Clone, Default)]
pub enum Value {
    /// `nil` (also a missing map key).
    #[default]
    Nil,
    Bool(bool),
    Int(i64, IntKind),
    Float(f64),
    Str(Arc<str>),
    /// `[]byte`.
    Bytes(Arc<[u8]>),
    List(Arc<Vec<Value>>),
    Map(MapRef),
    /// A Go struct or pointer with fields and methods (`.Files`, `.Capabilities`, ...).
    Object(Arc<dyn Object>),
}

/// A Go struct-like value: fields and methods by name.
pub trait Object: Send + Sync {
    /// Go type name for `typeOf` / `%T`.
    fn type_name(&self) -> String;
    /// A field or a method without arguments. `None`: no such field or method.
    fn field(&self, name: &str) -> Option<Value>;
    /// A method with arguments. `None`: no such method.
    fn call(&self, _name: &str, _args: &[Value]) -> Option<Result<Value, String>> {
        None
    }
    /// Whether `name` is a method that takes arguments.
    fn has_method(&self, _name: &str) -> bool {
        false
    }
    /// How `%v` prints it.
    fn fmt_v(&self) -> String {
        format!("{{{}}}", self.type_name())
    }
    /// The value as data when it is serialized (toYaml, toJson) or compared.
    fn to_data(&self) -> Value {
        Value::Nil
    }
    /// Go truthiness (a struct is always true; an empty map or slice is false).
    fn truthy(&self) -> bool {
        true
    }
    /// Go kind name for `kindOf`.
    fn kind(&self) -> &'static str {
        "ptr"
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::gofmt::sprint_v(self))
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(Arc::from(s))
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(Arc::from(s))
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i, IntKind::Int64)
    }
}
impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}
impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Self {
        Value::List(Arc::new(v))
    }
}
impl From<Map> for Value {
    fn from(m: Map) -> Self {
        Value::Map(MapRef::new(m))
    }
}

impl Value {
    /// A Go `int`.
    pub fn int(i: i64) -> Value {
        Value::Int(i, IntKind::Int)
    }
    pub fn str(s: impl AsRef<str>) -> Value {
        Value::Str(Arc::from(s.as_ref()))
    }
    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_map(&self) -> Option<&MapRef> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }
    /// A new map value.
    pub fn map(m: Map) -> Value {
        Value::Map(MapRef::new(m))
    }
    /// Deep copy: lists and maps are copied recursively.
    pub fn deep_copy(&self) -> Value {
        match self {
            Value::Map(m) => Value::Map(m.deep_copy()),
            Value::List(l) => Value::List(Arc::new(l.iter().map(|v| v.deep_copy()).collect())),
            o => o.clone(),
        }
    }
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    /// Go template truthiness (`text/template.IsTrue`).
    pub fn truthy(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i, _) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::Bytes(b) => !b.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.is_empty(),
            Value::Object(o) => o.truthy(),
        }
    }

    /// Go's type name (`%T`, sprig `typeOf`).
    pub fn type_name(&self) -> String {
        match self {
            Value::Nil => "<nil>".into(),
            Value::Bool(_) => "bool".into(),
            Value::Int(_, IntKind::Int) => "int".into(),
            Value::Int(_, IntKind::Int64) => "int64".into(),
            Value::Float(_) => "float64".into(),
            Value::Str(_) => "string".into(),
            Value::Bytes(_) => "[]uint8".into(),
            Value::List(_) => "[]interface {}".into(),
            Value::Map(_) => "map[string]interface {}".into(),
            Value::Object(o) => o.type_name(),
        }
    }

    /// Go's reflect kind name (sprig `kindOf`).
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Nil => "invalid",
            Value::Bool(_) => "bool",
            Value::Int(_, IntKind::Int) => "int",
            Value::Int(_, IntKind::Int64) => "int64",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::Bytes(_) | Value::List(_) => "slice",
            Value::Map(_) => "map",
            Value::Object(o) => o.kind(),
        }
    }

    /// Plain data (objects turned into their data form), for serialization.
    pub fn to_data(&self) -> Value {
        match self {
            Value::Object(o) => o.to_data(),
            Value::List(l) => Value::List(Arc::new(l.iter().map(|v| v.to_data()).collect())),
            Value::Map(m) => {
                let r = m.read();
                if r.values()
                    .any(|v| matches!(v, Value::Object(_) | Value::Map(_) | Value::List(_)))
                {
                    Value::map(r.iter().map(|(k, v)| (k.clone(), v.to_data())).collect())
                } else {
                    self.clone()
                }
            }
            other => other.clone(),
        }
    }

    /// Deep equality of data (sprig's reflect.DeepEqual uses).
    pub fn deep_eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Nil, Value::Nil) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a, ka), Value::Int(b, kb)) => a == b && ka == kb,
            (Value::Float(a), Value::Float(b)) => a == b,
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Bytes(a), Value::Bytes(b)) => a == b,
            (Value::List(a), Value::List(b)) => {
                a.len() == b.len() && a.iter().zip(b.iter()).all(|(x, y)| x.deep_eq(y))
            }
            (Value::Map(a), Value::Map(b)) => {
                if a.ptr_eq(b) {
                    return true;
                }
                let (a, b) = (a.snapshot(), b.snapshot());
                a.len() == b.len()
                    && a.iter()
                        .zip(b.iter())
                        .all(|((ka, va), (kb, vb))| ka == kb && va.deep_eq(vb))
            }
            (Value::Object(a), Value::Object(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}
