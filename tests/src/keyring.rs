//! A real Secret Service for tests: `gnome-keyring-daemon --foreground` on a private bus,
//! with its login keyring created and unlocked by a password on stdin, in the test's own
//! HOME and XDG dirs. Started and ended by PID; waited for on the bus, never by sleeping.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::bus::PrivateBus;
use crate::env::TestEnv;
use crate::wait::wait_for_explained;

/// The name the Secret Service owns.
pub const SECRETS: &str = "org.freedesktop.secrets";
/// How long gnome-keyring may take to own its name.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

pub struct Keyring {
    child: Child,
    log: PathBuf,
}

impl Keyring {
    /// Starts the secrets component on `bus` and waits until it owns its name.
    pub fn start(env: &TestEnv, bus: &PrivateBus) -> Keyring {
        let log = env.root().join("gnome-keyring.log");
        let output = File::create(&log).expect("create the gnome-keyring log");
        let mut cmd = Command::new("gnome-keyring-daemon");
        env.apply_env(&mut cmd);
        cmd.env_remove("GNOME_KEYRING_CONTROL")
            .env("DBUS_SESSION_BUS_ADDRESS", bus.address())
            .args(["--foreground", "--components=secrets", "--unlock"])
            .stdin(Stdio::piped())
            .stdout(output.try_clone().expect("clone the log handle"))
            .stderr(output);
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "gnome-keyring-daemon is not installed; the Secret Service tests need it \
                 (Debian package gnome-keyring; scripts/check installs it)"
            ),
            Err(e) => panic!("spawn gnome-keyring-daemon: {e}"),
        };
        let mut stdin = child.stdin.take().expect("stdin is piped");
        stdin
            .write_all(b"upq-test-password")
            .expect("give gnome-keyring its password");
        // gnome-keyring reads the password up to end of file.
        drop(stdin);
        let keyring = Keyring { child, log };
        wait_for_explained(
            READY_TIMEOUT,
            || format!("{SECRETS} to be owned; {}", keyring.describe_now()),
            || {
                let output = bus.busctl(["status", SECRETS]);
                output.status.success().then_some(())
            },
        );
        keyring
    }

    fn describe_now(&self) -> String {
        let printed = std::fs::read_to_string(&self.log).unwrap_or_default();
        format!("gnome-keyring-daemon printed:\n{printed}")
    }
}

impl Drop for Keyring {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
