//! The kustomize-controller process: flags, then the shared runtime runs the reconciler.
//! A library module so that other binaries (end-to-end test wrappers) can run it too.

use std::sync::Arc;
use std::time::Duration;

use crate::cache::ArtifactCache;
use crate::reconcile::{KustomizationReconciler, Options};
use ferroflux_api::kustomization::Kustomization;
use ferroflux_artifact::fetch::{FetchOptions, Fetcher};
use ferroflux_runtime::{Manager, RuntimeArgs};

/// kustomize-controller: builds Kustomizations from source artifacts and applies them.
#[derive(clap::Parser)]
#[command(name = "kustomize-controller", version)]
pub struct Args {
    #[command(flatten)]
    runtime: RuntimeArgs,
    /// How soon to retry when a source or dependency is not ready.
    #[arg(long, default_value = "30s", value_parser = ferroflux_runtime::flags::parse_duration)]
    requeue_dependency: Duration,
    /// Refuse sourceRefs and dependencies in other namespaces.
    // A Go-style bool flag: `--no-cross-namespace-refs` and `--no-cross-namespace-refs=true`
    // both work, as in Flux's manifests (multi-tenancy lockdown patches use the latter).
    #[arg(long, num_args = 0..=1, require_equals = true, default_value_t = false, default_missing_value = "true", action = clap::ArgAction::Set)]
    no_cross_namespace_refs: bool,
    /// Service account impersonated when a Kustomization names none.
    #[arg(long)]
    default_service_account: Option<String>,
    /// Objects applied at once.
    #[arg(long, default_value_t = 4)]
    concurrent_ssa: usize,
    /// Field managers (name prefixes) whose fields are taken over before every apply, on
    /// top of kubectl's; may be repeated or comma-separated.
    #[arg(long, value_delimiter = ',')]
    override_manager: Vec<String>,
    /// Retries of artifact downloads.
    #[arg(long, default_value_t = 9)]
    http_retry: u32,
    /// Poll interval of health checks.
    #[arg(long, default_value = "5s", value_parser = ferroflux_runtime::flags::parse_duration, hide = true)]
    health_check_interval: Duration,
    /// Feature gates, `Name=true|false,...`: `CancelHealthCheckOnNewRevision`,
    /// `AdditiveCELDependencyCheck` (both off by default, as in Flux). Flux's other gates
    /// are accepted and ignored.
    #[arg(long, default_value = "", value_parser = parse_feature_gates)]
    feature_gates: FeatureGates,
    /// Where artifacts are extracted.
    #[arg(long, env = "TMPDIR", default_value = "/tmp")]
    tmp_dir: std::path::PathBuf,
}

/// The feature gates this controller honours.
#[derive(Clone, Debug, Default)]
pub struct FeatureGates {
    /// `CancelHealthCheckOnNewRevision`.
    pub cancel_health_check_on_new_revision: bool,
    /// `AdditiveCELDependencyCheck`.
    pub additive_cel_dependency_check: bool,
}

/// Flux's kustomize-controller gates that have no effect here.
const IGNORED_GATES: &[&str] = &[
    "CacheSecretsAndConfigMaps",
    "DisableStatusPollerCache",
    "DisableFailFastBehavior",
    "StrictPostBuildSubstitutions",
    "GroupChangeLog",
    "ExternalArtifact",
    "DisableConfigWatchers",
    "DirectSourceFetch",
    "MigrateAPIVersion",
    "ObjectLevelWorkloadIdentity",
];

/// Parses `--feature-gates`; an unknown gate is an error, as in Flux.
pub fn parse_feature_gates(s: &str) -> Result<FeatureGates, String> {
    let mut gates = FeatureGates::default();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (name, value) = item
            .split_once('=')
            .ok_or_else(|| format!("missing bool value for {item}"))?;
        let value: bool = value
            .trim()
            .parse()
            .map_err(|_| format!("invalid value of {name}={value}, err: invalid bool"))?;
        match name.trim() {
            "CancelHealthCheckOnNewRevision" => gates.cancel_health_check_on_new_revision = value,
            "AdditiveCELDependencyCheck" => gates.additive_cel_dependency_check = value,
            other if IGNORED_GATES.contains(&other) => {}
            other => return Err(format!("unrecognized feature gate: {other}")),
        }
    }
    Ok(gates)
}

/// Runs kustomize-controller with parsed flags until SIGTERM.
pub async fn run(args: Args) -> anyhow::Result<()> {
    args.runtime.init_logging();
    let config = kube::Config::infer().await?;
    let client = kube::Client::try_from(config.clone())?;
    let manager = Manager::with_client(
        ferroflux_api::constants::KUSTOMIZE_CONTROLLER,
        args.runtime.clone(),
        client.clone(),
    );
    let ctx = manager.context()?;
    let fetch_options = FetchOptions {
        retries: args.http_retry,
        host_override: std::env::var("SOURCE_CONTROLLER_LOCALHOST")
            .ok()
            .filter(|h| !h.is_empty()),
        ..Default::default()
    };
    let reconciler = Arc::new(KustomizationReconciler {
        options: Options {
            requeue_dependency: args.requeue_dependency,
            no_cross_namespace_refs: args.no_cross_namespace_refs,
            default_service_account: args.default_service_account.clone(),
            concurrent_ssa: args.concurrent_ssa,
            override_managers: args.override_manager.clone(),
            health_check_interval: args.health_check_interval,
            additive_cel_dependency_check: args.feature_gates.additive_cel_dependency_check,
            cancel_health_check_on_new_revision: args
                .feature_gates
                .cancel_health_check_on_new_revision,
        },
        cache: ArtifactCache::new(Fetcher::new(fetch_options), args.tmp_dir.clone()),
        base_config: config,
    });
    let runtime = args.runtime.clone();
    manager
        .run(true, move |shutdown| async move {
            ferroflux_runtime::controller::run_with::<Kustomization, _, _>(
                ctx,
                reconciler,
                &runtime,
                4,
                shutdown,
                |c| {
                    crate::watches::with_config_watches(
                        crate::watches::with_source_watches(c, client.clone()),
                        client,
                    )
                },
            )
            .await;
        })
        .await
}
