//! Extracted artifacts shared by every Kustomization that builds the same revision.
//! Hundreds of Kustomizations often point at one GitRepository; each reconcile would
//! otherwise download and untar the same archive (a scaling complaint about Flux). Builds
//! only read the extracted tree, so one copy per digest serves them all.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ferroflux_artifact::fetch::{FetchedArtifact, Fetcher};
use tokio::sync::OnceCell;

/// How many distinct artifacts are kept extracted.
const CAPACITY: usize = 32;

type Slot = Arc<OnceCell<Arc<FetchedArtifact>>>;

/// Digest-keyed cache of verified, extracted artifacts.
pub struct ArtifactCache {
    fetcher: Fetcher,
    tmp: PathBuf,
    slots: Mutex<HashMap<String, (Slot, Instant)>>,
}

impl ArtifactCache {
    /// A cache extracting under `tmp`.
    pub fn new(fetcher: Fetcher, tmp: PathBuf) -> Self {
        Self {
            fetcher,
            tmp,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// The extracted artifact for `digest`, downloading and verifying it from `url` the
    /// first time. Concurrent callers for the same digest share one download.
    pub async fn get(
        &self,
        url: &str,
        digest: &str,
    ) -> Result<Arc<FetchedArtifact>, ferroflux_artifact::Error> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            let slot = slots
                .entry(digest.to_string())
                .or_insert_with(|| (Arc::new(OnceCell::new()), Instant::now()));
            slot.1 = Instant::now();
            let slot = Arc::clone(&slot.0);
            evict(&mut slots);
            slot
        };
        let artifact = slot
            .get_or_try_init(|| async {
                self.fetcher
                    .fetch(url, digest, &self.tmp)
                    .await
                    .map(Arc::new)
            })
            .await?;
        Ok(Arc::clone(artifact))
    }
}

/// Drops the least recently used artifacts beyond the capacity (their directories are
/// removed once no build still holds them).
fn evict(slots: &mut HashMap<String, (Slot, Instant)>) {
    while slots.len() > CAPACITY {
        let Some(oldest) = slots
            .iter()
            .min_by_key(|(_, (_, used))| *used)
            .map(|(k, _)| k.clone())
        else {
            break;
        };
        slots.remove(&oldest);
    }
}
