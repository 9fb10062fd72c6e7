//! The Secret Service client against a real gnome-keyring on a private session bus: what is
//! stored loads back and is replaced, deleted or refused when locked; no service means None.
//!
//! Each test starts its own dbus-daemon and gnome-keyring-daemon and ends them by PID.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use upq_daemon::accounts::keyring::{KeyringError, SecretService};
use upq_tests::bus::PrivateBus;
use upq_tests::keyring::Keyring;
use upq_tests::TestEnv;
use zbus::{Connection, OwnedObjectPath, OwnedVariant};

const SECRETS: &str = "org.freedesktop.secrets";
const SERVICE_PATH: &str = "/org/freedesktop/secrets";
const SERVICE_INTERFACE: &str = "org.freedesktop.Secret.Service";
const LABEL: &str = "upq: tiktok-main";

/// One test's world: its dirs, a bus without service activation, gnome-keyring on it and
/// our connection. Fields drop in order: the keyring first, the dirs last.
struct Rig {
    _keyring: Keyring,
    conn: Connection,
    _bus: PrivateBus,
    _env: TestEnv,
}

impl Rig {
    async fn start(name: &str) -> Rig {
        let env = TestEnv::new(name);
        let bus = no_activation_bus(&env);
        let conn = connect_to(&bus).await;
        // Waits until gnome-keyring owns its name on the bus.
        let keyring = Keyring::start(&env, &bus);
        Rig {
            _keyring: keyring,
            conn,
            _bus: bus,
            _env: env,
        }
    }

    async fn service(&self) -> SecretService {
        SecretService::connect(&self.conn)
            .await
            .expect("open a Secret Service session")
            .expect("gnome-keyring owns org.freedesktop.secrets")
    }

    /// Every item matching `attributes`, locked or not, as the service itself reports them.
    async fn items(&self, attributes: &[(&str, &str)]) -> Vec<OwnedObjectPath> {
        let map: HashMap<&str, &str> = attributes.iter().copied().collect();
        let (unlocked, locked): (Vec<OwnedObjectPath>, Vec<OwnedObjectPath>) =
            self.call_service("SearchItems", &(map,)).await;
        unlocked.into_iter().chain(locked).collect()
    }

    /// An item's secret as the service hands it to any client: (value, content type).
    async fn raw_secret(&self, item: &OwnedObjectPath) -> (Vec<u8>, String) {
        let (_, session): (OwnedVariant, OwnedObjectPath) = self
            .call_service("OpenSession", &("plain", zbus::Variant::from("")))
            .await;
        let reply = self
            .conn
            .call_method(
                Some(SECRETS),
                item.as_str(),
                Some("org.freedesktop.Secret.Item"),
                "GetSecret",
                &(session,),
            )
            .await
            .expect("GetSecret");
        let (_, _, value, content_type): (OwnedObjectPath, Vec<u8>, Vec<u8>, String) =
            reply.body().deserialize().expect("a Secret struct");
        (value, content_type)
    }

    async fn default_collection(&self) -> OwnedObjectPath {
        self.call_service("ReadAlias", &("default",)).await
    }

    async fn item_label(&self, item: &OwnedObjectPath) -> String {
        let reply = self
            .conn
            .call_method(
                Some(SECRETS),
                item.as_str(),
                Some("org.freedesktop.DBus.Properties"),
                "Get",
                &("org.freedesktop.Secret.Item", "Label"),
            )
            .await
            .expect("read an item's label");
        let label: OwnedVariant = reply.body().deserialize().expect("a variant");
        String::try_from(label).expect("labels are strings")
    }

    /// Locks a collection the way the screen locker would; the service needs no prompt.
    async fn lock(&self, collection: &OwnedObjectPath) {
        let (locked, prompt): (Vec<OwnedObjectPath>, OwnedObjectPath) = self
            .call_service("Lock", &(vec![collection.clone()],))
            .await;
        assert_eq!(
            locked,
            std::slice::from_ref(collection),
            "lock {collection}"
        );
        assert_eq!(prompt.as_str(), "/", "locking should need no prompt");
    }

    async fn call_service<B, R>(&self, method: &str, body: &B) -> R
    where
        B: serde::Serialize + zbus::DynamicType,
        R: for<'d> serde::Deserialize<'d> + zbus::Type,
    {
        let reply = self
            .conn
            .call_method(
                Some(SECRETS),
                SERVICE_PATH,
                Some(SERVICE_INTERFACE),
                method,
                body,
            )
            .await
            .unwrap_or_else(|e| panic!("Secret Service {method}: {e}"));
        reply
            .body()
            .deserialize()
            .unwrap_or_else(|e| panic!("Secret Service {method} reply: {e}"))
    }
}

/// A private session bus whose config names no service directories, so nothing (the system's
/// gnome-keyring least of all) is started by activation behind the test's back.
fn no_activation_bus(env: &TestEnv) -> PrivateBus {
    PrivateBus::start_for_every_user(env.root())
}

