//! The GitRepository reconciler (FLUX-API.md §1–§3): resolve the reference on the remote,
//! fetch into the object's cache repository when the commit is new, archive its tree from the
//! git objects into storage and report the artifact, conditions and events the way Flux does.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime};

use ferroflux_api::constants::RECONCILE_REQUEST_ANNOTATION;
use ferroflux_api::meta::{Artifact, Condition, condition_types as ct, reasons};
use ferroflux_api::source::{
    GitRepository, GitRepositoryInclude, GitRepositoryStatus, GitRepositoryVerification,
    GitVerificationMode,
};
use ferroflux_artifact::archive::ArchiveOptions;
use ferroflux_artifact::storage::{self, Storage};
use ferroflux_runtime::conditions as cond;
use ferroflux_runtime::{Context, ReconcileError, Reconciler, Severity};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::{Resource, ResourceExt};

use crate::archive::{self, SubmoduleCheckout};
use crate::git::{self, Auth, FetchOutcome, FetchRequest, GitError, GitRef};
use crate::include;
use crate::submodules::{self, SubmoduleRequest};
use crate::verify::{self, TrustedKeys};

/// The kind name used in storage paths and metrics.
pub const KIND: &str = "GitRepository";

/// `ArtifactOutdated` reason when only the included artifacts changed (Flux's literal).
pub const INCLUDE_CHANGE: &str = "IncludeChange";

/// Counter of reconciles that found the remote unchanged and skipped the fetch.
pub const FETCH_SKIPPED_METRIC: &str = "gotk_git_fetch_skipped_total";

/// The GitRepository reconciler.
pub struct GitRepositoryReconciler {
    /// Artifact storage.
    pub storage: Storage,
    /// Root of the per-object git caches.
    pub cache_root: PathBuf,
    /// How long to wait before looking again at an included repository without an artifact
    /// (`--requeue-dependency`).
    pub requeue_dependency: Duration,
}

/// Converts a storage record to the API's artifact.
pub fn to_api_artifact(a: &storage::Artifact) -> Artifact {
    let secs = a
        .last_update_time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Artifact {
        path: a.path.clone(),
        url: a.url.clone(),
        revision: a.revision.clone(),
        digest: a.digest.clone(),
        last_update_time: Time(Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH)),
        size: a.size.map(|s| s as i64),
        metadata: if a.metadata.is_empty() {
            None
        } else {
            Some(a.metadata.clone())
        },
    }
}

/// Converts the API's artifact to a storage record.
pub fn from_api_artifact(a: &Artifact) -> storage::Artifact {
    let secs = a.last_update_time.0.as_second().max(0) as u64;
    storage::Artifact {
        path: a.path.clone(),
        url: a.url.clone(),
        revision: a.revision.clone(),
        digest: a.digest.clone(),
        last_update_time: SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
        size: a.size.map(|s| s.max(0) as u64),
        metadata: a.metadata.clone().unwrap_or_default(),
    }
}

fn secret_str(s: &Secret, key: &str) -> Option<String> {
    s.data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .or_else(|| s.string_data.as_ref().and_then(|d| d.get(key).cloned()))
}

/// Every entry of a Secret's `data`, as bytes.
fn secret_data(s: Secret) -> BTreeMap<String, Vec<u8>> {
    s.data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect()
}

fn secret_bytes(s: &Secret, key: &str) -> Option<Vec<u8>> {
    s.data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| b.0.clone())
}

/// Builds the auth settings from a Secret (`username`/`password`, `bearerToken`, `ca.crt`,
/// `tls.crt`/`tls.key`).
pub fn auth_from_secret(s: &Secret) -> Result<Auth, String> {
    let mut auth = Auth::default();
    let has_identity = secret_bytes(s, "identity").is_some();
    match (secret_str(s, "username"), secret_str(s, "password")) {
        (Some(u), Some(p)) => auth.basic = Some((u, p)),
        (None, Some(_)) if has_identity => {}
        (Some(_), None) | (None, Some(_)) => {
            return Err("invalid 'username'/'password': both must be set".to_string());
        }
        _ => {}
    }
    auth.bearer_token = secret_str(s, "bearerToken");
    if auth.basic.is_some() && auth.bearer_token.is_some() {
        return Err("both basic auth and bearer token are set; use one".to_string());
    }
    auth.ca_pem = secret_bytes(s, "ca.crt").or_else(|| secret_bytes(s, "caFile"));
    match (secret_bytes(s, "tls.crt"), secret_bytes(s, "tls.key")) {
        (Some(mut c), Some(k)) => {
            c.push(b'\n');
            c.extend(k);
            auth.client_identity_pem = Some(c);
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err("'tls.crt' and 'tls.key' must both be set".to_string());
        }
        _ => {}
    }
    if let Some(identity) = secret_bytes(s, "identity") {
        auth.ssh = Some(git::SshAuth {
            identity,
            password: secret_str(s, "password"),
            known_hosts: secret_bytes(s, "known_hosts").unwrap_or_default(),
        });
        auth.basic = None;
    }
    Ok(auth)
}

