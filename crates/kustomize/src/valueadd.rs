//! The ValueAddTransformer builtin plugin.

use serde_yaml::Value;

use crate::resource::Resource;

pub fn apply(_res: &mut [Resource], _cfg: &Value) -> Result<(), String> {
    Err("ValueAddTransformer is not supported yet".into())
}
