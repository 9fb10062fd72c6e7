//! A system bus of the test's own with python-dbusmock's NetworkManager and UPower on it,
//! for the policies that follow the network and the battery.
//!
//! The bus is a private `dbus-daemon`; upqd finds it through `DBUS_SYSTEM_BUS_ADDRESS`.
//! The mocks' properties change through dbusmock's `org.freedesktop.DBus.Mock` interface,
//! whose `UpdateProperties` emits `PropertiesChanged` as the real services do.
//! NetworkManager's template has no `Metered`; it is added with `AddProperty`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::bus::PrivateBus;
use crate::env::{OutputExt, TestEnv};
use crate::wait::wait_until;

pub const NM: &str = "org.freedesktop.NetworkManager";
pub const NM_PATH: &str = "/org/freedesktop/NetworkManager";
pub const UPOWER: &str = "org.freedesktop.UPower";
pub const UPOWER_PATH: &str = "/org/freedesktop/UPower";
pub const DISPLAY_DEVICE: &str = "/org/freedesktop/UPower/devices/DisplayDevice";
pub const DEVICE: &str = "org.freedesktop.UPower.Device";

/// NetworkManager's `NMMetered` values.
pub mod metered {
    pub const YES: u32 = 1;
    pub const NO: u32 = 2;
    pub const GUESS_YES: u32 = 3;
    pub const GUESS_NO: u32 = 4;
}

/// NetworkManager's `NMConnectivityState` values.
pub mod connectivity {
    pub const NONE: u32 = 1;
    pub const LIMITED: u32 = 3;
    pub const FULL: u32 = 4;
}

/// The interpreter that has python-dbusmock (Debian's `python3-dbusmock`).
const PYTHON: &str = "/usr/bin/python3";

/// A private system bus with mocked services; ends them and the bus by PID when dropped.
pub struct MockSystem {
    bus: PrivateBus,
    mocks: Vec<Child>,
}

impl MockSystem {
    /// The bus, at `<dir>/bus` (`dir` is created), with no service on it yet.
    pub fn start(dir: &Path) -> MockSystem {
        std::fs::create_dir_all(dir).expect("a folder for the system bus");
        MockSystem {
            bus: PrivateBus::start(dir),
            mocks: Vec::new(),
        }
    }

    pub fn address(&self) -> &str {
        self.bus.address()
    }

    /// Makes `env`'s daemons and clients use this bus as the system bus.
    pub fn use_in(&self, env: &TestEnv) {
        env.set_var("DBUS_SYSTEM_BUS_ADDRESS", self.address());
    }

    /// NetworkManager (dbusmock's template) with `Metered` added, full connectivity.
    pub fn network_manager(&mut self, metered: u32) {
        self.mock("networkmanager", NM, None);
        self.call(
            NM_PATH,
            "AddProperty",
            &["ssv", NM, "Metered", "u", &metered.to_string()],
        );
    }

    /// UPower (dbusmock's template) with a present battery at `percent`.
    pub fn upower(&mut self, on_battery: bool, percent: f64) {
        let parameters = format!("{{\"OnBattery\": {}}}", on_battery);
        self.mock("upower", UPOWER, Some(&parameters));
        self.update(
            DISPLAY_DEVICE,
            DEVICE,
            &[
                ("IsPresent", "b", "true"),
                ("Percentage", "d", &percent.to_string()),
            ],
        );
    }

    pub fn set_metered(&self, value: u32) {
        self.update(NM_PATH, NM, &[("Metered", "u", &value.to_string())]);
    }

    pub fn set_connectivity(&self, value: u32) {
        self.update(NM_PATH, NM, &[("Connectivity", "u", &value.to_string())]);
    }

    pub fn set_on_battery(&self, on_battery: bool) {
        self.update(
            UPOWER_PATH,
            UPOWER,
            &[("OnBattery", "b", if on_battery { "true" } else { "false" })],
        );
    }

