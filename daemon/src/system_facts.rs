//! Following what the system says about the network and the power, for the policies:
//! NetworkManager's `Metered` and `Connectivity`, the desktop portal's NetworkMonitor
//! where NetworkManager is absent, and UPower's `OnBattery` with the DisplayDevice's
//! `Percentage`.
//!
//! Nothing polls. Each watcher subscribes to `PropertiesChanged` on its object and to the
//! owner changes of its service's name first, then reads the properties; it reads them
//! again on each signal. A service that goes away or comes back (NetworkManager restarted)
//! is read again when its name changes owner. Where nobody answers, the fact keeps what
//! upq assumes (not metered, on mains power) with the reason, which `status` shows.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use zbus::fdo::{DBusProxy, PropertiesProxy};
use zbus::names::InterfaceName;
use zbus::proxy::CacheProperties;
use zbus::{Connection, OwnedVariant};

use crate::policy::{Connectivity, Source};
use crate::service::Service;

const NM_SERVICE: &str = "org.freedesktop.NetworkManager";
const NM_PATH: &str = "/org/freedesktop/NetworkManager";
const UPOWER_SERVICE: &str = "org.freedesktop.UPower";
const UPOWER_PATH: &str = "/org/freedesktop/UPower";
const DISPLAY_DEVICE_PATH: &str = "/org/freedesktop/UPower/devices/DisplayDevice";
const DEVICE_INTERFACE: &str = "org.freedesktop.UPower.Device";

/// How long the start waits for the first answers, so that a job does not start in the
/// moment before upq learns the connection is metered.
const FIRST_ANSWER: Duration = Duration::from_secs(2);

/// The desktop portal's network monitor, on the session bus.
#[zbus::proxy(
    interface = "org.freedesktop.portal.NetworkMonitor",
    default_service = "org.freedesktop.portal.Desktop",
    default_path = "/org/freedesktop/portal/desktop"
)]
trait NetworkMonitor {
    fn get_metered(&self) -> zbus::Result<bool>;

    /// Lower case, as the portal names it.
    #[zbus(signal, name = "changed")]
    fn changed(&self) -> zbus::Result<()>;
}

/// Starts following the system and returns once the first answers are in (or after
/// `FIRST_ANSWER`). Without a system bus, the facts say so and nothing is followed.
pub async fn follow(service: &Service, shutdown: CancellationToken) {
    let system = match Connection::system().await {
        Ok(connection) => Some(connection),
        Err(e) => {
            tracing::info!(error = %e, "no system bus: uploads are not held back for a metered connection or the battery");
            None
        }
    };
    // The portal is only asked where NetworkManager is absent; it lives on the session bus.
    let session = Connection::session().await.ok();
    let nobody = |what: &str| Source::Nobody(format!("assumed: {what}"));
    let Some(system) = system else {
        let portal = match &session {
            Some(session) => portal_metered(session).await,
            None => None,
        };
        service.update_facts(|facts| {
            match portal {
                Some(metered) => {
                    facts.metered = metered;
                    facts.metered_source = Source::Portal;
                }
                None => facts.metered_source = nobody("no system bus nor desktop portal"),
            }
            facts.battery_source = nobody("no system bus");
            facts.connectivity_source = nobody("no system bus");
        });
        return;
    };
    let (network_ready, network_first) = tokio::sync::oneshot::channel();
    let (power_ready, power_first) = tokio::sync::oneshot::channel();
    let tasks = service.inner.tasks.clone();
    {
        let (service, system, stop) = (service.clone(), system.clone(), shutdown.clone());
        tasks.spawn_named("network facts", async move {
            if let Err(e) = follow_network(&service, &system, session, network_ready, stop).await {
                tracing::warn!(error = %e, "stopped following NetworkManager");
            }
        });
    }
    {
        let service = service.clone();
        tasks.spawn_named("power facts", async move {
            if let Err(e) = follow_power(&service, &system, power_ready, shutdown).await {
                tracing::warn!(error = %e, "stopped following UPower");
            }
        });
    }
    let both = async {
        let _ = network_first.await;
        let _ = power_first.await;
    };
    if tokio::time::timeout(FIRST_ANSWER, both).await.is_err() {
        tracing::warn!("NetworkManager or UPower did not answer in time; going on without");
    }
}

/// A stream of "something may have changed" for one object of one service: its
/// `PropertiesChanged` signals and the owner changes of the service's name.
struct Changes {
    properties: PropertiesProxy<'static>,
    signals: futures::stream::SelectAll<futures::stream::BoxStream<'static, ()>>,
}

