//! A small Secret Service client (`org.freedesktop.secrets`) on the project's zbus: stores,
//! loads and deletes one secret blob per set of attributes. Never prompts and never logs or
//! formats a secret; what the blobs mean is the caller's.
//!
//! Why not a crate: every Rust Secret Service client (oo7, secret-service, keyring) is built on
//! zbus 5, and upq is on zbus 6; a second zbus would mean a second connection stack for a
//! handful of method calls. The calls used are few and stable in the specification: OpenSession,
//! SearchItems, Unlock, ReadAlias, CreateCollection, Collection.CreateItem, Item.GetSecret and
//! Item.Delete, each through a `#[zbus::proxy]` below.
//!
//! Secrets travel with the "plain" algorithm. The session bus is a local Unix socket that only
//! the user's own processes can reach, and any of them may call GetSecret itself, so the
//! encrypted transfer (dh-ietf1024-sha256-aes128-cbc-pkcs7) would guard only against a bus
//! monitor run by the same user, at the cost of DH, HKDF and AES code of our own.
//!
//! Design: one session per [`SecretService`], opened by [`SecretService::connect`] and closed
//! when it is dropped. The target collection is looked up on every store (alias "default",
//! never the in-memory "session"), so a keyring the user removes or re-creates is followed. A prompt is
//! never shown: whenever the service answers with one, it is dismissed and the call fails
//! with [`KeyringError::Locked`]; the daemon has no window to show it in. Received secret
//! bytes print as `<redacted>` and are zeroed unless handed to the caller, who owns them then.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
use zbus::fdo;
use zbus::proxy::CacheProperties;
use zbus::{Connection, ObjectPath, OwnedObjectPath, OwnedVariant, Signature, Type, Variant};

/// The content type sent with every secret (gnome-keyring 42 keeps none and answers
/// "text/plain", so [`SecretService::load`] does not check it).
const CONTENT_TYPE: &str = "application/json";
/// A Secret Service that takes longer than this for one call is treated as absent; with bus
/// activation the first call also waits for the service to start (dbus-daemon allows 25 s).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The label of a default collection created by [`SecretService::store`] when none exists.
const NEW_COLLECTION_LABEL: &str = "Default keyring";
/// The path the Secret Service answers with for "no object" (no prompt, no item).
const NO_OBJECT: &str = "/";

#[zbus::proxy(
    interface = "org.freedesktop.Secret.Service",
    default_service = "org.freedesktop.secrets",
    default_path = "/org/freedesktop/secrets"
)]
trait Service {
    fn open_session(
        &self,
        algorithm: &str,
        input: &Variant<'_>,
    ) -> zbus::Result<(OwnedVariant, OwnedObjectPath)>;

    /// (unlocked items, locked items)
    fn search_items(
        &self,
        attributes: &HashMap<&str, &str>,
    ) -> zbus::Result<(Vec<OwnedObjectPath>, Vec<OwnedObjectPath>)>;

    /// (objects unlocked without a prompt, prompt or "/")
    fn unlock(
        &self,
        objects: &[OwnedObjectPath],
    ) -> zbus::Result<(Vec<OwnedObjectPath>, OwnedObjectPath)>;

    fn read_alias(&self, name: &str) -> zbus::Result<OwnedObjectPath>;

    /// (collection or "/", prompt or "/")
    fn create_collection(
        &self,
        properties: HashMap<&str, Variant<'_>>,
        alias: &str,
    ) -> zbus::Result<(OwnedObjectPath, OwnedObjectPath)>;
}

#[zbus::proxy(
    interface = "org.freedesktop.Secret.Collection",
    default_service = "org.freedesktop.secrets"
)]
trait Collection {
    /// (item or "/", prompt or "/")
    fn create_item(
        &self,
        properties: HashMap<&str, Variant<'_>>,
        secret: &OutgoingSecret<'_>,
        replace: bool,
    ) -> zbus::Result<(OwnedObjectPath, OwnedObjectPath)>;

    #[zbus(property)]
    fn locked(&self) -> zbus::Result<bool>;
}

#[zbus::proxy(
    interface = "org.freedesktop.Secret.Item",
    default_service = "org.freedesktop.secrets"
)]
trait Item {
    fn get_secret(&self, session: &ObjectPath<'_>) -> zbus::Result<IncomingSecret>;

    /// The prompt, or "/".
    fn delete(&self) -> zbus::Result<OwnedObjectPath>;
}

#[zbus::proxy(
    interface = "org.freedesktop.Secret.Session",
    default_service = "org.freedesktop.secrets"
)]
trait Session {
    fn close(&self) -> zbus::Result<()>;
}

