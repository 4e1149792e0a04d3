//! Status writes: server-side apply of the `status` subresource under the field manager Flux
//! uses (`gotk-<controller>`), forced, so the controller owns every status field it writes and
//! fields it stops writing disappear.

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;

/// The apply body for `status`: apiVersion, kind, name and the status object.
pub fn status_apply_body<K, S>(obj: &K, status: &S) -> Result<serde_json::Value, Error>
where
    K: Resource<DynamicType = ()>,
    S: Serialize,
{
    let status = serde_json::to_value(status).map_err(Error::Serialize)?;
    Ok(serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": { "name": obj.name_any() },
        "status": status,
    }))
}

/// Applies `status` to `obj`'s status subresource as `gotk-<controller>` and returns the
/// object the API server answered with.
pub async fn patch_status<K, S>(
    client: &kube::Client,
    obj: &K,
    controller: &str,
    status: &S,
) -> Result<K, Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
    S: Serialize,
{
    let ns = obj.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(client.clone(), &ns);
    let body = status_apply_body(obj, status)?;
    let pp =
        PatchParams::apply(&ferroflux_api::constants::status_field_manager(controller)).force();
    api.patch_status(&obj.name_any(), &pp, &Patch::Apply(&body))
        .await
        .map_err(|e| Error::Kube {
            action: format!("patch status of {}/{}/{}", K::kind(&()), ns, obj.name_any()),
            source: e,
        })
}
