//! The exit codes of `upqctl` (DESIGN.md "upqctl") and how errors map onto them.
//! Decides numbers only; printing the message is the caller's job.

use upq_proto::{BatchItem, ErrorCode};

use crate::backend;
use crate::bus::BusError;
use crate::client::ClientError;

pub const SUCCESS: u8 = 0;
/// The operation failed; the message is on stderr.
pub const FAILED: u8 = 1;
/// Bad usage: clap exits with 2 by itself for its own errors; named here for the table.
#[allow(dead_code)]
pub const USAGE: u8 = 2;
/// The daemon could not be reached.
pub const UNREACHABLE: u8 = 3;
pub const NOT_FOUND: u8 = 4;
/// `wait --timeout` ran out, as timeout(1) does.
pub const TIMEOUT: u8 = 124;

/// The exit code for an error code the daemon sent.
pub fn for_code(code: ErrorCode) -> u8 {
    match code {
        ErrorCode::NotFound => NOT_FOUND,
        _ => FAILED,
    }
}

/// The exit code for a client error.
pub fn for_client_error(error: &ClientError) -> u8 {
    match error {
        ClientError::NotRunning { .. } | ClientError::Connect { .. } => UNREACHABLE,
        ClientError::Daemon(body) => for_code(body.code),
        ClientError::Timeout => TIMEOUT,
        _ => FAILED,
    }
}

/// The exit code for a D-Bus error.
pub fn for_bus_error(error: &BusError) -> u8 {
    match error {
        BusError::NoBus(_) | BusError::NotRunning(_) => UNREACHABLE,
        BusError::Daemon(body) => for_code(body.code),
        BusError::Timeout => TIMEOUT,
        _ => FAILED,
    }
}

/// The exit code for an error of either transport.
pub fn for_backend_error(error: &backend::Error) -> u8 {
    match error {
        backend::Error::Socket(error) => for_client_error(error),
        backend::Error::Bus(error) => for_bus_error(error),
        backend::Error::Output(_) => FAILED,
    }
}

/// The exit code for any error that reached `main`.
pub fn for_error(error: &anyhow::Error) -> u8 {
    error
        .chain()
        .find_map(|cause| {
            if let Some(error) = cause.downcast_ref::<backend::Error>() {
                Some(for_backend_error(error))
            } else if let Some(error) = cause.downcast_ref::<ClientError>() {
                Some(for_client_error(error))
            } else {
                cause.downcast_ref::<BusError>().map(for_bus_error)
            }
        })
        .unwrap_or(FAILED)
}

/// A multi-id command: 4 if any id was unknown, else 1 if any failed, else 0.
pub fn for_batch(items: &[BatchItem]) -> u8 {
    let codes = items.iter().filter_map(|item| item.error.as_ref());
    codes.fold(SUCCESS, |worst, error| {
        match (worst, for_code(error.code)) {
            (NOT_FOUND, _) | (_, NOT_FOUND) => NOT_FOUND,
            _ => FAILED,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;
    use std::path::PathBuf;
    use upq_proto::ErrorBody;

    fn failed(id: u64, code: ErrorCode) -> BatchItem {
        BatchItem {
            id,
            job: None,
            error: Some(ErrorBody {
                code,
                message: format!("{code} for {id}"),
            }),
        }
    }

    fn ok(id: u64) -> BatchItem {
        BatchItem {
            id,
            job: None,
            error: None,
        }
    }

    #[test]
    fn daemon_codes() {
        assert_eq!(for_code(ErrorCode::NotFound), 4);
        assert_eq!(for_code(ErrorCode::InvalidState), 1);
        assert_eq!(for_code(ErrorCode::TooLate), 1);
        assert_eq!(for_code(ErrorCode::Other), 1);
    }

    #[test]
    fn client_errors() {
        let not_running = ClientError::NotRunning {
            path: PathBuf::from("/run/upq.sock"),
            reason: "no socket",
        };
        assert_eq!(for_client_error(&not_running), 3);
        let not_found = ClientError::Daemon(ErrorBody {
            code: ErrorCode::NotFound,
            message: "no job 9".into(),
        });
        assert_eq!(for_client_error(&not_found), 4);
        assert_eq!(for_client_error(&ClientError::Version { daemon: 2 }), 1);
        assert_eq!(for_client_error(&ClientError::Closed), 1);
        assert_eq!(for_client_error(&ClientError::Timeout), 124);
    }

    #[test]
    fn bus_errors() {
        assert_eq!(for_bus_error(&BusError::NotRunning("no owner".into())), 3);
        assert_eq!(
            for_bus_error(&BusError::NoBus(zbus::Error::Address("no address".into()))),
            3
        );
        assert_eq!(for_bus_error(&BusError::Timeout), 124);
        assert_eq!(for_bus_error(&BusError::Left), 1);
        for (code, exit) in [
            (ErrorCode::NotFound, 4),
            (ErrorCode::InvalidState, 1),
            (ErrorCode::Other, 1),
        ] {
            let refused = BusError::Daemon(ErrorBody {
                code,
                message: "no".into(),
            });
            assert_eq!(for_bus_error(&refused), exit, "{code}");
        }
    }

    #[test]
    fn errors_keep_their_code_through_context() {
        let error = anyhow::Error::new(ClientError::NotRunning {
            path: PathBuf::from("/x"),
            reason: "no socket",
        })
        .context("listing jobs");
        assert_eq!(for_error(&error), 3);
        let wrapped: anyhow::Result<()> = Err(ClientError::Daemon(ErrorBody {
            code: ErrorCode::NotFound,
            message: "no job 1".into(),
        }))
        .context("showing job 1");
        assert_eq!(for_error(&wrapped.unwrap_err()), 4);
        assert_eq!(for_error(&anyhow::anyhow!("file is a directory")), 1);
        let bus: anyhow::Result<()> = Err(backend::Error::from(BusError::NotRunning(
            "no owner of dev.upq.upq1".into(),
        )))
        .context("listing jobs");
        assert_eq!(for_error(&bus.unwrap_err()), 3);
        let socket = anyhow::Error::new(backend::Error::from(ClientError::Timeout));
        assert_eq!(for_error(&socket), 124);
    }

    #[test]
    fn batches() {
        assert_eq!(for_batch(&[]), 0);
        assert_eq!(for_batch(&[ok(1), ok(2)]), 0);
        assert_eq!(for_batch(&[ok(1), failed(2, ErrorCode::InvalidState)]), 1);
        assert_eq!(
            for_batch(&[
                failed(1, ErrorCode::NotFound),
                failed(2, ErrorCode::TooLate)
            ]),
            4
        );
        assert_eq!(
            for_batch(&[
                failed(1, ErrorCode::TooLate),
                failed(2, ErrorCode::NotFound)
            ]),
            4
        );
    }
}
