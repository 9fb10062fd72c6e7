//! Who is calling over D-Bus: the bus daemon names each sender's uid, as SO_PEERCRED does
//! for the socket. Knows nothing of jobs; the D-Bus door asks it before every answer.

use zbus::message::Header;
use zbus::names::BusName;
use zbus::Connection;

/// A call from a sender that does not run as upqd's user (or whose user the bus cannot name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("upqd serves only the user it runs as")]
pub struct Refused;

/// Who may call: the bus daemon vouches for each sender's uid, and only upqd's own is served.
#[derive(Clone)]
pub struct Gate {
    bus: zbus::fdo::DBusProxy<'static>,
    uid: u32,
}

impl Gate {
    pub async fn new(connection: &Connection) -> zbus::Result<Gate> {
        let bus = zbus::fdo::DBusProxy::builder(connection)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await?;
        // SAFETY: getuid has no preconditions and cannot fail.
        let uid = unsafe { libc::getuid() };
        Ok(Gate { bus, uid })
    }

    /// Lets a call through only when the bus says its sender runs as upqd's user. Asked on
    /// every call, so no answer outlives the sender's name. No header: upqd's own read.
    pub async fn check(&self, header: Option<&Header<'_>>) -> Result<(), Refused> {
        let Some(header) = header else {
            return Ok(());
        };
        let Some(sender) = header.sender() else {
            return Err(Refused);
        };
        match self
            .bus
            .get_connection_unix_user(BusName::Unique(sender.clone()))
            .await
        {
            Ok(uid) if uid == self.uid => Ok(()),
            Ok(uid) => {
                tracing::warn!(uid, %sender, "refused a D-Bus call from another user");
                Err(Refused)
            }
            Err(e) => {
                tracing::warn!(error = %e, %sender, "cannot tell which user a D-Bus call is from; refusing it");
                Err(Refused)
            }
        }
    }
}
