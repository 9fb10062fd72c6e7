//! `doctor` in the core, on tokio's paused time: every destination is checked at once, and
//! one that never answers costs the timeout, not a hang, while the others still report.

use std::sync::Arc;
use std::time::Duration;

use upq_proto::CheckStatus;

use super::Core;
use crate::destinations::fake::{FakeDestination, Step};
use crate::destinations::DestError;

#[tokio::test(start_paused = true)]
async fn checks_run_at_once_and_a_silent_one_costs_only_the_timeout() {
    let slow = Arc::new(FakeDestination::new(1024, false));
    let slower = Arc::new(FakeDestination::new(1024, false));
    let failing = Arc::new(FakeDestination::new(1024, false));
    let core = Core::start_with(
        FakeDestination::new(1024, false),
        vec![
            ("slow", slow.clone()),
            ("slower", slower.clone()),
            ("failing", failing.clone()),
        ],
        |_| {},
    );
    // Two checks that never come back, and one that fails.
    let _held = slow.gate(Step::Check);
    let _held_too = slower.gate(Step::Check);
    failing.fail_next(
        Step::Check,
        DestError::transient("net", "the server is down"),
    );

    let started = tokio::time::Instant::now();
    let found = core.service.doctor(Duration::from_secs(5)).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(6),
        "two silent checks at once take one timeout, not two: {took:?}"
    );

    let by_name = |check: &str| {
        found
            .iter()
            .find(|f| f.check == check)
            .unwrap_or_else(|| panic!("no {check} in {found:?}"))
    };
    assert_eq!(by_name("destination fake").status, CheckStatus::Ok);
    for silent in ["destination slow", "destination slower"] {
        let finding = by_name(silent);
        assert_eq!(finding.status, CheckStatus::Problem, "{finding:?}");
        assert!(
            finding.message.contains("no answer within 5 s"),
            "{finding:?}"
        );
    }
    let failed = by_name("destination failing");
    assert_eq!(failed.status, CheckStatus::Problem);
    assert_eq!(failed.message, "the server is down");
    assert_eq!(by_name("data folder").status, CheckStatus::Ok);
    assert_eq!(by_name("queue database").status, CheckStatus::Ok);
    // The data folder first, then the destinations in name order.
    let names: Vec<&str> = found.iter().map(|f| f.check.as_str()).collect();
    assert_eq!(
        names,
        [
            "data folder",
            "queue database",
            "destination failing",
            "destination fake",
            "destination slow",
            "destination slower"
        ]
    );
}
