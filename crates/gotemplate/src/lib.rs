//! Go's text/template with the sprig function library and Helm's template functions.
//!
//! A pure engine: randomness, the clock, `lookup` and DNS come through [`Host`].
//!
//! ```
//! use ferroflux_gotemplate::{Templates, FixedHost, Value};
//! let mut t = Templates::new();
//! t.parse("x", "{{ .name | upper | quote }}").unwrap();
//! let data = ferroflux_gotemplate::yaml::parse("name: demo", ferroflux_gotemplate::yaml::Numbers::Json).unwrap();
//! assert_eq!(t.execute("x", &data, &mut FixedHost::default()).unwrap(), "\"DEMO\"");
//! ```

pub mod crypto;
pub mod dates;
pub mod exec;
pub mod funcs;
pub mod gofmt;
pub mod json;
pub mod parse;
pub mod semver;
pub mod toml;
pub mod url;
pub mod value;
pub mod yaml;

pub use exec::{Error, Exec, FixedHost, Func, Host, Templates};
pub use value::{IntKind, Map, MapRef, Object, Value};