/// Whether the inputs that shape the artifact (besides the commit) are what produced the
/// current artifact.
fn content_config_unchanged(obj: &GitRepository, st: &GitRepositoryStatus) -> bool {
    st.observed_ignore == obj.spec.ignore
        && st.observed_recurse_submodules.unwrap_or(false)
            == obj.spec.recurse_submodules.unwrap_or(false)
        && st.observed_sparse_checkout.clone().unwrap_or_default()
            == obj.spec.sparse_checkout.clone().unwrap_or_default()
        && st.observed_include.clone().unwrap_or_default()
            == obj.spec.include.clone().unwrap_or_default()
}

/// Whether the included artifacts are those the current artifact was built with (same
/// revision and digest, in `spec.include` order).
fn includes_unchanged(
    includes: &[(GitRepositoryInclude, Artifact)],
    st: &GitRepositoryStatus,
) -> bool {
    let observed = st.included_artifacts.as_deref().unwrap_or_default();
    includes.len() == observed.len()
        && includes
            .iter()
            .zip(observed)
            .all(|((_, a), o)| a.revision == o.revision && a.digest == o.digest)
}

/// The verification mode asked for (Flux's default is HEAD).
fn verification_mode(v: &GitRepositoryVerification) -> GitVerificationMode {
    v.mode.unwrap_or(GitVerificationMode::Head)
}

/// Whether the commit must be verified again although it may be unchanged: verification is
/// asked for and what was verified last (`status.sourceVerificationMode`) does not cover it.
fn requires_verification(obj: &GitRepository, st: &GitRepositoryStatus) -> bool {
    let Some(v) = &obj.spec.verify else {
        return false;
    };
    let mode = verification_mode(v);
    match st.source_verification_mode.as_deref() {
        None => true,
        Some("TagAndHEAD") => false,
        Some(observed) => observed != mode.as_str(),
    }
}

/// The tag a reference checks out, when it is one (the name Flux reports for the tag).
fn referenced_tag(reference: &GitRef, resolved: &git::Resolved) -> Option<String> {
    match reference {
        GitRef::Tag(t) => Some(t.clone()),
        GitRef::Semver(_) => resolved
            .revision
            .split_once("@sha1:")
            .map(|(name, _)| name.to_string()),
        GitRef::Name(n) => n.strip_prefix("refs/tags/").map(str::to_string),
        _ => None,
    }
}

/// The API server's message for API errors, the error text otherwise.
fn kube_msg(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        e => e.to_string(),
    }
}

struct Failure {
    reason: &'static str,
    message: String,
    condition: &'static str,
    stalled: bool,
}

impl GitRepositoryReconciler {
    fn cache_dir(&self, obj: &GitRepository) -> PathBuf {
        self.cache_root
            .join(obj.namespace().unwrap_or_default())
            .join(obj.name_any())
    }

    async fn auth(&self, ctx: &Context, obj: &GitRepository) -> Result<Auth, Failure> {
        let Some(r) = &obj.spec.secret_ref else {
            return Ok(Auth::default());
        };
        let ns = obj.namespace().unwrap_or_default();
        let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
        let secret = api.get(&r.name).await.map_err(|e| Failure {
            reason: reasons::AUTHENTICATION_FAILED,
            message: format!("failed to get secret '{ns}/{}': {}", r.name, kube_msg(&e)),
            condition: ct::FETCH_FAILED,
            stalled: false,
        })?;
        auth_from_secret(&secret).map_err(|e| Failure {
            reason: reasons::AUTHENTICATION_FAILED,
            message: format!("invalid secret '{ns}/{}': {e}", r.name),
            condition: ct::FETCH_FAILED,
            stalled: false,
        })
    }

    /// Flux's progressive status: Reconciling (and Ready=Unknown unless it is False) with
    /// what is being done, patched right away so it is visible while the work goes on.
    /// Flux's "building artifact: MESSAGE" progress status, after marking ArtifactOutdated
    /// with `outdated` as its reason when there is one.
    async fn progress_rebuild(
        &self,
        ctx: &Context,
        obj: &GitRepository,
        st: &GitRepositoryStatus,
        conds: &mut Vec<Condition>,
        outdated: Option<&str>,
        message: &str,
    ) -> Result<(), Failure> {
        if let Some(reason) = outdated {
            let generation = obj.meta().generation;
            cond::mark_true(
                conds,
                ct::ARTIFACT_OUTDATED,
                reason,
                message,
                generation,
                Timestamp::now(),
            );
        }
        self.progress(
            ctx,
            obj,
            st,
            conds,
            &format!("building artifact: {message}"),
        )
        .await
    }

