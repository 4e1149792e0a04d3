//! Garbage collection of objects that left the desired set.

use std::time::Duration;

use kube::api::DeleteParams;

use crate::apply::{Action, ChangeSet, ChangeSetEntry, ResourceManager};
use crate::policy::prune_disabled;
use crate::{Error, ObjectRef};

/// How to delete.
#[derive(Clone, Debug, Default)]
pub struct PruneOptions {
    /// Wait until every deleted object is gone (`deletionPolicy: WaitForTermination`).
    pub wait_for_termination: Option<Duration>,
}

impl ResourceManager {
    /// Deletes the objects (background propagation) that still carry this manager's
    /// owner labels and do not opt out of pruning. Objects already gone are skipped.
    /// Returns what happened, and the objects whose deletion failed with the errors, so
    /// the caller can keep them in its inventory.
    pub async fn delete_all(
        &self,
        objects: &[ObjectRef],
        options: &PruneOptions,
    ) -> (ChangeSet, Vec<(ObjectRef, Error)>) {
        let mut changes = ChangeSet::default();
        let mut failed = Vec::new();
        let mut deleted = Vec::new();
        for id in objects {
            let (api, _) = match self.api(id).await {
                Ok(api) => api,
                // The kind is no longer served (its CRD is gone): nothing left to delete.
                Err(Error::UnknownKind { .. }) => continue,
                Err(err) => {
                    failed.push((id.clone(), err));
                    continue;
                }
            };
            let current = match api.get_opt(&id.name).await {
                Ok(Some(obj)) => obj,
                Ok(None) => continue,
                Err(err) => {
                    failed.push((id.clone(), err.into()));
                    continue;
                }
            };
            let labels = current.metadata.labels.clone().unwrap_or_default();
            let owned = self
                .owner_labels
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v));
            if !owned
                || prune_disabled(&current.metadata)
                || current.metadata.deletion_timestamp.is_some()
            {
                changes.entries.push(ChangeSetEntry {
                    object: id.clone(),
                    action: Action::Skipped,
                });
                continue;
            }
            match api.delete(&id.name, &DeleteParams::background()).await {
                Ok(_) => {
                    changes.entries.push(ChangeSetEntry {
                        object: id.clone(),
                        action: Action::Deleted,
                    });
                    deleted.push(id.clone());
                }
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(err) => failed.push((
                    id.clone(),
                    Error::Delete {
                        id: id.to_string(),
                        message: err.to_string(),
                    },
                )),
            }
        }
        if let Some(timeout) = options.wait_for_termination
            && let Err(err) = self.wait_for_termination(&deleted, timeout).await
        {
            failed.push((
                deleted
                    .first()
                    .cloned()
                    .unwrap_or_else(|| objects[0].clone()),
                err,
            ));
        }
        (changes, failed)
    }

    /// Waits until every object is gone (GET every 2 s until 404).
    pub async fn wait_for_termination(
        &self,
        objects: &[ObjectRef],
        timeout: Duration,
    ) -> Result<(), Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        for id in objects {
            let Ok((api, _)) = self.api(id).await else {
                continue;
            };
            loop {
                match api.get_opt(&id.name).await {
                    Ok(None) => break,
                    Ok(Some(_)) if tokio::time::Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_secs(2)).await
                    }
                    Ok(Some(_)) => {
                        return Err(Error::Wait(format!(
                            "{id} termination timeout: still present after {timeout:?}"
                        )));
                    }
                    Err(err) => {
                        return Err(Error::Wait(format!("{id} termination timeout: {err}")));
                    }
                }
            }
        }
        Ok(())
    }
}