impl Changes {
    async fn of(
        connection: &Connection,
        service: &'static str,
        paths: &[&'static str],
    ) -> zbus::Result<Changes> {
        let mut signals = futures::stream::SelectAll::new();
        let bus = DBusProxy::new(connection).await?;
        let owners = bus
            .receive_name_owner_changed_with_args(&[(0, service)])
            .await?;
        signals.push(owners.map(|_| ()).boxed());
        let mut properties = None;
        for &path in paths {
            let proxy = PropertiesProxy::builder(connection)
                .destination(service)
                .path(path)
                .cache_properties(CacheProperties::No)
                .build()
                .await?;
            signals.push(
                proxy
                    .receive_properties_changed()
                    .await?
                    .map(|_| ())
                    .boxed(),
            );
            properties.get_or_insert(proxy);
        }
        Ok(Changes {
            properties: properties.expect("at least one path"),
            signals,
        })
    }

    /// Waits for the next change; false at shutdown or when the bus is gone.
    async fn next(&mut self, stop: &CancellationToken) -> bool {
        tokio::select! {
            change = self.signals.next() => change.is_some(),
            _ = stop.cancelled() => false,
        }
    }
}

/// The properties of `interface` on `path` of the service `properties` speaks to, or
/// `None` when the service is not there.
async fn read(
    properties: &PropertiesProxy<'static>,
    path: &'static str,
    interface: &'static str,
) -> Option<HashMap<String, OwnedVariant>> {
    let proxy = if properties.inner().path().as_str() == path {
        properties.clone()
    } else {
        PropertiesProxy::builder(properties.inner().connection())
            .destination(properties.inner().destination().to_owned())
            .path(path)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .ok()?
    };
    let name = InterfaceName::try_from(interface).ok()?;
    match proxy.get_all(name).await {
        Ok(values) => Some(values),
        Err(e) => {
            // Absent, or refusing us: either way its facts are assumed, and status says so.
            tracing::info!(interface, path, error = %e, "no answer on the system bus");
            None
        }
    }
}

fn property<T>(values: &HashMap<String, OwnedVariant>, name: &str) -> Option<T>
where
    T: for<'a> TryFrom<&'a OwnedVariant>,
{
    values.get(name).and_then(|value| T::try_from(value).ok())
}

async fn portal_metered(session: &Connection) -> Option<bool> {
    let monitor = NetworkMonitorProxy::new(session).await.ok()?;
    monitor.get_metered().await.ok()
}

async fn follow_network(
    service: &Service,
    system: &Connection,
    session: Option<Connection>,
    ready: tokio::sync::oneshot::Sender<()>,
    stop: CancellationToken,
) -> zbus::Result<()> {
    let mut changes = Changes::of(system, NM_SERVICE, &[NM_PATH]).await?;
    // The portal's `changed` signal wakes the same loop; it is read only without NM.
    let portal = match &session {
        Some(session) => NetworkMonitorProxy::new(session).await.ok(),
        None => None,
    };
    if let Some(portal) = &portal {
        if let Ok(portal_changes) = portal.receive_changed().await {
            changes.signals.push(portal_changes.map(|_| ()).boxed());
        }
    }
    let mut ready = Some(ready);
    loop {
        let values = read(&changes.properties, NM_PATH, NM_SERVICE).await;
        let portal_metered = match (&values, &portal) {
            (None, Some(portal)) => portal.get_metered().await.ok(),
            _ => None,
        };
        service.update_facts(|facts| match &values {
            Some(values) => {
                // NMMetered: 1 yes, 3 guess-yes count as metered (as libnm advises).
                let metered = property::<u32>(values, "Metered");
                facts.metered = matches!(metered, Some(1 | 3));
                facts.metered_source = match metered {
                    Some(_) => Source::NetworkManager,
                    None => Source::Nobody("assumed: NetworkManager has no Metered".into()),
                };
                let connectivity = property::<u32>(values, "Connectivity");
                facts.connectivity =
                    connectivity.map_or(Connectivity::Unknown, Connectivity::from_nm);
                facts.connectivity_source = Source::NetworkManager;
            }
            None => {
                match portal_metered {
                    Some(metered) => {
                        facts.metered = metered;
                        facts.metered_source = Source::Portal;
                    }
                    None => {
                        facts.metered = false;
                        facts.metered_source = Source::Nobody(
                            "assumed: neither NetworkManager nor the desktop portal answers".into(),
                        );
                    }
                }
                facts.connectivity = Connectivity::Unknown;
                facts.connectivity_source =
                    Source::Nobody("assumed: NetworkManager does not answer".into());
            }
        });
        if let Some(ready) = ready.take() {
            let _ = ready.send(());
        }
        if !changes.next(&stop).await {
            return Ok(());
        }
    }
}

async fn follow_power(
    service: &Service,
    system: &Connection,
    ready: tokio::sync::oneshot::Sender<()>,
    stop: CancellationToken,
) -> zbus::Result<()> {
    let mut changes =
        Changes::of(system, UPOWER_SERVICE, &[UPOWER_PATH, DISPLAY_DEVICE_PATH]).await?;
    let mut ready = Some(ready);
    loop {
        let upower = read(&changes.properties, UPOWER_PATH, UPOWER_SERVICE).await;
        let display = match &upower {
            Some(_) => read(&changes.properties, DISPLAY_DEVICE_PATH, DEVICE_INTERFACE).await,
            None => None,
        };
        service.update_facts(|facts| match &upower {
            Some(values) => {
                facts.on_battery = property::<bool>(values, "OnBattery").unwrap_or(false);
                // A DisplayDevice that is not present (a desktop) reports 0%: no charge.
                let present = display
                    .as_ref()
                    .and_then(|device| property::<bool>(device, "IsPresent"))
                    .unwrap_or(true);
                facts.battery_percent = display
                    .as_ref()
                    .and_then(|device| property::<f64>(device, "Percentage"))
                    .filter(|_| present);
                facts.battery_source = Source::UPower;
            }
            None => {
                facts.on_battery = false;
                facts.battery_percent = None;
                facts.battery_source = Source::Nobody("assumed: UPower does not answer".into());
            }
        });
        if let Some(ready) = ready.take() {
            let _ = ready.send(());
        }
        if !changes.next(&stop).await {
            return Ok(());
        }
    }
}
