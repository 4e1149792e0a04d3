//! Flags every controller shares, with Flux's names and defaults. Flatten [`RuntimeArgs`] into
//! a binary's clap parser: `#[command(flatten)] runtime: RuntimeArgs`.

use std::time::Duration;

use clap::{ArgAction, Args};

/// Shared controller flags.
#[derive(Args, Debug, Clone)]
pub struct RuntimeArgs {
    /// Number of objects reconciled concurrently (the binary picks the default when absent).
    #[arg(long)]
    pub concurrent: Option<u16>,
    /// Address of notification-controller's event server; events are POSTed there when set.
    #[arg(long, env = "EVENTS_ADDR")]
    pub events_addr: Option<String>,
    /// Listen address of the Prometheus metrics endpoint.
    #[arg(long, default_value = ":8080")]
    pub metrics_addr: String,
    /// Listen address of the /healthz and /readyz probes.
    #[arg(long, default_value = ":9440")]
    pub health_addr: String,
    /// Only the holder of the leader-election Lease runs the controllers.
    #[arg(long, num_args = 0..=1, default_value_t = false, default_missing_value = "true", action = ArgAction::Set)]
    pub enable_leader_election: bool,
    /// How long a Lease is valid without renewal.
    #[arg(long, default_value = "35s", value_parser = parse_duration)]
    pub leader_election_lease_duration: Duration,
    /// How long the leader keeps trying to renew before giving up.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub leader_election_renew_deadline: Duration,
    /// How often candidates retry and the leader renews.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub leader_election_retry_period: Duration,
    /// Watch objects in all namespaces; when false only RUNTIME_NAMESPACE is watched.
    #[arg(long, num_args = 0..=1, default_value_t = true, default_missing_value = "true", action = ArgAction::Set)]
    pub watch_all_namespaces: bool,
    /// Label selector restricting the watched objects (sharding).
    #[arg(long, default_value = "")]
    pub watch_label_selector: String,
    /// Percentage of random jitter added to each object's interval.
    #[arg(long, default_value_t = 5)]
    pub interval_jitter_percentage: u8,
    /// Log level: trace, debug, info, error.
    #[arg(long, default_value = "info")]
    pub log_level: String,
    /// Log encoding: json or console.
    #[arg(long, default_value = "json")]
    pub log_encoding: String,
    /// The namespace the controller runs in (Lease namespace; watched namespace when not
    /// watching all namespaces).
    #[arg(long, env = "RUNTIME_NAMESPACE", default_value = "flux-system")]
    pub runtime_namespace: String,
}

impl RuntimeArgs {
    /// `--concurrent` or the binary's default.
    pub fn concurrent_or(&self, default: u16) -> u16 {
        self.concurrent.unwrap_or(default).max(1)
    }

    /// The namespace to watch, `None` for all.
    pub fn watch_namespace(&self) -> Option<&str> {
        if self.watch_all_namespaces {
            None
        } else {
            Some(&self.runtime_namespace)
        }
    }

    /// Installs the global tracing subscriber per `--log-level` and `--log-encoding`.
    pub fn init_logging(&self) {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&self.log_level));
        let builder = tracing_subscriber::fmt().with_env_filter(filter);
        let res = if self.log_encoding == "console" {
            builder.try_init()
        } else {
            builder.json().flatten_event(true).try_init()
        };
        // A second init (tests) keeps the first subscriber.
        let _ = res;
    }
}

/// Parses a Go duration flag value (`30s`, `1m30s`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    ferroflux_api::duration::parse(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        rt: RuntimeArgs,
    }

    #[test]
    fn defaults_and_go_style_bools() {
        let c = Cli::try_parse_from(["x"]).unwrap();
        assert!(c.rt.watch_all_namespaces);
        assert!(!c.rt.enable_leader_election);
        assert_eq!(c.rt.interval_jitter_percentage, 5);
        assert_eq!(c.rt.metrics_addr, ":8080");
        assert_eq!(c.rt.concurrent_or(2), 2);
        let c = Cli::try_parse_from([
            "x",
            "--watch-all-namespaces=false",
            "--enable-leader-election",
            "--concurrent=7",
            "--leader-election-lease-duration=1m",
        ])
        .unwrap();
        assert!(!c.rt.watch_all_namespaces);
        assert!(c.rt.enable_leader_election);
        assert_eq!(c.rt.concurrent_or(2), 7);
        assert_eq!(c.rt.leader_election_lease_duration, Duration::from_secs(60));
        assert_eq!(c.rt.watch_namespace(), Some("flux-system"));
    }
}
