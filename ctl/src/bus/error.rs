//! What can go wrong talking to `upqd` over D-Bus, and how bus errors map onto upq's error codes.
//! Classification only; exit codes are decided in `exit.rs`.

use std::io;
use std::time::Duration;

use upq_proto::{ErrorBody, ErrorCode};
use zbus::DBusError;

use upq_proto::dbus::{BUS_NAME, ERROR_PREFIX};
use upq_proto::paths::HOW_TO_START;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error(
        "cannot reach the D-Bus session bus ({0}); --bus needs upqd on the session bus: \
         {HOW_TO_START} in a desktop session, or leave out --bus to use the socket"
    )]
    NoBus(zbus::Error),
    #[error("upqd is not on the session bus ({0}); {HOW_TO_START}")]
    NotRunning(String),
    #[error("upqd left the session bus")]
    Left,
    #[error("upqd did not answer ({0})")]
    NoAnswer(String),
    #[error("timed out")]
    Timeout,
    #[error("upqd sent something this upqctl does not understand: {0}")]
    Protocol(String),
    #[error("cannot start the D-Bus client: {0}")]
    Runtime(#[source] io::Error),
    #[error("D-Bus call failed: {0}")]
    Call(zbus::Error),
    #[error("{0}")]
    Daemon(ErrorBody),
}

impl BusError {
    /// The daemon's error code, when the daemon refused the request.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            BusError::Daemon(body) => Some(body.code),
            _ => None,
        }
    }

    /// A refusal by the daemon that concerns one job of a batch, as opposed to a broken link.
    pub fn into_item_error(self) -> Result<ErrorBody, BusError> {
        match self {
            BusError::Daemon(body) => Ok(body),
            other => Err(other),
        }
    }
}

/// The upq error code for one of the daemon's D-Bus error names; `None` for other names.
/// `Failed` is what is left: internal errors.
pub fn upq_code(name: &str) -> Option<ErrorCode> {
    let short = name.strip_prefix(ERROR_PREFIX)?;
    Some(match short {
        "NotFound" => ErrorCode::NotFound,
        "InvalidState" => ErrorCode::InvalidState,
        "TooLate" => ErrorCode::TooLate,
        "BadRequest" => ErrorCode::BadRequest,
        "Refused" => ErrorCode::Refused,
        "PermissionDenied" => ErrorCode::PermissionDenied,
        "Failed" => ErrorCode::Internal,
        _ => ErrorCode::Other,
    })
}

/// Classifies a named D-Bus error with its description.
pub fn from_error_name(name: &str, description: Option<&str>) -> BusError {
    let message = description.unwrap_or_default().to_owned();
    match name {
        "org.freedesktop.DBus.Error.ServiceUnknown"
        | "org.freedesktop.DBus.Error.NameHasNoOwner" => {
            BusError::NotRunning(format!("no owner of {BUS_NAME}"))
        }
        // The bus tried to start upqd from its activation file and could not.
        spawn if spawn.starts_with("org.freedesktop.DBus.Error.Spawn.") => {
            BusError::NotRunning(format!("starting it failed: {message}"))
        }
        "org.freedesktop.DBus.Error.NoReply" | "org.freedesktop.DBus.Error.Timeout" => {
            BusError::NoAnswer(format!("{name}: {message}"))
        }
        "org.freedesktop.DBus.Error.Disconnected" => BusError::Left,
        _ => match upq_code(name) {
            Some(code) => BusError::Daemon(ErrorBody { code, message }),
            None => BusError::Daemon(ErrorBody {
                code: ErrorCode::Other,
                message: if message.is_empty() {
                    name.to_owned()
                } else {
                    format!("{message} ({name})")
                },
            }),
        },
    }
}

/// Classifies any error of a call: named errors by name, a call timeout, anything else as is.
pub fn from_zbus(error: zbus::Error, call_timeout: Duration) -> BusError {
    match error {
        zbus::Error::MethodError(name, description, _) => {
            from_error_name(name.as_str(), description.as_deref())
        }
        zbus::Error::FDO(fdo) => from_error_name(fdo.name().as_str(), fdo.description()),
        zbus::Error::InputOutput(io) if io.kind() == io::ErrorKind::TimedOut => {
            BusError::NoAnswer(format!("waited {}s", call_timeout.as_secs()))
        }
        zbus::Error::InputOutput(io)
            if matches!(
                io.kind(),
                io::ErrorKind::BrokenPipe
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::UnexpectedEof
            ) =>
        {
            BusError::Left
        }
        other => BusError::Call(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upq_names_keep_their_code_and_message() {
        let error = from_error_name("dev.upq.upq1.Error.NotFound", Some("no job 9"));
        assert_eq!(error.code(), Some(ErrorCode::NotFound));
        assert_eq!(error.to_string(), "no job 9");
        for (name, code) in [
            ("InvalidState", ErrorCode::InvalidState),
            ("TooLate", ErrorCode::TooLate),
            ("BadRequest", ErrorCode::BadRequest),
            ("Refused", ErrorCode::Refused),
            ("PermissionDenied", ErrorCode::PermissionDenied),
            ("Failed", ErrorCode::Internal),
        ] {
            let error = from_error_name(&format!("dev.upq.upq1.Error.{name}"), Some("no"));
            assert_eq!(error.code(), Some(code), "{name}");
        }
    }

    #[test]
    fn unknown_names_are_other_and_named() {
        let error = from_error_name("org.example.Error.Odd", Some("strange"));
        assert_eq!(error.code(), Some(ErrorCode::Other));
        assert_eq!(error.to_string(), "strange (org.example.Error.Odd)");
        let bare = from_error_name("org.example.Error.Odd", None);
        assert_eq!(bare.to_string(), "org.example.Error.Odd");
    }

    #[test]
    fn a_missing_daemon_is_unreachable_and_says_how_to_start_it() {
        for name in [
            "org.freedesktop.DBus.Error.ServiceUnknown",
            "org.freedesktop.DBus.Error.NameHasNoOwner",
            "org.freedesktop.DBus.Error.Spawn.ChildExited",
        ] {
            let error = from_error_name(name, Some("gone"));
            assert!(
                matches!(error, BusError::NotRunning(_)),
                "{name}: {error:?}"
            );
            assert!(error.to_string().contains("upqd &"), "{error}");
        }
    }

    #[test]
    fn only_refusals_become_batch_items() {
        let refused = from_error_name("dev.upq.upq1.Error.TooLate", Some("committed"));
        assert_eq!(refused.into_item_error().unwrap().code, ErrorCode::TooLate);
        let gone = from_error_name("org.freedesktop.DBus.Error.ServiceUnknown", None);
        assert!(gone.into_item_error().is_err());
    }
}