#[zbus::proxy(
    interface = "org.freedesktop.Secret.Prompt",
    default_service = "org.freedesktop.secrets"
)]
trait Prompt {
    fn dismiss(&self) -> zbus::Result<()>;
}

/// Why the keyring could not be used. Never carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// The Secret Service is registered or activatable but did not answer (it vanished,
    /// failed to start or timed out), or it no longer knows our session because it was
    /// restarted: connecting again may help.
    #[error("the Secret Service (org.freedesktop.secrets) did not answer")]
    NotAvailable,
    /// The keyring is locked and opening it needs a prompt, which a daemon cannot show.
    #[error("the keyring is locked and unlocking it needs the user (a prompt)")]
    Locked,
    #[error("Secret Service call failed: {0}")]
    Dbus(#[source] zbus::Error),
}

/// Secret bytes received from the service: zeroed when dropped, `<redacted>` in Debug.
struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Hands the bytes to the caller, leaving nothing behind to zero.
    fn take(mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        zero(&mut self.0);
    }
}

impl Type for SecretBytes {
    const SIGNATURE: &'static Signature = <Vec<u8> as Type>::SIGNATURE;
}

impl<'de> Deserialize<'de> for SecretBytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<u8>::deserialize(deserializer).map(SecretBytes)
    }
}

/// Overwrites a buffer we own with zeros, in a way the optimizer may not drop.
fn zero(buffer: &mut [u8]) {
    for byte in buffer.iter_mut() {
        // SAFETY: `byte` is a valid, aligned, exclusive reference.
        unsafe { std::ptr::write_volatile(byte, 0) };
    }
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
}

/// The specification's Secret struct `(oayays)` as sent: borrows the caller's bytes.
#[derive(Serialize, Type)]
struct OutgoingSecret<'a> {
    session: ObjectPath<'a>,
    parameters: &'a [u8],
    value: &'a [u8],
    content_type: &'a str,
}

impl fmt::Debug for OutgoingSecret<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutgoingSecret")
            .field("content_type", &self.content_type)
            .field("value", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// The Secret struct `(oayays)` as received.
#[derive(Debug, Deserialize, Type)]
struct IncomingSecret {
    _session: OwnedObjectPath,
    _parameters: Vec<u8>,
    value: SecretBytes,
    _content_type: String,
}

/// A session with the user's Secret Service over the session bus.
pub struct SecretService {
    connection: Connection,
    service: ServiceProxy<'static>,
    session: OwnedObjectPath,
}

impl fmt::Debug for SecretService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretService")
            .field("session", &self.session.as_str())
            .finish_non_exhaustive()
    }
}