    async fn progress(
        &self,
        ctx: &Context,
        obj: &GitRepository,
        st: &GitRepositoryStatus,
        conds: &mut Vec<Condition>,
        message: &str,
    ) -> Result<(), Failure> {
        let generation = obj.meta().generation;
        let now = Timestamp::now();
        cond::mark_reconciling(conds, reasons::PROGRESSING, message, generation, now);
        if !cond::is_false(conds, ct::READY) {
            cond::mark_unknown(
                conds,
                ct::READY,
                reasons::PROGRESSING,
                message,
                generation,
                now,
            );
        }
        let mut patched = st.clone();
        patched.conditions = Some(conds.clone());
        ferroflux_runtime::status::patch_status(&ctx.client, obj, &ctx.controller, &patched)
            .await
            .map(|_| ())
            .map_err(|e| Failure {
                reason: "PatchOperationFailed",
                message: e.to_string(),
                condition: ct::READY,
                stalled: false,
            })
    }

    /// The proxy of `spec.proxySecretRef` (Flux's `ProxyURLFromSecretRef`): an unusable
    /// Secret fails the fetch with AuthenticationFailed, and is retried.
    async fn proxy(
        &self,
        ctx: &Context,
        obj: &GitRepository,
    ) -> Result<Option<crate::proxy::ProxyConfig>, Failure> {
        let Some(r) = &obj.spec.proxy_secret_ref else {
            return Ok(None);
        };
        let ns = obj.namespace().unwrap_or_default();
        let secret_ref = format!("{ns}/{}", r.name);
        let fail = |e: String| Failure {
            reason: reasons::AUTHENTICATION_FAILED,
            message: format!("failed to configure proxy options: {e}"),
            condition: ct::FETCH_FAILED,
            stalled: false,
        };
        let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
        let secret = match api.get_opt(&r.name).await {
            Ok(Some(s)) => s,
            Ok(None) => return Err(fail(format!("secret '{secret_ref}' not found"))),
            Err(e) => {
                return Err(fail(format!(
                    "failed to get secret '{secret_ref}': {}",
                    kube_msg(&e)
                )));
            }
        };
        let data = secret_data(secret);
        crate::proxy::from_secret_data(&secret_ref, &data)
            .map(Some)
            .map_err(fail)
    }

