//! Process wiring shared by every controller binary: metrics and probe servers, leader
//! election, graceful shutdown, then the controller work.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::controller::Context;
use crate::events::EventRecorder;
use crate::flags::RuntimeArgs;
use crate::http::{self, Endpoints};
use crate::leader::LeaderElection;
use crate::metrics::Metrics;
use crate::shutdown::{self, Shutdown, ShutdownTrigger};

/// A controller process.
pub struct Manager {
    /// Parsed shared flags.
    pub args: RuntimeArgs,
    /// Controller name (`source-controller`).
    pub controller: String,
    /// API client.
    pub client: kube::Client,
    /// Metrics registry served on `/metrics`.
    pub metrics: Arc<Metrics>,
    /// `/readyz` state.
    pub ready: Arc<AtomicBool>,
    trigger: ShutdownTrigger,
    shutdown: Shutdown,
}

impl Manager {
    /// A manager using `client` (in-process tests pass the test client).
    pub fn with_client(controller: &str, args: RuntimeArgs, client: kube::Client) -> Manager {
        let (trigger, shutdown) = shutdown::channel();
        Manager {
            args,
            controller: controller.to_string(),
            client,
            metrics: Arc::default(),
            ready: Arc::default(),
            trigger,
            shutdown,
        }
    }

    /// A manager with the client from the environment (KUBECONFIG or in-cluster).
    pub async fn from_env(controller: &str, args: RuntimeArgs) -> anyhow::Result<Manager> {
        let client = kube::Client::try_default().await?;
        Ok(Self::with_client(controller, args, client))
    }

    /// The shutdown signal.
    pub fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// The trigger of the shutdown signal (tests stop in-process controllers with it).
    pub fn shutdown_trigger(&self) -> ShutdownTrigger {
        self.trigger.clone()
    }

    /// The context handed to reconcilers.
    pub fn context(&self) -> anyhow::Result<Arc<Context>> {
        let events = EventRecorder::new(
            self.client.clone(),
            &self.controller,
            self.args.events_addr.as_deref(),
        )?;
        Ok(Arc::new(Context {
            client: self.client.clone(),
            controller: self.controller.clone(),
            events,
            metrics: Arc::clone(&self.metrics),
            jitter_percentage: self.args.interval_jitter_percentage,
        }))
    }

    /// Serves metrics and probes, handles SIGTERM/SIGINT (when `signals`), waits for
    /// leadership when `--enable-leader-election`, then runs `work` until shutdown. Losing
    /// leadership shuts everything down and returns an error.
    pub async fn run<F, Fut>(self, signals: bool, work: F) -> anyhow::Result<()>
    where
        F: FnOnce(Shutdown) -> Fut,
        Fut: Future<Output = ()>,
    {
        if signals {
            self.trigger.on_signals();
        }
        let ep = Endpoints {
            metrics: Arc::clone(&self.metrics),
            ready: Arc::clone(&self.ready),
        };
        let metrics_l = http::bind(&self.args.metrics_addr).await?;
        let health_l = http::bind(&self.args.health_addr).await?;
        tracing::info!(metrics = %self.args.metrics_addr, health = %self.args.health_addr, "starting servers");
        tokio::spawn(http::serve(
            metrics_l,
            ep.clone(),
            self.shutdown.clone().wait(),
        ));
        tokio::spawn(http::serve(health_l, ep, self.shutdown.clone().wait()));
        self.ready.store(true, Ordering::Relaxed);

        let mut lost = None;
        if self.args.enable_leader_election {
            let le =
                LeaderElection::new(&self.controller, &self.args.runtime_namespace, &self.args);
            if !le.acquire(&self.client, self.shutdown.clone()).await {
                return Ok(());
            }
            let client = self.client.clone();
            let sd = self.shutdown.clone();
            let trigger = self.trigger.clone();
            lost = Some(tokio::spawn(async move {
                let r = le.keep_renewing(&client, sd).await;
                if let Err(e) = &r {
                    tracing::error!(error = %e, "leader election lost");
                    trigger.trigger();
                }
                r
            }));
        }
        work(self.shutdown.clone()).await;
        self.trigger.trigger();
        if let Some(h) = lost
            && let Ok(Err(e)) = h.await
        {
            anyhow::bail!(e);
        }
        tracing::info!("stopped");
        Ok(())
    }
}
