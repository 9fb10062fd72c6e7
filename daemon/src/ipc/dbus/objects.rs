//! The ObjectManager of the job objects, answering only the user upqd runs as.
//! Lists what the mirror has published; never creates or removes objects itself.

use std::borrow::Cow;
use std::collections::HashMap;

use upq_proto::dbus::{job_path, post_path};
use zbus::fdo::ManagedObjects;
use zbus::message::Header;
use zbus::names::InterfaceName;
use zbus::object_server::{Interface, SignalEmitter};
use zbus::{interface, Connection, ObjectPath, ObjectServer, OwnedObjectPath, Variant};

use crate::ipc::caller::Gate;
use crate::service::Service;

use super::job::JobObject;
use super::post::PostObject;
use super::BusError;

/// `org.freedesktop.DBus.ObjectManager` for the job objects, with the caller checked like every
/// other call (zbus's own would show any user every job). zbus still emits its signals.
pub(super) struct Objects {
    pub(super) service: Service,
    pub(super) gate: Gate,
}

/// Adds the object of interface `I` at `path` to `objects`, with its properties. An object
/// the mirror has not published yet (or just removed) is left out.
async fn managed<I: Interface>(
    server: &ObjectServer,
    connection: &Connection,
    path: String,
    objects: &mut ManagedObjects,
) -> Result<(), BusError> {
    let Ok(object) = server.interface::<_, I>(path.as_str()).await else {
        return Ok(());
    };
    let properties = {
        let guard = object.get().await;
        // The caller was checked once for all: no header, no check per property.
        Interface::get_all(&*guard, server, connection, None, object.signal_emitter())
            .await
            .map_err(|e| BusError::Failed(e.to_string()))?
    };
    if let Ok(path) = OwnedObjectPath::try_from(path) {
        objects.insert(path, HashMap::from([(I::name().into(), properties)]));
    }
    Ok(())
}

#[interface(name = "org.freedesktop.DBus.ObjectManager")]
impl Objects {
    /// Every job and post object with its properties, as `Properties.GetAll` gives them.
    async fn get_managed_objects(
        &self,
        #[zbus(object_server)] server: &ObjectServer,
        #[zbus(connection)] connection: &Connection,
        #[zbus(header)] header: Header<'_>,
    ) -> Result<ManagedObjects, BusError> {
        self.gate.check(Some(&header)).await?;
        let mut objects = ManagedObjects::new();
        for job in self.service.list(true)? {
            managed::<JobObject>(server, connection, job_path(job.id), &mut objects).await?;
        }
        for post in self.service.post_ids()? {
            managed::<PostObject>(server, connection, post_path(post), &mut objects).await?;
        }
        Ok(objects)
    }

    /// A job object appeared, with its properties.
    #[zbus(signal)]
    async fn interfaces_added(
        emitter: &SignalEmitter<'_>,
        object_path: ObjectPath<'_>,
        interfaces_and_properties: HashMap<InterfaceName<'_>, HashMap<&str, Variant<'_>>>,
    ) -> zbus::Result<()>;

    /// A job object went away.
    #[zbus(signal)]
    async fn interfaces_removed(
        emitter: &SignalEmitter<'_>,
        object_path: ObjectPath<'_>,
        interfaces: Cow<'_, [&str]>,
    ) -> zbus::Result<()>;
}