    /// The artifacts of the included repositories, in `spec.include` order (Flux's
    /// `fetchIncludes`): a missing repository or one without an artifact makes the object wait.
    async fn fetch_includes(
        &self,
        ctx: &Context,
        obj: &GitRepository,
    ) -> Result<Vec<(GitRepositoryInclude, Artifact)>, Failure> {
        let includes = obj.spec.include.clone().unwrap_or_default();
        if includes.is_empty() {
            return Ok(Vec::new());
        }
        let ns = obj.namespace().unwrap_or_default();
        let api: Api<GitRepository> = Api::namespaced(ctx.client.clone(), &ns);
        let mut out = Vec::with_capacity(includes.len());
        for incl in includes {
            let name = incl.repository.name.clone();
            let unavailable = |reason: &'static str, message: String| Failure {
                reason,
                message,
                condition: ct::INCLUDE_UNAVAILABLE,
                stalled: false,
            };
            let dep = match api.get_opt(&name).await {
                Ok(Some(d)) => d,
                Ok(None) => {
                    return Err(unavailable(
                        "NotFound",
                        format!(
                            "could not get resource for include '{name}': gitrepositories.source.toolkit.fluxcd.io \"{name}\" not found"
                        ),
                    ));
                }
                Err(e) => {
                    return Err(unavailable(
                        "NotFound",
                        format!(
                            "could not get resource for include '{name}': {}",
                            kube_msg(&e)
                        ),
                    ));
                }
            };
            let Some(artifact) = dep.status.and_then(|s| s.artifact) else {
                return Err(unavailable(
                    "NoArtifact",
                    format!("no artifact available for include '{name}'"),
                ));
            };
            out.push((incl, artifact));
        }
        Ok(out)
    }

    /// Verifies the signatures `spec.verify` asks for (Flux's `verifySignature`); returns the
    /// mode verified and the `SourceVerified` message.
    async fn verify_signatures(
        &self,
        ctx: &Context,
        obj: &GitRepository,
        v: &GitRepositoryVerification,
        reference: &GitRef,
        cache_dir: &std::path::Path,
        resolved: &git::Resolved,
    ) -> Result<(GitVerificationMode, String), Failure> {
        let fail = |reason: &'static str, message: String, stalled: bool| Failure {
            reason,
            message,
            condition: ct::SOURCE_VERIFIED,
            stalled,
        };
        let ns = obj.namespace().unwrap_or_default();
        let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
        let secret = api.get(&v.secret_ref.name).await.map_err(|e| {
            fail(
                verify::reasons::VERIFICATION_ERROR,
                format!(
                    "public keys secret error: failed to get secret '{ns}/{}': {}",
                    v.secret_ref.name,
                    kube_msg(&e)
                ),
                false,
            )
        })?;
        let data = secret_data(secret);
        let keys = TrustedKeys::from_secret_data(&data);
        let mode = verification_mode(v);
        let mut message = String::new();
        if mode.verifies_tag() {
            let Some(tag) = referenced_tag(reference, resolved) else {
                return Err(fail(
                    verify::reasons::INVALID_VERIFICATION_MODE,
                    "cannot verify tag object's signature if a tag reference is not specified"
                        .to_string(),
                    true,
                ));
            };
            let Some(tag_hex) = resolved.tag_object.clone() else {
                return Err(fail(
                    verify::reasons::INVALID_GIT_OBJECT,
                    format!("cannot verify signature of tag '{tag}' since it is not signed"),
                    false,
                ));
            };
            let tag_str = format!("{tag}@{tag_hex}");
            let signed = {
                let cd = cache_dir.to_path_buf();
                let th = tag_hex.clone();
                tokio::task::spawn_blocking(move || git::tag_signature(&cd, &th))
                    .await
                    .map_err(|e| GitError::Other(e.to_string()))
                    .and_then(|r| r)
            }
            .map_err(|e| {
                fail(
                    verify::reasons::INVALID_TAG_SIGNATURE,
                    format!("signature verification of tag '{tag_str}' failed: {e}"),
                    false,
                )
            })?;
            if signed.signature.is_empty() {
                return Err(fail(
                    verify::reasons::INVALID_GIT_OBJECT,
                    format!("cannot verify signature of tag '{tag_str}' since it is not signed"),
                    false,
                ));
            }
            let key = verify::verify_object("tag", &signed, &keys).map_err(|e| {
                fail(
                    verify::reasons::INVALID_TAG_SIGNATURE,
                    format!("signature verification of tag '{tag_str}' failed: {e}"),
                    false,
                )
            })?;
            message.push_str(&format!(
                "verified signature of\n\t- tag '{tag_str}' with key '{key}'"
            ));
        }
        if mode.verifies_head() {
            let commit = resolved.commit.clone();
            let signed = {
                let cd = cache_dir.to_path_buf();
                let c = commit.clone();
                tokio::task::spawn_blocking(move || git::commit_signature(&cd, &c))
                    .await
                    .map_err(|e| GitError::Other(e.to_string()))
                    .and_then(|r| r)
            };
            let key = signed
                .map_err(|e| e.to_string())
                .and_then(|s| verify::verify_object("commit", &s, &keys))
                .map_err(|e| {
                    fail(
                        verify::reasons::INVALID_COMMIT_SIGNATURE,
                        format!("signature verification of commit '{commit}' failed: {e}"),
                        false,
                    )
                })?;
            if message.is_empty() {
                message.push_str("verified signature of");
            }
            message.push_str(&format!("\n\t- commit '{commit}' with key '{key}'"));
        }
        tracing::info!(
            kind = KIND, namespace = %ns, name = %obj.name_any(), "{message}"
        );
        Ok((mode, message))
    }

    /// The reconcile proper; `st` is the status being built.
    async fn run(
        &self,
        ctx: &Context,
        obj: &GitRepository,
        st: &mut GitRepositoryStatus,
        conds: &mut Vec<Condition>,
    ) -> Result<(), Failure> {
        let generation = obj.meta().generation;
        let url = obj.spec.url.clone();
        if let Err(e) = gix::url::parse(gix::bstr::BStr::new(url.as_str())) {
            return Err(Failure {
                reason: reasons::URL_INVALID,
                message: format!("invalid URL '{url}': {e}"),
                condition: ct::FETCH_FAILED,
                stalled: true,
            });
        }
        // A failed verification is computed afresh; without spec.verify there is nothing
        // to report.
        if cond::is_false(conds, ct::SOURCE_VERIFIED) {
            cond::remove(conds, ct::SOURCE_VERIFIED);
        }
        if obj.spec.verify.is_none() {
            st.source_verification_mode = None;
            cond::remove(conds, ct::SOURCE_VERIFIED);
        }
        let proxy = self.proxy(ctx, obj).await?;
        let mut auth = self.auth(ctx, obj).await?;
        auth.proxy = proxy;
        let includes = self.fetch_includes(ctx, obj).await?;
        cond::remove(conds, ct::INCLUDE_UNAVAILABLE);
        if !includes_unchanged(&includes, st) {
            // Flux's IncludeChange: shown while the artifact is rebuilt (only when there were
            // included artifacts before), then dropped like Flux drops it.
            let outdated = st.included_artifacts.is_some().then_some(INCLUDE_CHANGE);
            let message = "included artifacts differ from last observed includes";
            self.progress_rebuild(ctx, obj, st, conds, outdated, message)
                .await?;
        }
        cond::remove(conds, ct::ARTIFACT_OUTDATED);
        let reference = GitRef::from_spec(&obj.spec.effective_ref());

        // The current artifact may be reused when it is in storage and built from the same
        // inputs: content settings, included artifacts, and a verification that still holds.
        let current = st
            .artifact
            .as_ref()
            .filter(|a| self.storage.exists(&from_api_artifact(a)))
            .cloned();
        let reusable = current.is_some()
            && content_config_unchanged(obj, st)
            && includes_unchanged(&includes, st)
            && !requires_verification(obj, st);
        let last_revision = if reusable {
            current.as_ref().map(|a| a.revision.clone())
        } else {
            None
        };

        let timeout = obj.spec.timeout();
        let cache_dir = self.cache_dir(obj);
        let interrupt = Arc::new(AtomicBool::new(false));
        let fetch_started = std::time::Instant::now();
        let outcome = {
            let url2 = url.clone();
            let reference = reference.clone();
            let cache_dir = cache_dir.clone();
            let interrupt2 = Arc::clone(&interrupt);
            let last = last_revision.clone();
            let auth = auth.clone();
            let task = tokio::task::spawn_blocking(move || {
                git::fetch(&FetchRequest {
                    url: &url2,
                    reference: &reference,
                    auth: &auth,
                    cache_dir: &cache_dir,
                    timeout,
                    last_revision: last.as_deref(),
                    interrupt: interrupt2,
                })
            });
            match tokio::time::timeout(timeout, task).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => Err(GitError::Other(format!("git task failed: {e}"))),
                Err(_) => {
                    interrupt.store(true, std::sync::atomic::Ordering::Relaxed);
                    Err(GitError::Timeout(format!(
                        "unable to fetch from '{url}': timeout of {} exceeded",
                        ferroflux_api::duration::format(timeout)
                    )))
                }
            }
        };
        tracing::debug!(
            elapsed_ms = fetch_started.elapsed().as_millis() as u64,
            ok = outcome.is_ok(),
            "git fetch done"
        );
        let outcome = outcome.map_err(|e| {
            // Flux reports every failed clone, rejected credentials included, as
            // GitOperationFailed; only an unusable secret is AuthenticationFailed.
            let reason = match e {
                GitError::AuthConfig(_) => reasons::AUTHENTICATION_FAILED,
                GitError::InvalidUrl(_) => reasons::URL_INVALID,
                _ => reasons::GIT_OPERATION_FAILED,
            };
            Failure {
                reason,
                message: format!("failed to checkout and determine revision: {e}"),
                condition: ct::FETCH_FAILED,
                stalled: matches!(e, GitError::InvalidUrl(_)),
            }
        })?;
        cond::remove(conds, ct::FETCH_FAILED);

        let now = Timestamp::now();
        let unchanged = matches!(outcome, FetchOutcome::Unchanged(_));
        let resolved = match outcome {
            FetchOutcome::Unchanged(r) => {
                tracing::info!(
                    kind = KIND, namespace = %obj.namespace().unwrap_or_default(), name = %obj.name_any(),
                    revision = %r.revision,
                    "no changes since last reconciliation, observed revision '{}'", r.revision
                );
                ctx.metrics.inc_counter(
                    FETCH_SKIPPED_METRIC,
                    "Reconciles that found the remote revision unchanged and fetched nothing.",
                    &[
                        ("kind", KIND),
                        ("name", &obj.name_any()),
                        ("namespace", &obj.namespace().unwrap_or_default()),
                    ],
                );
                r
            }
            FetchOutcome::Ready(r) => r,
        };
        if let Some(v) = &obj.spec.verify
            && !unchanged
        {
            let (mode, message) = self
                .verify_signatures(ctx, obj, v, &reference, &cache_dir, &resolved)
                .await?;
            st.source_verification_mode = Some(mode.as_str().to_string());
            cond::mark_true(
                conds,
                ct::SOURCE_VERIFIED,
                reasons::SUCCEEDED,
                &message,
                generation,
                now,
            );
        }

        let same_artifact = reusable
            && current
                .as_ref()
                .is_some_and(|a| a.revision == resolved.revision);
        if current
            .as_ref()
            .is_some_and(|a| a.revision != resolved.revision)
        {
            // Flux's NewRevision, only for a new commit over an existing artifact.
            let message = format!("new upstream revision '{}'", resolved.revision);
            self.progress_rebuild(ctx, obj, st, conds, Some(reasons::NEW_REVISION), &message)
                .await?;
        }
        if !same_artifact {
            let submodules = if obj.spec.recurse_submodules.unwrap_or(false) {
                self.fetch_submodules(obj, &auth, &cache_dir, &resolved)
                    .await?
            } else {
                Vec::new()
            };
            let art = self
                .build_artifact(obj, &cache_dir, &resolved, &includes, submodules)
                .await?;
            let subject = {
                let cd = cache_dir.clone();
                let c = resolved.commit.clone();
                tokio::task::spawn_blocking(move || git::commit_subject(&cd, &c))
                    .await
                    .ok()
                    .flatten()
                    .unwrap_or_default()
            };
            let mut md = BTreeMap::new();
            md.insert("revision".to_string(), art.revision.clone());
            md.insert("digest".to_string(), art.digest.clone());
            ctx.events
                .event(
                    obj,
                    Severity::Info,
                    "NewArtifact",
                    &format!("stored artifact for commit '{subject}'"),
                    md,
                )
                .await;
            st.artifact = Some(art);
            st.included_artifacts = if includes.is_empty() {
                None
            } else {
                Some(includes.iter().map(|(_, a)| a.clone()).collect())
            };
            st.observed_ignore = obj.spec.ignore.clone();
            st.observed_recurse_submodules = obj.spec.recurse_submodules;
            st.observed_sparse_checkout = obj.spec.sparse_checkout.clone();
            st.observed_include = obj.spec.include.clone();
            cond::remove(conds, ct::ARTIFACT_OUTDATED);
        }
        let msg = format!("stored artifact for revision '{}'", resolved.revision);
        cond::mark_true(
            conds,
            ct::ARTIFACT_IN_STORAGE,
            reasons::SUCCEEDED,
            &msg,
            generation,
            now,
        );
        cond::mark_true(conds, ct::READY, reasons::SUCCEEDED, &msg, generation, now);
        if let Some(a) = &st.artifact {
            let storage = self.storage.clone();
            let a = from_api_artifact(a);
            let _ =
                tokio::task::spawn_blocking(move || storage.garbage_collect(&a, SystemTime::now()))
                    .await;
        }
        Ok(())
    }

    /// `spec.recurseSubmodules`: fetches the submodules of the resolved commit into their
    /// caches. A failure keeps the current artifact and names the submodule.
    async fn fetch_submodules(
        &self,
        obj: &GitRepository,
        auth: &Auth,
        cache_dir: &std::path::Path,
        resolved: &git::Resolved,
    ) -> Result<Vec<SubmoduleCheckout>, Failure> {
        let timeout = obj.spec.timeout();
        let interrupt = Arc::new(AtomicBool::new(false));
        let url = obj.spec.url.clone();
        let auth = auth.clone();
        let cache_dir = cache_dir.to_path_buf();
        let commit = resolved.commit.clone();
        let sparse = obj.spec.sparse_checkout.clone().unwrap_or_default();
        let interrupt2 = Arc::clone(&interrupt);
        let task = tokio::task::spawn_blocking(move || {
            submodules::fetch_submodules(&SubmoduleRequest {
                url: &url,
                auth: &auth,
                cache_dir: &cache_dir,
                commit: &commit,
                sparse: &sparse,
                timeout,
                interrupt: interrupt2,
            })
        });
        // Each submodule fetch has the spec's timeout; together they get a few of them.
        let res = match tokio::time::timeout(timeout * 4, task).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(GitError::Other(format!("submodule task failed: {e}"))),
            Err(_) => {
                interrupt.store(true, std::sync::atomic::Ordering::Relaxed);
                Err(GitError::Timeout(format!(
                    "fetching the submodules of '{}' timed out",
                    obj.spec.url
                )))
            }
        };
        res.map_err(|e| Failure {
            reason: match e {
                GitError::AuthConfig(_) => reasons::AUTHENTICATION_FAILED,
                _ => reasons::GIT_OPERATION_FAILED,
            },
            message: format!("failed to checkout and determine revision: {e}"),
            condition: ct::FETCH_FAILED,
            stalled: false,
        })
    }

    async fn build_artifact(
        &self,
        obj: &GitRepository,
        cache_dir: &std::path::Path,
        resolved: &git::Resolved,
        includes: &[(GitRepositoryInclude, Artifact)],
        submodules: Vec<SubmoduleCheckout>,
    ) -> Result<Artifact, Failure> {
        let storage_fail = |reason: &'static str, message: String| Failure {
            reason,
            message,
            condition: ct::STORAGE_OPERATION_FAILED,
            stalled: false,
        };
        let mut art = self
            .storage
            .new_artifact_for(
                KIND,
                &obj.namespace().unwrap_or_default(),
                &obj.name_any(),
                &resolved.revision,
                &format!("{}.tar.gz", resolved.commit),
            )
            .map_err(|e| storage_fail(reasons::INVALID_PATH, e.to_string()))?;
        let storage = self.storage.clone();
        let cache_dir = cache_dir.to_path_buf();
        let commit = resolved.commit.clone();
        let sparse = obj.spec.sparse_checkout.clone().unwrap_or_default();
        let ignore = obj.spec.ignore.clone();
        let includes: Vec<(GitRepositoryInclude, storage::Artifact)> = includes
            .iter()
            .map(|(i, a)| (i.clone(), from_api_artifact(a)))
            .collect();
        let lock = storage
            .lock(&art)
            .await
            .map_err(|e| storage_fail(reasons::ACQUIRE_LOCK_FAILED, e.to_string()))?;
        let res = tokio::task::spawn_blocking(move || -> Result<storage::Artifact, Failure> {
            let started = std::time::Instant::now();
            // Included artifacts are unpacked (the only files written besides the artifact);
            // the commit itself is read from the object database while archiving.
            let mut unpacked = Vec::with_capacity(includes.len());
            for (incl, artifact) in &includes {
                unpacked.push(
                    include::unpack_include(&storage, artifact, incl).map_err(|e| Failure {
                        reason: "CopyFailure",
                        message: e,
                        condition: ct::STORAGE_OPERATION_FAILED,
                        stalled: false,
                    })?,
                );
            }
            let overlays: Vec<archive::Overlay> =
                unpacked.iter().map(|u| u.overlay.clone()).collect();
            let input = archive::ArchiveInput {
                cache_dir: &cache_dir,
                commit: &commit,
                sparse: &sparse,
                submodules: &submodules,
                overlays: &overlays,
                ignore: ignore.as_deref(),
            };
            // The archive writer's error type carries no git errors: keep ours aside.
            let mut git_failure = None;
            let written = storage.archive_entries(
                &mut art,
                &ArchiveOptions::default(),
                SystemTime::now(),
                |w| {
                    archive::write_commit_archive(&input, w).map_err(|e| {
                        let reason = e.to_string();
                        git_failure = Some(e);
                        ferroflux_artifact::Error::InvalidArchive { reason }
                    })
                },
            );
            if let Some(e) = git_failure {
                return Err(Failure {
                    reason: reasons::GIT_OPERATION_FAILED,
                    message: format!("failed to checkout commit '{commit}': {e}"),
                    condition: ct::FETCH_FAILED,
                    stalled: false,
                });
            }
            written.map_err(|e| Failure {
                reason: reasons::ARCHIVE_OPERATION_FAILED,
                message: format!("unable to archive artifact to storage: {e}"),
                condition: ct::STORAGE_OPERATION_FAILED,
                stalled: false,
            })?;
            tracing::debug!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                size = art.size.unwrap_or_default(),
                "archive done"
            );
            Ok(art)
        })
        .await
        .map_err(|e| {
            storage_fail(
                reasons::ARCHIVE_OPERATION_FAILED,
                format!("archive task failed: {e}"),
            )
        })?;
        drop(lock);
        Ok(to_api_artifact(&res?))
    }
}