impl SecretService {
    /// Connects over `conn` (the session bus). Ok(None) when nothing owns
    /// org.freedesktop.secrets and it cannot be activated; errors otherwise.
    pub async fn connect(conn: &zbus::Connection) -> Result<Option<SecretService>, KeyringError> {
        let service = ServiceProxy::builder(conn)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(KeyringError::Dbus)?;
        // This first call also starts an activatable service.
        let opened = bounded(service.open_session("plain", &Variant::from(""))).await;
        let (_output, session) = match opened {
            Ok(opened) => opened,
            Err(Call::Failed(e)) if no_such_service(&e) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok(Some(SecretService {
            connection: conn.clone(),
            service,
            session,
        }))
    }

    /// Creates or replaces the item with exactly these attributes in the default collection
    /// (alias "default"; if there is none, one is created only if that needs no prompt),
    /// label shown in seahorse. The secret is
    /// stored with content type "application/json".
    pub async fn store(
        &self,
        label: &str,
        attributes: &[(&str, &str)],
        secret: &[u8],
    ) -> Result<(), KeyringError> {
        let collection_path = self.target_collection().await?;
        let collection = self.proxy::<CollectionProxy<'_>>(&collection_path).await?;
        if bounded(collection.locked()).await?
            && self
                .unlock(std::slice::from_ref(&collection_path))
                .await?
                .is_empty()
        {
            return Err(KeyringError::Locked);
        }
        let properties = HashMap::from([
            ("org.freedesktop.Secret.Item.Label", Variant::from(label)),
            (
                "org.freedesktop.Secret.Item.Attributes",
                Variant::from(attribute_map(attributes)),
            ),
        ]);
        let outgoing = OutgoingSecret {
            session: self.session.as_ref(),
            parameters: &[],
            value: secret,
            content_type: CONTENT_TYPE,
        };
        let (item, prompt) = bounded(collection.create_item(properties, &outgoing, true)).await?;
        if item.as_str() == NO_OBJECT {
            self.dismiss(&prompt).await;
            return Err(KeyringError::Locked);
        }
        Ok(())
    }

    /// The secret of the item matching these attributes, unlocking it (Unlock, no prompt; if
    /// a prompt is returned, answer Locked) if needed.
    pub async fn load(&self, attributes: &[(&str, &str)]) -> Result<Option<Vec<u8>>, KeyringError> {
        let (unlocked, locked) = self.search(attributes).await?;
        let item_path = match unlocked.into_iter().next() {
            Some(path) => path,
            None if locked.is_empty() => return Ok(None),
            None => self
                .unlock(&locked)
                .await?
                .into_iter()
                .next()
                .ok_or(KeyringError::Locked)?,
        };
        let item = self.proxy::<ItemProxy<'_>>(&item_path).await?;
        let secret = bounded(item.get_secret(&self.session.as_ref())).await?;
        Ok(Some(secret.value.take()))
    }

    /// Deletes every item matching; true when something was deleted.
    pub async fn delete(&self, attributes: &[(&str, &str)]) -> Result<bool, KeyringError> {
        let (mut items, locked) = self.search(attributes).await?;
        if !locked.is_empty() {
            let opened = self.unlock(&locked).await?;
            if opened.len() < locked.len() {
                return Err(KeyringError::Locked);
            }
            items.extend(opened);
        }
        for item_path in &items {
            let item = self.proxy::<ItemProxy<'_>>(item_path).await?;
            let prompt = bounded(item.delete()).await?;
            if prompt.as_str() != NO_OBJECT {
                self.dismiss(&prompt).await;
                return Err(KeyringError::Locked);
            }
        }
        Ok(!items.is_empty())
    }

    /// Items matching `attributes` across all collections: (unlocked, locked).
    async fn search(
        &self,
        attributes: &[(&str, &str)],
    ) -> Result<(Vec<OwnedObjectPath>, Vec<OwnedObjectPath>), KeyringError> {
        Ok(bounded(self.service.search_items(&attribute_map(attributes))).await?)
    }

    /// Unlocks what can be unlocked without a prompt; a prompt is dismissed, not shown.
    async fn unlock(
        &self,
        objects: &[OwnedObjectPath],
    ) -> Result<Vec<OwnedObjectPath>, KeyringError> {
        let (unlocked, prompt) = bounded(self.service.unlock(objects)).await?;
        if prompt.as_str() != NO_OBJECT {
            self.dismiss(&prompt).await;
        }
        Ok(unlocked)
    }

    /// The collection new items go to: alias "default", else a new default collection if the
    /// service creates one without a prompt. Never the "session" collection: it lives in
    /// memory, and tokens kept there would be lost at the next log-in without a word.
    async fn target_collection(&self) -> Result<OwnedObjectPath, KeyringError> {
        let path = bounded(self.service.read_alias("default")).await?;
        if path.as_str() != NO_OBJECT {
            return Ok(path);
        }
        let properties = HashMap::from([(
            "org.freedesktop.Secret.Collection.Label",
            Variant::from(NEW_COLLECTION_LABEL),
        )]);
        let (collection, prompt) =
            bounded(self.service.create_collection(properties, "default")).await?;
        if collection.as_str() == NO_OBJECT {
            self.dismiss(&prompt).await;
            return Err(KeyringError::Locked);
        }
        Ok(collection)
    }

    /// Withdraws a prompt the service made for us; it is never shown, so failure is harmless.
    async fn dismiss(&self, prompt: &OwnedObjectPath) {
        if prompt.as_str() == NO_OBJECT {
            return;
        }
        if let Ok(proxy) = self.proxy::<PromptProxy<'_>>(prompt).await {
            if let Err(e) = bounded(proxy.dismiss()).await {
                let error = KeyringError::from(e);
                tracing::debug!(%error, "could not dismiss a Secret Service prompt");
            }
        }
    }

