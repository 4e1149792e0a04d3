//! The executor: Go's text/template semantics over [`Value`].

use std::collections::HashMap;
use std::sync::Arc;

use crate::parse::{self, Arg, Branch, Node, Num, Pipe, Tree};
use crate::value::{IntKind, Value};

/// What a template function is: it sees the executor (for `include`, `tpl`, randomness) and
/// its evaluated arguments.
pub type Func = Arc<dyn Fn(&mut Exec<'_>, &[Value]) -> Result<Value, String> + Send + Sync>;

/// Everything a pure engine must be given: randomness, the clock, cluster lookups, DNS.
pub trait Host {
    /// 64 random bits.
    fn random_u64(&mut self) -> u64;
    /// Now, as Unix seconds and nanoseconds, UTC.
    fn now(&self) -> (i64, u32);
    /// Helm's `lookup apiVersion kind namespace name`: an object, a list, or an empty map.
    fn lookup(
        &self,
        _api_version: &str,
        _kind: &str,
        _namespace: &str,
        _name: &str,
    ) -> Result<Value, String> {
        Ok(Value::Map(Default::default()))
    }
    /// sprig `getHostByName`.
    fn host_by_name(&self, _name: &str) -> String {
        String::new()
    }
}

/// A deterministic host: a fixed-seed generator, the Unix epoch as now, empty lookups.
pub struct FixedHost {
    state: u64,
    pub now: (i64, u32),
}

impl FixedHost {
    pub fn new(seed: u64) -> Self {
        FixedHost {
            state: seed ^ 0x9E37_79B9_7F4A_7C15,
            now: (0, 0),
        }
    }
}

impl Default for FixedHost {
    fn default() -> Self {
        Self::new(1)
    }
}

impl Host for FixedHost {
    fn random_u64(&mut self) -> u64 {
        // splitmix64
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn now(&self) -> (i64, u32) {
        self.now
    }
}

/// A template error, formatted as Go formats it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct Error(pub String);

/// FxHash (rustc's hasher): the executor's maps are keyed by template and function names,
/// looked up for every call; SipHash was a visible share of rendering time.
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut add = |w: u64| self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(K);
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            add(u64::from_le_bytes(c.try_into().unwrap_or_default()));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            add(u64::from_le_bytes(b) ^ ((rest.len() as u64) << 56));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(i)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type FxMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<FxHasher>>;

/// Function name → function: what [`crate::funcs::register`] fills.
pub type FuncMap = FxMap<String, Func>;

/// The set of named templates and functions, like a Go `*template.Template` family.
#[derive(Clone)]
pub struct Templates {
    trees: FxMap<String, Arc<Tree>>,
    funcs: Arc<FxMap<String, Func>>,
    /// Helm's `missingkey=error` (strict) instead of zero.
    pub strict: bool,
    /// Most nested template calls (`template`, `include`, `tpl`) before an error.
    pub max_depth: usize,
    /// Most execution steps (nodes and loop iterations) of one `execute`, 0 = unlimited.
    pub max_steps: u64,
    /// Largest output of one `execute`, in bytes, 0 = unlimited.
    pub max_output: usize,
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

impl Templates {
    /// A set with Go's builtins, sprig, and Helm's functions.
    pub fn new() -> Self {
        // Room for every function up front: no rehashing while registering.
        let mut funcs = FuncMap::with_capacity_and_hasher(400, Default::default());
        crate::funcs::register(&mut funcs);
        Templates {
            trees: FxMap::default(),
            funcs: Arc::new(funcs),
            strict: false,
            max_depth: 1000,
            max_steps: 0,
            max_output: 0,
        }
    }

    /// Adds or replaces a function.
    pub fn add_func(&mut self, name: &str, f: Func) {
        Arc::make_mut(&mut self.funcs).insert(name.to_string(), f);
    }

    /// Parses `text` as template `name`, adding its `define`s to the set. A later definition
    /// replaces an earlier one unless the later one is empty.
    pub fn parse(&mut self, name: &str, text: &str) -> Result<(), Error> {
        self.parse_shared(name, Arc::from(text))
    }

    /// [`Templates::parse`] of a text the caller already holds shared (no copy is made).
    pub fn parse_shared(&mut self, name: &str, text: Arc<str>) -> Result<(), Error> {
        let funcs = self.funcs.clone();
        let trees = parse::parse(name, text, &|f| {
            funcs.contains_key(f) || f == "and" || f == "or"
        })
        .map_err(|e| Error(e.0))?;
        for (n, t) in trees {
            if let Some(old) = self.trees.get(&n)
                && !parse::is_empty_tree(&old.root, &old.text)
                && parse::is_empty_tree(&t.root, &t.text)
            {
                continue;
            }
            self.trees.insert(n, t);
        }
        Ok(())
    }

    pub fn has(&self, name: &str) -> bool {
        self.trees.contains_key(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.trees.keys()
    }

    /// Executes template `name` with `data`.
    pub fn execute(&self, name: &str, data: &Value, host: &mut dyn Host) -> Result<String, Error> {
        let mut ex = Exec {
            set: self,
            overlays: Vec::new(),
            host,
            include_counts: FxMap::default(),
            depth: 0,
            steps: 0,
            vars: Vec::new(),
            tree: None,
            at: (0, At::None),
        };
        let mut out = String::new();
        ex.exec_template(name, data, &mut out)
            .map_err(|e| Error(e.0))?;
        Ok(out)
    }
}

/// `s.replace("<no value>", "")` (what Helm does to rendered text), without a copy when
/// there is none (the usual case), found by a SIMD substring search.
pub fn strip_no_value(s: String) -> String {
    if memchr::memmem::find(s.as_bytes(), b"<no value>").is_some() {
        s.replace("<no value>", "")
    } else {
        s
    }
}

#[derive(Debug)]
pub struct ExecErr(pub String);

enum Flow {
    Normal,
    Break,
    Continue,
}

/// The state of one execution.
pub struct Exec<'a> {
    set: &'a Templates,
    overlays: Vec<HashMap<String, Arc<Tree>>>,
    pub host: &'a mut dyn Host,
    include_counts: FxMap<String, usize>,
    depth: usize,
    steps: u64,
    vars: Vec<(String, Value)>,
    tree: Option<Arc<Tree>>,
    at: (usize, At),
}

const MAX_DEPTH: usize = 1000;

type R<T> = Result<T, ExecErr>;

impl Exec<'_> {
    fn find_tree(&self, name: &str) -> Option<Arc<Tree>> {
        for o in self.overlays.iter().rev() {
            if let Some(t) = o.get(name) {
                return Some(t.clone());
            }
        }
        self.set.trees.get(name).cloned()
    }

    /// Whether a template of that name exists.
    pub fn has_template(&self, name: &str) -> bool {
        self.find_tree(name).is_some()
    }

    /// The name of the template being executed.
    pub fn current_name(&self) -> String {
        self.tree
            .as_ref()
            .map(|t| t.name.clone())
            .unwrap_or_default()
    }

    /// Executes a named template into a string (Helm's `include`).
    pub fn include(&mut self, name: &str, data: &Value) -> Result<String, String> {
        if !self.has_template(name) {
            return Err(format!(
                "template: no template {name:?} associated with template \"gotpl\""
            ));
        }
        let c = self.include_counts.entry(name.to_string()).or_insert(0);
        if *c > MAX_DEPTH {
            return Err(format!(
                "rendering template has a nested reference name: {name}: unable to execute template"
            ));
        }
        *c += 1;
        let mut out = String::new();
        let r = self.exec_template(name, data, &mut out);
        if let Some(c) = self.include_counts.get_mut(name) {
            *c -= 1;
        }
        r.map_err(|e| e.0)?;
        Ok(out)
    }

    /// Parses `text` as a template named like the current one and executes it with `data`
    /// (Helm's `tpl`). Definitions in `text` are visible only during this call.
    pub fn tpl(&mut self, text: &str, data: &Value) -> Result<String, String> {
        self.tpl_shared(Arc::from(text), data)
    }

    /// [`Exec::tpl`] of a text the caller already holds shared (no copy is made).
    pub fn tpl_shared(&mut self, text: Arc<str>, data: &Value) -> Result<String, String> {
        let name = self.current_name();
        let funcs = self.set.funcs.clone();
        let trees = parse::parse(&name, text.clone(), &|f| {
            funcs.contains_key(f) || f == "and" || f == "or"
        })
        .map_err(|e| e.0)?;
        self.overlays.push(trees);
        let mut out = String::with_capacity(text.len());
        let r = self.exec_template(&name, data, &mut out);
        self.overlays.pop();
        r.map_err(|e| {
            format!(
                "error during tpl function execution for {}: {}",
                crate::gofmt::quote(&text),
                e.0
            )
        })?;
        Ok(strip_no_value(out))
    }

    fn exec_template(&mut self, name: &str, data: &Value, out: &mut String) -> R<()> {
        let Some(tree) = self.find_tree(name) else {
            if self.tree.is_none() {
                return Err(ExecErr(format!(
                    "template: no template {name:?} associated with template {name:?}"
                )));
            }
            return Err(self.err(format!("template {name:?} not defined")));
        };
        if self.depth >= self.set.max_depth {
            return Err(self.err(format!(
                "exceeded maximum template depth ({})",
                self.set.max_depth
            )));
        }
        self.depth += 1;
        let saved_vars = std::mem::replace(&mut self.vars, vec![("$".to_string(), data.clone())]);
        let saved_tree = self.tree.replace(tree.clone());
        let saved_at = std::mem::take(&mut self.at);
        // Templates recurse through include/template: grow the stack on demand instead of
        // overflowing it (a runaway recursion ends at max_depth with an error).
        let r = stacker::maybe_grow(256 * 1024, 4 * 1024 * 1024, || {
            self.walk(data, &tree.root, out)
        });
        self.vars = saved_vars;
        self.tree = saved_tree;
        self.at = saved_at;
        self.depth -= 1;
        match r {
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn err(&self, msg: impl AsRef<str>) -> ExecErr {
        let msg = msg.as_ref();
        match &self.tree {
            Some(t) => {
                let (line, col) = t.line_col(self.at.0);
                ExecErr(format!(
                    "template: {}:{}:{}: executing {:?} at <{}>: {}",
                    t.parse_name,
                    line,
                    col,
                    t.name,
                    find_ctx(&t.root, self.at.0, self.at.1).unwrap_or_default(),
                    msg
                ))
            }
            None => ExecErr(format!("template: {msg}")),
        }
    }

    fn set_at(&mut self, pos: usize, kind: At) {
        self.at = (pos, kind);
    }

    fn walk(&mut self, dot: &Value, nodes: &[Node], out: &mut String) -> R<Flow> {
        for n in nodes {
            self.steps += 1;
            if self.set.max_steps > 0 && self.steps > self.set.max_steps {
                return Err(self.err(format!("execution exceeded {} steps", self.set.max_steps)));
            }
            if self.set.max_output > 0 && out.len() > self.set.max_output {
                return Err(self.err(format!("output exceeded {} bytes", self.set.max_output)));
            }
            match n {
                Node::Text(a, b) => {
                    if let Some(t) = &self.tree {
                        out.push_str(t.text.get(*a..*b).unwrap_or_default());
                    }
                }
                Node::Action(pipe) => {
                    let v = self.eval_pipeline(dot, pipe)?;
                    if pipe.decl.is_empty() {
                        self.print(&v, out);
                    }
                }
                Node::If(b) => match self.walk_if_with(dot, b, out, false)? {
                    Flow::Normal => {}
                    f => return Ok(f),
                },
                Node::With(b) => match self.walk_if_with(dot, b, out, true)? {
                    Flow::Normal => {}
                    f => return Ok(f),
                },
                Node::Range(b) => {
                    let mark = self.vars.len();
                    let r = self.walk_range(dot, b, out);
                    self.vars.truncate(mark);
                    r?;
                }
                Node::Template(call) => {
                    self.set_at(call.pos, At::Template);
                    let data = match &call.pipe {
                        Some(p) => self.eval_pipeline(dot, p)?,
                        None => Value::Nil,
                    };
                    self.exec_template(&call.name, &data, out)?;
                }
                Node::Break(_) => return Ok(Flow::Break),
                Node::Continue(_) => return Ok(Flow::Continue),
            }
        }
        Ok(Flow::Normal)
    }

    fn walk_if_with(&mut self, dot: &Value, b: &Branch, out: &mut String, with: bool) -> R<Flow> {
        let mark = self.vars.len();
        let r = (|| {
            let v = self.eval_pipeline(dot, &b.pipe)?;
            if v.truthy() {
                let d = if with { v } else { dot.clone() };
                self.walk(&d, &b.list, out)
            } else if let Some(e) = &b.else_list {
                self.walk(dot, e, out)
            } else {
                Ok(Flow::Normal)
            }
        })();
        self.vars.truncate(mark);
        r
    }

    fn walk_range(&mut self, dot: &Value, b: &Branch, out: &mut String) -> R<()> {
        self.set_at(b.pipe.pos, At::Pipe);
        let v = self.eval_pipeline_no_decl(dot, &b.pipe)?;
        let mark = self.vars.len();
        let mut one = |this: &mut Self, k: Value, e: Value| -> R<Flow> {
            this.steps += 1;
            if this.set.max_steps > 0 && this.steps > this.set.max_steps {
                return Err(this.err(format!("execution exceeded {} steps", this.set.max_steps)));
            }
            match b.pipe.decl.len() {
                0 => {}
                1 => this.assign_or_push(&b.pipe, 0, e.clone()),
                _ => {
                    this.assign_or_push(&b.pipe, 0, k);
                    this.assign_or_push(&b.pipe, 1, e.clone());
                }
            }
            let f = this.walk(&e, &b.list, out)?;
            this.vars.truncate(mark);
            Ok(f)
        };
        let mut any = false;
        match &v {
            Value::List(l) => {
                for (i, e) in l.iter().enumerate() {
                    any = true;
                    if let Flow::Break = one(self, Value::int(i as i64), e.clone())? {
                        break;
                    }
                }
            }
            Value::Bytes(bs) => {
                for (i, e) in bs.iter().enumerate() {
                    any = true;
                    if let Flow::Break = one(
                        self,
                        Value::int(i as i64),
                        Value::Int(*e as i64, IntKind::Int),
                    )? {
                        break;
                    }
                }
            }
            Value::Map(m) => {
                for (k, e) in m.snapshot().iter() {
                    any = true;
                    if let Flow::Break = one(self, Value::str(k), e.clone())? {
                        break;
                    }
                }
            }
            Value::Int(n, kind) => {
                if b.pipe.decl.len() > 1 {
                    return Err(self.err(format!(
                        "can't use {} to iterate over more than one variable",
                        v.type_name()
                    )));
                }
                for i in 0..*n {
                    any = true;
                    let iv = Value::Int(i, *kind);
                    if let Flow::Break = one(self, iv.clone(), iv)? {
                        break;
                    }
                }
            }
            Value::Nil => {}
            Value::Object(o) => match o.to_data() {
                Value::List(l) => {
                    for (i, e) in l.iter().enumerate() {
                        any = true;
                        if let Flow::Break = one(self, Value::int(i as i64), e.clone())? {
                            break;
                        }
                    }
                }
                Value::Map(m) => {
                    for (k, e) in m.snapshot().iter() {
                        any = true;
                        if let Flow::Break = one(self, Value::str(k), e.clone())? {
                            break;
                        }
                    }
                }
                _ => {
                    return Err(self.err(format!(
                        "range can't iterate over {}",
                        crate::gofmt::sprint_v(&v)
                    )));
                }
            },
            _ => {
                return Err(self.err(format!(
                    "range can't iterate over {}",
                    crate::gofmt::sprint_v(&v)
                )));
            }
        }
        if !any && let Some(e) = &b.else_list {
            self.walk(dot, e, out)?;
        }
        Ok(())
    }

    fn assign_or_push(&mut self, pipe: &Pipe, i: usize, v: Value) {
        let name = &pipe.decl[i];
        if pipe.is_assign {
            self.set_var(name, v);
        } else {
            self.vars.push((name.clone(), v));
        }
    }

    fn set_var(&mut self, name: &str, v: Value) {
        for (n, slot) in self.vars.iter_mut().rev() {
            if n == name {
                *slot = v;
                return;
            }
        }
    }

    fn var(&self, name: &str) -> R<Value> {
        for (n, v) in self.vars.iter().rev() {
            if n == name {
                return Ok(v.clone());
            }
        }
        Err(self.err(format!("undefined variable: {name}")))
    }

    fn print(&self, v: &Value, out: &mut String) {
        match v {
            Value::Nil => out.push_str("<no value>"),
            Value::Str(s) => out.push_str(s),
            other => out.push_str(&crate::gofmt::sprint_v(other)),
        }
    }

    fn eval_pipeline_no_decl(&mut self, dot: &Value, pipe: &Pipe) -> R<Value> {
        let mut value: Option<Value> = None;
        for cmd in &pipe.cmds {
            value = Some(self.eval_command(dot, cmd, value)?);
        }
        Ok(value.unwrap_or_default())
    }

    fn eval_pipeline(&mut self, dot: &Value, pipe: &Pipe) -> R<Value> {
        let v = self.eval_pipeline_no_decl(dot, pipe)?;
        for name in &pipe.decl {
            if pipe.is_assign {
                self.set_var(name, v.clone());
            } else {
                self.vars.push((name.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    fn eval_command(&mut self, dot: &Value, cmd: &parse::Command, fin: Option<Value>) -> R<Value> {
        let first = &cmd.args[0];
        match first {
            Arg::Field { pos, idents } => {
                self.set_at(*pos, At::arg(first));
                self.eval_field_chain(dot, dot.clone(), first, idents, &cmd.args, fin)
            }
            Arg::Chain { pos, node, fields } => {
                self.set_at(*pos, At::arg(first));
                let recv = self.eval_arg(dot, node)?;
                self.eval_field_chain(dot, recv, first, fields, &cmd.args, fin)
            }
            Arg::Identifier { pos, name } => {
                self.set_at(*pos, At::arg(first));
                self.eval_function(dot, name, cmd, &cmd.args, fin)
            }
            Arg::Pipe(p) => {
                self.not_a_function(&cmd.args, &fin)?;
                self.eval_pipeline(dot, p)
            }
            Arg::Variable { pos, name, idents } => {
                self.set_at(*pos, At::arg(first));
                let v = self.var(name)?;
                if idents.is_empty() {
                    self.not_a_function(&cmd.args, &fin)?;
                    return Ok(v);
                }
                self.eval_field_chain(dot, v, first, idents, &cmd.args, fin)
            }
            _ => {
                self.set_at(first.pos(), At::arg(first));
                self.not_a_function(&cmd.args, &fin)?;
                match first {
                    Arg::Bool(_, b) => Ok(Value::Bool(*b)),
                    Arg::Dot(_) => Ok(dot.clone()),
                    Arg::Nil(_) => Err(self.err("nil is not a command")),
                    Arg::Number { num, .. } => Ok(num_value(num)),
                    Arg::Str { value, .. } => Ok(Value::Str(value.clone())),
                    _ => Err(self.err(format!("can't evaluate command {first}"))),
                }
            }
        }
    }

    fn not_a_function(&self, args: &[Arg], fin: &Option<Value>) -> R<()> {
        if args.len() > 1 || fin.is_some() {
            return Err(self.err(format!("can't give argument to non-function {}", args[0])));
        }
        Ok(())
    }

    fn eval_arg(&mut self, dot: &Value, arg: &Arg) -> R<Value> {
        self.set_at(arg.pos(), At::arg(arg));
        match arg {
            Arg::Dot(_) => Ok(dot.clone()),
            Arg::Nil(_) => Ok(Value::Nil),
            Arg::Field { idents, .. } => self.eval_field_chain(
                dot,
                dot.clone(),
                arg,
                idents,
                std::slice::from_ref(arg),
                None,
            ),
            Arg::Variable { name, idents, .. } => {
                let v = self.var(name)?;
                if idents.is_empty() {
                    return Ok(v);
                }
                self.eval_field_chain(dot, v, arg, idents, std::slice::from_ref(arg), None)
            }
            Arg::Pipe(p) => self.eval_pipeline(dot, p),
            Arg::Identifier { name, pos } => {
                let cmd = parse::Command {
                    pos: *pos,
                    args: vec![arg.clone()],
                };
                self.eval_function(dot, name, &cmd, std::slice::from_ref(arg), None)
            }
            Arg::Chain { node, fields, .. } => {
                let recv = self.eval_arg(dot, node)?;
                self.eval_field_chain(dot, recv, arg, fields, std::slice::from_ref(arg), None)
            }
            Arg::Bool(_, b) => Ok(Value::Bool(*b)),
            Arg::Number { num, .. } => Ok(num_value(num)),
            Arg::Str { value, .. } => Ok(Value::Str(value.clone())),
        }
    }

    fn eval_field_chain(
        &mut self,
        dot: &Value,
        mut recv: Value,
        node: &Arg,
        idents: &[String],
        args: &[Arg],
        fin: Option<Value>,
    ) -> R<Value> {
        let n = idents.len();
        // A nil that is not a map entry (a pipeline's result, a variable, dot) has no fields:
        // Go yields the zero value without an error.
        if recv.is_nil() && !matches!(node, Arg::Field { .. }) {
            return Ok(Value::Nil);
        }
        if recv.is_nil() && matches!(node, Arg::Field { .. }) && dot.is_nil() {
            return Ok(Value::Nil);
        }
        // A value read from a map is an interface{} to Go (its error messages say so).
        let mut iface = false;
        for id in &idents[..n - 1] {
            let from_map = matches!(recv, Value::Map(_));
            recv = self.eval_field(dot, id, node, &[], None, (recv, iface))?;
            iface = from_map;
        }
        self.eval_field(dot, &idents[n - 1], node, args, fin, (recv, iface))
    }

    fn eval_field(
        &mut self,
        dot: &Value,
        name: &str,
        node: &Arg,
        args: &[Arg],
        fin: Option<Value>,
        (recv, iface): (Value, bool),
    ) -> R<Value> {
        self.set_at(node.pos(), At::arg(node));
        let has_args = args.len() > 1 || fin.is_some();
        match &recv {
            Value::Map(m) => {
                if has_args {
                    return Err(self.err(format!("{name} is not a method but has arguments")));
                }
                match m.get(name) {
                    Some(v) => Ok(v.clone()),
                    None if self.set.strict => {
                        Err(self.err(format!("map has no entry for key {name:?}")))
                    }
                    None => Ok(Value::Nil),
                }
            }
            Value::Object(o) => {
                if o.has_method(name) {
                    let mut vals = Vec::new();
                    for a in args.iter().skip(1) {
                        vals.push(self.eval_arg(dot, a)?);
                    }
                    if let Some(f) = fin {
                        vals.push(f);
                    }
                    self.set_at(node.pos(), At::arg(node));
                    return match o.call(name, &vals) {
                        Some(Ok(v)) => Ok(v),
                        Some(Err(e)) => Err(self.err(format!("error calling {name}: {e}"))),
                        None => Err(self.err(format!(
                            "can't evaluate field {name} in type {}",
                            o.type_name()
                        ))),
                    };
                }
                if has_args {
                    return Err(self.err(format!(
                        "{name} has arguments but cannot be invoked as function"
                    )));
                }
                match o.field(name) {
                    Some(v) => Ok(v),
                    None => Err(self.err(format!(
                        "can't evaluate field {name} in type {}",
                        o.type_name()
                    ))),
                }
            }
            Value::Nil => Err(self.err(format!("nil pointer evaluating interface {{}}.{name}"))),
            other => Err(self.err(format!(
                "can't evaluate field {name} in type {}",
                if iface {
                    "interface {}".to_string()
                } else {
                    other.type_name()
                }
            ))),
        }
    }

    fn eval_function(
        &mut self,
        dot: &Value,
        name: &str,
        cmd: &parse::Command,
        args: &[Arg],
        fin: Option<Value>,
    ) -> R<Value> {
        if name == "and" || name == "or" {
            let is_and = name == "and";
            if args.len() < 2 && fin.is_none() {
                self.set_at(cmd.pos, At::Cmd);
                return Err(self.err(format!(
                    "wrong number of args for {name}: want at least 1 got 0"
                )));
            }
            let mut last = Value::Nil;
            for a in &args[1..] {
                last = self.eval_arg(dot, a)?;
                if last.truthy() != is_and {
                    return Ok(last);
                }
            }
            if let Some(f) = fin {
                last = f;
            }
            return Ok(last);
        }
        let Some(f) = self.set.funcs.get(name).cloned() else {
            return Err(self.err(format!("{name:?} is not a defined function")));
        };
        let mut vals = Vec::with_capacity(args.len());
        for (i, a) in args[1..].iter().enumerate() {
            let v = self.eval_arg(dot, a)?;
            // A nil read from a map is a nil interface{}, which Go will not pass where a map
            // is expected (a nil variable or pipeline result becomes a nil map instead).
            if v.is_nil()
                && matches!(a, Arg::Field { .. } | Arg::Chain { .. } | Arg::Variable { idents: _, .. } if !matches!(a, Arg::Variable { idents, .. } if idents.is_empty()))
            {
                let n = args.len() - 1;
                if takes_map(name, i, n) {
                    return Err(self.err(
                        "wrong type for value; expected map[string]interface {}; got interface {}",
                    ));
                }
                if takes_string(name, i, n) {
                    return Err(self.err("wrong type for value; expected string; got interface {}"));
                }
            }
            vals.push(v);
        }
        if let Some(fv) = fin {
            vals.push(fv);
        }
        let r = f(self, &vals);
        self.set_at(cmd.pos, At::Cmd);
        match r {
            Ok(v) => Ok(v),
            Err(e) => Err(self.err(format!("error calling {name}: {e}"))),
        }
    }
}

/// Which node an error is "at" (its text is found again only when an error is formatted).
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
enum At {
    #[default]
    None,
    Cmd,
    Pipe,
    Template,
    Arg(u8),
}

impl At {
    fn arg(a: &Arg) -> At {
        At::Arg(match a {
            Arg::Field { .. } => 0,
            Arg::Variable { .. } => 1,
            Arg::Identifier { .. } => 2,
            Arg::Dot(_) => 3,
            Arg::Nil(_) => 4,
            Arg::Bool(..) => 5,
            Arg::Number { .. } => 6,
            Arg::Str { .. } => 7,
            Arg::Pipe(_) => 8,
            Arg::Chain { .. } => 9,
        })
    }
}

fn find_ctx(nodes: &[Node], pos: usize, kind: At) -> Option<String> {
    fn in_pipe(p: &Pipe, pos: usize, kind: At) -> Option<String> {
        if kind == At::Pipe && p.pos == pos {
            return Some(p.to_string());
        }
        for c in &p.cmds {
            if kind == At::Cmd && c.pos == pos {
                return Some(c.to_string());
            }
            for a in &c.args {
                if let Some(s) = in_arg(a, pos, kind) {
                    return Some(s);
                }
            }
        }
        None
    }
    fn in_arg(a: &Arg, pos: usize, kind: At) -> Option<String> {
        if At::arg(a) == kind && a.pos() == pos {
            return Some(a.to_string());
        }
        match a {
            Arg::Pipe(p) => in_pipe(p, pos, kind),
            Arg::Chain { node, .. } => in_arg(node, pos, kind),
            _ => None,
        }
    }
    for n in nodes {
        let r = match n {
            Node::Action(p) => in_pipe(p, pos, kind),
            Node::If(b) | Node::Range(b) | Node::With(b) => in_pipe(&b.pipe, pos, kind)
                .or_else(|| find_ctx(&b.list, pos, kind))
                .or_else(|| b.else_list.as_ref().and_then(|e| find_ctx(e, pos, kind))),
            Node::Template(call) => {
                let (tp, name, pipe) = (&call.pos, &call.name, &call.pipe);
                if kind == At::Template && *tp == pos {
                    Some(match pipe {
                        Some(p) => format!("{{{{template {name:?} {p}}}}}"),
                        None => format!("{{{{template {name:?}}}}}"),
                    })
                } else {
                    pipe.as_ref().and_then(|p| in_pipe(p, pos, kind))
                }
            }
            _ => None,
        };
        if r.is_some() {
            return r;
        }
    }
    None
}

/// Whether parameter `i` (of `n`) of a sprig function is a `map[string]interface{}`.
fn takes_map(name: &str, i: usize, n: usize) -> bool {
    match name {
        "hasKey" | "get" | "set" | "unset" | "pick" | "omit" | "values" => i == 0,
        "merge" | "mergeOverwrite" | "mustMerge" | "mustMergeOverwrite" | "keys" => true,
        "pluck" => i > 0,
        "dig" => i + 1 == n,
        _ => false,
    }
}

/// Whether parameter `i` (of `n`) of a function is a Go `string`.
fn takes_string(name: &str, i: usize, n: usize) -> bool {
    match name {
        "tpl" | "include" | "printf" | "upper" | "lower" | "title" | "untitle" | "trim"
        | "nospace" | "initials" | "snakecase" | "camelcase" | "kebabcase" | "swapcase"
        | "shuffle" | "sha1sum" | "sha256sum" | "sha512sum" | "adler32sum" | "base" | "dir"
        | "clean" | "ext" | "isAbs" | "regexQuoteMeta" | "atoi" | "fromYaml" | "fromYamlArray"
        | "fromJson" | "fromJsonArray" | "fromToml" | "required" | "fail" | "semver" => i == 0,
        "indent" | "nindent" | "trunc" | "repeat" | "abbrev" | "wrap" => i == 1,
        "trimSuffix" | "trimPrefix" | "trimAll" | "contains" | "hasPrefix" | "hasSuffix"
        | "split" | "splitList" | "regexMatch" | "regexFind" | "semverCompare" => i < 2,
        "replace"
        | "regexReplaceAll"
        | "regexReplaceAllLiteral"
        | "regexFindAll"
        | "regexSplit" => {
            i < 2
                || (i == 2 && n == 3 && name.starts_with("regexReplace"))
                || (name == "replace" && i == 2)
        }
        "substr" => i == 2,
        "lookup" => i < 4,
        _ => false,
    }
}

/// The value of a number literal in an `interface{}` context.
fn num_value(n: &Num) -> Value {
    match n {
        Num::Int(i) => Value::int(*i),
        Num::Float(f) => Value::Float(*f),
    }
}