impl Reconciler<GitRepository> for GitRepositoryReconciler {
    async fn reconcile(
        &self,
        obj: Arc<GitRepository>,
        ctx: Arc<Context>,
    ) -> Result<Duration, ReconcileError> {
        let generation = obj.meta().generation;
        let mut st = obj.status.clone().unwrap_or_default();
        let mut conds = st.conditions.take().unwrap_or_default();
        let now = Timestamp::now();

        // Progressive status: the object is being worked on.
        let msg = if st.observed_generation != generation {
            format!(
                "processing object: new generation {} -> {}",
                st.observed_generation.unwrap_or(0),
                generation.unwrap_or(0)
            )
        } else {
            "reconciliation in progress".to_string()
        };
        cond::mark_reconciling(&mut conds, reasons::PROGRESSING, &msg, generation, now);
        // Ready goes Unknown only for a new generation (or a first reconcile), so periodic
        // no-change reconciles do not make Ready flap.
        let new_generation = st.observed_generation != generation;
        if !cond::is_false(&conds, ct::READY)
            && (new_generation || cond::get(&conds, ct::READY).is_none())
        {
            cond::mark_unknown(
                &mut conds,
                ct::READY,
                reasons::PROGRESSING,
                &msg,
                generation,
                now,
            );
        }
        st.conditions = Some(conds.clone());
        let obj_now = match ferroflux_runtime::status::patch_status(
            &ctx.client,
            obj.as_ref(),
            &ctx.controller,
            &st,
        )
        .await
        {
            Ok(o) => o,
            Err(e) => return Err(ReconcileError::new(e)),
        };
        let _ = obj_now;

        let result = self.run(&ctx, &obj, &mut st, &mut conds).await;
        let now = Timestamp::now();
        let interval = self.interval(&obj);
        let mut failure_msg = None;
        match &result {
            Ok(()) => {}
            Err(f) => {
                if f.condition == ct::SOURCE_VERIFIED {
                    // Bipolar: a failed verification is SourceVerified=False.
                    cond::mark_false(
                        &mut conds,
                        f.condition,
                        f.reason,
                        &f.message,
                        generation,
                        now,
                    );
                } else {
                    cond::mark_true(
                        &mut conds,
                        f.condition,
                        f.reason,
                        &f.message,
                        generation,
                        now,
                    );
                }
                cond::mark_false(&mut conds, ct::READY, f.reason, &f.message, generation, now);
                if f.stalled {
                    cond::mark_stalled(&mut conds, f.reason, &f.message, generation, now);
                }
                failure_msg = Some((f.reason, f.message.clone()));
            }
        }
        st.last_handled_reconcile_at = obj
            .annotations()
            .get(RECONCILE_REQUEST_ANNOTATION)
            .cloned()
            .or(st.last_handled_reconcile_at.take());
        let mut og = st.observed_generation;
        cond::finalize_status(&mut conds, generation, &mut og, now);
        st.observed_generation = og;
        ctx.metrics.record_conditions(
            KIND,
            &obj.namespace().unwrap_or_default(),
            &obj.name_any(),
            &conds,
        );
        st.conditions = Some(conds);
        ferroflux_runtime::status::patch_status(&ctx.client, obj.as_ref(), &ctx.controller, &st)
            .await
            .map_err(ReconcileError::new)?;

        match failure_msg {
            None => Ok(interval),
            Some((reason, message)) => {
                tracing::error!(
                    kind = KIND, namespace = %obj.namespace().unwrap_or_default(), name = %obj.name_any(),
                    %reason, "{message}"
                );
                ctx.events
                    .event(
                        obj.as_ref(),
                        Severity::Error,
                        reason,
                        &message,
                        BTreeMap::new(),
                    )
                    .await;
                if result
                    .as_ref()
                    .is_err_and(|f| f.condition == ct::INCLUDE_UNAVAILABLE)
                {
                    // Waiting for another object (the include watch also brings it back).
                    return Ok(self.requeue_dependency);
                }
                if result.as_ref().is_err_and(|f| f.stalled) {
                    // Only a spec change helps: wait for it.
                    return Ok(Duration::from_secs(24 * 3600).max(interval));
                }
                Err(ReconcileError(message))
            }
        }
    }