    /// A proxy of one of the service's objects, without property caching (each read asks).
    async fn proxy<'p, P>(&self, path: &'p OwnedObjectPath) -> Result<P, KeyringError>
    where
        P: From<zbus::Proxy<'p>> + zbus::proxy::Defaults,
    {
        zbus::proxy::Builder::<P>::new(&self.connection)
            .path(path.as_ref())
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(KeyringError::Dbus)
    }
}

impl Drop for SecretService {
    fn drop(&mut self) {
        // The service also ends a session when its client leaves the bus; closing it here
        // matters for a long-lived connection that connects more than once.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let connection = self.connection.clone();
        let session = self.session.clone();
        runtime.spawn(async move {
            let closed = async {
                SessionProxy::builder(&connection)
                    .path(session)
                    .cache_properties(CacheProperties::No)
                    .build()
                    .await?
                    .close()
                    .await
            };
            if let Err(e) = bounded(closed).await {
                let error = KeyringError::from(e);
                tracing::debug!(%error, "could not close the Secret Service session");
            }
        });
    }
}

fn attribute_map<'a>(attributes: &[(&'a str, &'a str)]) -> HashMap<&'a str, &'a str> {
    attributes.iter().copied().collect()
}

/// How one call to the service ended, when it did not succeed.
enum Call {
    Failed(zbus::Error),
    TimedOut,
}

impl From<Call> for KeyringError {
    fn from(call: Call) -> Self {
        let error = match call {
            Call::TimedOut => return KeyringError::NotAvailable,
            Call::Failed(error) => error,
        };
        if no_such_service(&error) || service_gone(&error) {
            return KeyringError::NotAvailable;
        }
        match secret_error(&error) {
            Some("IsLocked") => KeyringError::Locked,
            Some("NoSession") => KeyringError::NotAvailable,
            _ => KeyringError::Dbus(error),
        }
    }
}

/// The short name of an `org.freedesktop.Secret.Error.*` reply.
fn secret_error(error: &zbus::Error) -> Option<&str> {
    let zbus::Error::MethodError(name, _, _) = error else {
        return None;
    };
    name.as_str().strip_prefix("org.freedesktop.Secret.Error.")
}

/// One call to the service, bounded by [`CALL_TIMEOUT`].
async fn bounded<T>(call: impl std::future::Future<Output = zbus::Result<T>>) -> Result<T, Call> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(result) => result.map_err(Call::Failed),
        Err(_) => Err(Call::TimedOut),
    }
}

/// Nothing owns the name and the bus knows no way to start it.
fn no_such_service(error: &zbus::Error) -> bool {
    let zbus::Error::FDO(e) = error else {
        return false;
    };
    matches!(
        **e,
        fdo::Error::ServiceUnknown(_) | fdo::Error::NameHasNoOwner(_)
    )
}

/// The service was there (or activatable) but did not answer: it failed to start, left the
/// bus mid-call or the bus gave up waiting.
fn service_gone(error: &zbus::Error) -> bool {
    let zbus::Error::FDO(e) = error else {
        return false;
    };
    matches!(
        **e,
        fdo::Error::NoReply(_)
            | fdo::Error::Timeout(_)
            | fdo::Error::TimedOut(_)
            | fdo::Error::SpawnExecFailed(_)
            | fdo::Error::SpawnForkFailed(_)
            | fdo::Error::SpawnChildExited(_)
            | fdo::Error::SpawnChildSignaled(_)
            | fdo::Error::SpawnFailed(_)
            | fdo::Error::SpawnFailedToSetup(_)
            | fdo::Error::SpawnConfigInvalid(_)
            | fdo::Error::SpawnServiceNotValid(_)
            | fdo::Error::SpawnServiceNotFound(_)
            | fdo::Error::SpawnPermissionsInvalid(_)
            | fdo::Error::SpawnFileInvalid(_)
            | fdo::Error::SpawnNoMemory(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_bytes_never_show_in_debug() {
        let secret = IncomingSecret {
            _session: OwnedObjectPath::try_from("/s").unwrap(),
            _parameters: Vec::new(),
            value: SecretBytes(b"refresh-token-123".to_vec()),
            _content_type: CONTENT_TYPE.into(),
        };
        let shown = format!("{secret:?}");
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(!shown.contains("refresh"), "{shown}");
    }
}
