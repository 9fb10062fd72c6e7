//! What `upqctl doctor` reports: one finding per check, each ok, a warning or a problem,
//! with the fix for anything that is not ok. The daemon answers `doctor` with the checks only
//! it can make (its data folder, each destination); upqctl adds what it sees from outside
//! (the socket, the session bus, systemd) and prints them all the same way.

use serde::{Deserialize, Serialize};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Ok,
    /// Works, but differently from what the user may expect.
    Warning,
    /// Stops uploads, or exposes them to other users.
    Problem,
}

impl CheckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Ok => "ok",
            CheckStatus::Warning => "warning",
            CheckStatus::Problem => "problem",
        }
    }
}

impl std::fmt::Display for CheckStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckView {
    /// What was checked: `daemon`, `socket`, `data folder`, `destination tus`, …
    pub check: String,
    pub status: CheckStatus,
    /// What was found, in a sentence.
    pub message: String,
    /// What to do about it; absent when the check is ok.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl CheckView {
    pub fn ok(check: impl Into<String>, message: impl Into<String>) -> CheckView {
        CheckView {
            check: check.into(),
            status: CheckStatus::Ok,
            message: message.into(),
            fix: None,
        }
    }

    pub fn warning(
        check: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> CheckView {
        CheckView::needing(
            CheckStatus::Warning,
            check.into(),
            message.into(),
            fix.into(),
        )
    }

    pub fn problem(
        check: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> CheckView {
        CheckView::needing(
            CheckStatus::Problem,
            check.into(),
            message.into(),
            fix.into(),
        )
    }

    /// A finding that is not ok, with its fix.
    fn needing(status: CheckStatus, check: String, message: String, fix: String) -> CheckView {
        CheckView {
            check,
            status,
            message,
            fix: Some(fix),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finding_reads_as_its_contract_says() {
        let ok = serde_json::to_value(CheckView::ok("daemon", "answers")).unwrap();
        assert_eq!(
            ok,
            serde_json::json!({"check": "daemon", "status": "ok", "message": "answers"})
        );
        let problem = CheckView::problem("destination tus", "down", "start it");
        let json = serde_json::to_string(&problem).unwrap();
        assert_eq!(serde_json::from_str::<CheckView>(&json).unwrap(), problem);
        assert!(json.contains(r#""status":"problem""#) && json.contains(r#""fix":"start it""#));
        assert!(
            CheckStatus::Problem > CheckStatus::Warning && CheckStatus::Warning > CheckStatus::Ok
        );
    }
}