async fn connect_to(bus: &PrivateBus) -> Connection {
    zbus::connection::Builder::address(bus.address())
        .build()
        .await
        .unwrap_or_else(|e| panic!("connect to the private bus {}: {e}", bus.address()))
}

fn tokens(access: &str) -> Vec<u8> {
    format!(r#"{{"access_token":"{access}","refresh_token":"r-{access}"}}"#).into_bytes()
}

#[tokio::test]
async fn a_stored_secret_loads_back_and_a_second_store_replaces_it() {
    let rig = Rig::start("keyring-store").await;
    let service = rig.service().await;
    let attributes = [("application", "upq"), ("destination", "tiktok-main")];

    service
        .store(LABEL, &attributes, &tokens("a1"))
        .await
        .expect("store");
    assert_eq!(
        service.load(&attributes).await.expect("load"),
        Some(tokens("a1"))
    );

    service
        .store(LABEL, &attributes, &tokens("a2"))
        .await
        .expect("store again");
    assert_eq!(
        service.load(&attributes).await.expect("load"),
        Some(tokens("a2"))
    );
    let items = rig.items(&attributes).await;
    assert_eq!(items.len(), 1, "a second store replaces: {items:?}");
    let default = rig.default_collection().await;
    assert!(
        items[0]
            .as_str()
            .starts_with(&format!("{}/", default.as_str())),
        "{} should be in the default collection {default}",
        items[0]
    );
    assert_eq!(rig.item_label(&items[0]).await, LABEL);
    let (value, content_type) = rig.raw_secret(&items[0]).await;
    assert_eq!(value, tokens("a2"), "what any client reads");
    // Sent as application/json; gnome-keyring 42 does not keep it and answers text/plain.
    assert!(
        ["application/json", "text/plain"].contains(&content_type.as_str()),
        "{content_type}"
    );

    let other = [("application", "upq"), ("destination", "youtube")];
    assert_eq!(service.load(&other).await.expect("load other"), None);
}

#[tokio::test]
async fn delete_removes_every_matching_item_and_reports_whether_any_was_there() {
    let rig = Rig::start("keyring-delete").await;
    let service = rig.service().await;
    let first = [("application", "upq"), ("destination", "first")];
    let second = [("application", "upq"), ("destination", "second")];
    service.store("first", &first, &tokens("f")).await.unwrap();
    service
        .store("second", &second, &tokens("s"))
        .await
        .unwrap();

    assert!(service.delete(&first).await.expect("delete first"));
    assert_eq!(service.load(&first).await.unwrap(), None);
    assert!(rig.items(&first).await.is_empty());
    assert_eq!(service.load(&second).await.unwrap(), Some(tokens("s")));
    assert!(!service.delete(&first).await.expect("delete it again"));

    // Attributes match as a subset, as SearchItems does: this reaches "second" too.
    assert!(service.delete(&[("application", "upq")]).await.unwrap());
    assert_eq!(service.load(&second).await.unwrap(), None);
}

#[tokio::test]
async fn a_locked_keyring_answers_locked_and_never_shows_a_prompt() {
    let rig = Rig::start("keyring-locked").await;
    let service = rig.service().await;
    let attributes = [("application", "upq"), ("destination", "locked")];
    service
        .store(LABEL, &attributes, &tokens("l"))
        .await
        .unwrap();
    rig.lock(&rig.default_collection().await).await;

    let loaded = service.load(&attributes).await;
    assert!(
        matches!(loaded, Err(KeyringError::Locked)),
        "load: {loaded:?}"
    );
    let stored = service.store(LABEL, &attributes, &tokens("m")).await;
    assert!(
        matches!(stored, Err(KeyringError::Locked)),
        "store: {stored:?}"
    );
    let deleted = service.delete(&attributes).await;
    assert!(
        matches!(deleted, Err(KeyringError::Locked)),
        "delete: {deleted:?}"
    );
    assert_eq!(rig.items(&attributes).await.len(), 1, "nothing was deleted");
}

/// The daemon calls the keyring from spawned tasks and shares one session between them.
#[allow(dead_code)]
fn the_client_can_be_shared_between_tasks(service: &'static SecretService) {
    fn send<T: Send>(_: T) {}
    fn sync<T: Send + Sync>() {}
    sync::<SecretService>();
    send(service.store("", &[], b""));
    send(service.load(&[]));
    send(service.delete(&[]));
}

#[tokio::test]
async fn a_bus_without_a_secret_service_gives_none() {
    let env = TestEnv::new("keyring-none");
    let bus = no_activation_bus(&env);
    let conn = connect_to(&bus).await;
    let started = Instant::now();
    let service = SecretService::connect(&conn).await.expect("no error");
    assert!(service.is_none(), "{service:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answering None took {:?}",
        started.elapsed()
    );
}