    /// Changes properties of `interface` on `path` and emits `PropertiesChanged`.
    pub fn update(&self, path: &str, interface: &str, properties: &[(&str, &str, &str)]) {
        let service = if path.starts_with(UPOWER_PATH) {
            UPOWER
        } else {
            NM
        };
        let mut args: Vec<String> = vec![
            "call".into(),
            service.into(),
            path.into(),
            "org.freedesktop.DBus.Mock".into(),
            "UpdateProperties".into(),
            "sa{sv}".into(),
            interface.into(),
            properties.len().to_string(),
        ];
        for (name, signature, value) in properties {
            args.extend([name.to_string(), signature.to_string(), value.to_string()]);
        }
        self.bus
            .busctl(&args)
            .assert_ok(&format!("UpdateProperties on {path}"));
    }

    fn call(&self, path: &str, method: &str, args: &[&str]) {
        let service = if path.starts_with(UPOWER_PATH) {
            UPOWER
        } else {
            NM
        };
        let mut all = vec!["call", service, path, "org.freedesktop.DBus.Mock", method];
        all.extend_from_slice(args);
        self.bus
            .busctl(&all)
            .assert_ok(&format!("{method} on {path}"));
    }

    /// Starts dbusmock's `template` and waits until it owns `name`.
    fn mock(&mut self, template: &str, name: &str, parameters: Option<&str>) {
        let mut cmd = Command::new(PYTHON);
        cmd.args(["-m", "dbusmock", "--system", "--template", template]);
        if let Some(parameters) = parameters {
            cmd.args(["--parameters", parameters]);
        }
        let child = cmd
            .env("DBUS_SYSTEM_BUS_ADDRESS", self.address())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("python-dbusmock ({PYTHON} -m dbusmock): {e}"));
        self.mocks.push(child);
        wait_until(
            Duration::from_secs(20),
            format!("dbusmock's {template} to own {name}"),
            || self.bus.busctl(["status", name]).status.success(),
        );
    }
}

/// The desktop portal's NetworkMonitor on a session bus (python-dbusmock's generic mock):
/// `GetMetered` answers what `set_metered` last said, which also emits `changed`.
pub struct MockPortal {
    bus_address: String,
    mock: Child,
}

pub const PORTAL: &str = "org.freedesktop.portal.Desktop";
pub const PORTAL_PATH: &str = "/org/freedesktop/portal/desktop";
pub const NETWORK_MONITOR: &str = "org.freedesktop.portal.NetworkMonitor";

impl MockPortal {
    pub fn start(session: &PrivateBus, metered: bool) -> MockPortal {
        let mock = Command::new(PYTHON)
            .args([
                "-m",
                "dbusmock",
                "--session",
                PORTAL,
                PORTAL_PATH,
                NETWORK_MONITOR,
            ])
            .env("DBUS_SESSION_BUS_ADDRESS", session.address())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("python-dbusmock ({PYTHON} -m dbusmock): {e}"));
        let portal = MockPortal {
            bus_address: session.address().to_string(),
            mock,
        };
        wait_until(
            Duration::from_secs(20),
            "dbusmock to own the portal's name",
            || portal.busctl(&["status", PORTAL]).status.success(),
        );
        portal.answer(metered);
        portal
    }

    fn busctl(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new("busctl");
        cmd.arg(format!("--address={}", self.bus_address))
            .args(args);
        crate::env::run_with_deadline(cmd, Duration::from_secs(30))
    }

    fn answer(&self, metered: bool) {
        let code = format!("ret = {}", if metered { "True" } else { "False" });
        self.busctl(&[
            "call",
            PORTAL,
            PORTAL_PATH,
            "org.freedesktop.DBus.Mock",
            "AddMethod",
            "sssss",
            NETWORK_MONITOR,
            "GetMetered",
            "",
            "b",
            &code,
        ])
        .assert_ok("AddMethod GetMetered");
    }

    /// Answers `metered` from now on and emits `changed`, as the portal does.
    pub fn set_metered(&self, metered: bool) {
        self.answer(metered);
        self.busctl(&[
            "call",
            PORTAL,
            PORTAL_PATH,
            "org.freedesktop.DBus.Mock",
            "EmitSignal",
            "sssav",
            NETWORK_MONITOR,
            "changed",
            "",
            "0",
        ])
        .assert_ok("EmitSignal changed");
    }
}

impl Drop for MockPortal {
    fn drop(&mut self) {
        let _ = self.mock.kill();
        let _ = self.mock.wait();
    }
}

impl Drop for MockSystem {
    fn drop(&mut self) {
        for child in &mut self.mocks {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