    async fn finalize(
        &self,
        obj: Arc<GitRepository>,
        _ctx: Arc<Context>,
    ) -> Result<(), ReconcileError> {
        let ns = obj.namespace().unwrap_or_default();
        let name = obj.name_any();
        let probe = self
            .storage
            .new_artifact_for(KIND, &ns, &name, "", "x")
            .map_err(ReconcileError::new)?;
        let storage = self.storage.clone();
        let cache = self.cache_dir(&obj);
        tokio::task::spawn_blocking(move || -> Result<(), ReconcileError> {
            let _ = storage.blocking_lock(&probe);
            if let Some(dir) = storage.remove_all(&probe).map_err(ReconcileError::new)? {
                tracing::info!(dir = %dir.display(), "garbage collected artifacts for deleted resource");
            }
            match std::fs::remove_dir_all(&cache) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(ReconcileError::new(format!("failed to remove git cache {}: {e}", cache.display()))),
            }
        })
        .await
        .map_err(ReconcileError::new)?
    }

    fn interval(&self, obj: &GitRepository) -> Duration {
        ferroflux_api::duration::parse(&obj.spec.interval).unwrap_or(Duration::from_secs(60))
    }

    fn suspended(&self, obj: &GitRepository) -> bool {
        obj.spec.suspend.unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    #[test]
    fn secret_parsing() {
        let mut data = BTreeMap::new();
        data.insert("username".to_string(), ByteString(b"git".to_vec()));
        data.insert("password".to_string(), ByteString(b"pw".to_vec()));
        let s = Secret {
            data: Some(data.clone()),
            ..Default::default()
        };
        let a = auth_from_secret(&s).unwrap();
        assert_eq!(a.basic, Some(("git".into(), "pw".into())));
        data.remove("password");
        let s = Secret {
            data: Some(data),
            ..Default::default()
        };
        assert!(auth_from_secret(&s).is_err());
    }

    #[test]
    fn artifact_roundtrip() {
        let a = storage::Artifact {
            path: "gitrepository/ns/n/abc.tar.gz".into(),
            url: "http://h/gitrepository/ns/n/abc.tar.gz".into(),
            revision: "main@sha1:abc".into(),
            digest: "sha256:00".into(),
            last_update_time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            size: Some(10),
            metadata: BTreeMap::new(),
        };
        let api = to_api_artifact(&a);
        assert_eq!(api.last_update_time.0.as_second(), 1_700_000_000);
        assert_eq!(from_api_artifact(&api), a);
    }
}
