//! `doctor`, the daemon's half: the checks only upqd can make, because only it holds the
//! configuration, the tokens and the store as it runs. All run at once, each bounded by the
//! timeout, so a dead server costs at most that and never hangs the answer.

use std::time::Duration;

use futures::future::join_all;
use upq_proto::CheckView;

use super::Service;

/// Each check's time when the request sets none.
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

impl Service {
    /// The data folder, then each destination in name order.
    pub async fn doctor(&self, timeout: Duration) -> Vec<CheckView> {
        let data = self.data_folder_checks(timeout);
        let destinations = self.destinations();
        let each = destinations.iter().map(|(name, destination)| async move {
            let found = match tokio::time::timeout(timeout, destination.check()).await {
                Ok(found) => found,
                Err(_) => vec![CheckView::problem(
                    "destination",
                    format!("no answer within {} s", timeout.as_secs_f64().max(0.001)),
                    format!("check that the place [destinations.{name}] points at is reachable"),
                )],
            };
            found
                .into_iter()
                .map(|finding| CheckView {
                    check: format!("{} {name}", finding.check),
                    ..finding
                })
                .collect::<Vec<_>>()
        });
        let (mut findings, per_destination) = futures::join!(data, join_all(each));
        findings.extend(per_destination.into_iter().flatten());
        findings
    }

    /// Writable, with room, and what the store's start found: records set aside, jobs lost.
    async fn data_folder_checks(&self, timeout: Duration) -> Vec<CheckView> {
        let dir = self.config().paths.data_dir.clone();
        let shown = dir.display().to_string();
        let probe = tokio::task::spawn_blocking(move || {
            crate::doctor::folder(
                "data folder",
                "the data folder",
                &dir,
                crate::doctor::QUEUE_ROOM,
                "`--data-dir` or UPQ_DATA_DIR",
            )
        });
        let folder = match tokio::time::timeout(timeout, probe).await {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => CheckView::problem(
                "data folder",
                format!("the check of the data folder {shown} failed: {e}"),
                "run `upqctl doctor` again",
            ),
            Err(_) => CheckView::problem(
                "data folder",
                format!("the data folder {shown} did not answer within the timeout"),
                "check the disk it is on",
            ),
        };
        let quarantined = self.inner.store.quarantined();
        let lost = self.inner.store.lost().len();
        let store = if quarantined == 0 && lost == 0 {
            CheckView::ok("queue database", "every record reads")
        } else {
            let mut said = Vec::new();
            if quarantined > 0 {
                said.push(format!(
                    "{quarantined} record(s) that did not decode were set aside"
                ));
            }
            if lost > 0 {
                said.push(format!(
                    "{lost} job(s) were lost (`upqctl status` lists their files)"
                ));
            }
            CheckView::warning(
                "queue database",
                format!("{}; every other job goes on", said.join("; ")),
                "see what `upqd --check` reports, and add the files of lost jobs again",
            )
        };
        vec![folder, store]
    }
}
