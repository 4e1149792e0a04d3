//! A clonable shutdown signal: completes on SIGTERM/SIGINT or when triggered.

use tokio::sync::watch;

/// Trigger side.
#[derive(Clone)]
pub struct ShutdownTrigger(watch::Sender<bool>);

/// Waiting side; cheap to clone.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// A new trigger and its signal.
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(tx), Shutdown(rx))
}

impl ShutdownTrigger {
    /// Signals shutdown to every [`Shutdown`].
    pub fn trigger(&self) {
        let _ = self.0.send(true);
    }

    /// Triggers on SIGTERM or SIGINT (spawns a task).
    pub fn on_signals(&self) {
        let me = self.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown signal received");
            me.trigger();
        });
    }
}

impl Shutdown {
    /// Completes once shutdown was triggered.
    pub async fn wait(mut self) {
        let _ = self.0.wait_for(|v| *v).await;
    }

    /// Whether shutdown was triggered.
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = int.recv() => {},
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
