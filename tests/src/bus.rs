//! D-Bus and service-life harness: a private session bus per test, `upqd` started on it
//! (or with any extra environment), `busctl`/`gdbus` clients and a bus monitor, with deadlines.
//!
//! Every process here is started by the test and ended by its own PID; nothing touches the
//! user's session bus.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::env::{run_with_deadline, OutputExt, TestEnv};
use crate::wait::POLL_INTERVAL;

/// upqd's D-Bus names, as the daemon and upqctl use them.
pub use upq_proto::dbus::{
    job_path, post_path, BUS_NAME, JOB_INTERFACE as JOB, MANAGER_INTERFACE as MANAGER,
    MANAGER_PATH, POST_INTERFACE as POST,
};

/// How long one `busctl`/`gdbus`/`dbus-daemon` call may take.
const TOOL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long upqd may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A `dbus-daemon --session` of its own, listening on `<dir>/bus`.
pub struct PrivateBus {
    address: String,
    pid: u32,
}

impl PrivateBus {
    /// Starts the bus (it forks into the background) and reads its address and PID.
    pub fn start(dir: &Path) -> PrivateBus {
        PrivateBus::start_with(dir, |_| {})
    }

    /// A bus at `<root>/bus` that runs with the environment's HOME and XDG dirs, so it finds
    /// activation files in `$XDG_DATA_HOME/dbus-1/services/` and services it starts
    /// inherit that environment.
    pub fn start_for(env: &TestEnv) -> PrivateBus {
        PrivateBus::start_with(env.root(), |cmd| env.apply_env(cmd))
    }

    fn start_with(dir: &Path, configure: impl FnOnce(&mut Command)) -> PrivateBus {
        let socket = dir.join("bus");
        let mut cmd = Command::new("dbus-daemon");
        configure(&mut cmd);
        cmd.arg("--session")
            .arg(format!("--address=unix:path={}", socket.display()));
        PrivateBus::fork(cmd)
    }

    /// A bus at `<dir>/bus` whose policy lets every user connect and call anything, so that
    /// only upqd itself can turn another user away. `dir` must be reachable by those users.
    pub fn start_for_every_user(dir: &Path) -> PrivateBus {
        let config = dir.join("bus.conf");
        fs::write(
            &config,
            format!(
                "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n \
                 \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n\
                 <busconfig><type>session</type><listen>unix:path={}</listen>\
                 <auth>EXTERNAL</auth><policy context=\"default\"><allow user=\"*\"/>\
                 <allow send_destination=\"*\" eavesdrop=\"true\"/><allow eavesdrop=\"true\"/>\
                 <allow own=\"*\"/></policy></busconfig>\n",
                dir.join("bus").display()
            ),
        )
        .expect("write the bus config");
        let mut cmd = Command::new("dbus-daemon");
        cmd.arg(format!("--config-file={}", config.display()));
        PrivateBus::fork(cmd)
    }

    /// Runs a `dbus-daemon` command line that forks, and reads the address and PID it prints.
    fn fork(mut cmd: Command) -> PrivateBus {
        cmd.arg("--print-address=1")
            .arg("--print-pid=1")
            .arg("--fork");
        let output = run_with_deadline(cmd, TOOL_TIMEOUT);
        output.assert_ok("dbus-daemon --session --fork");
        let stdout = output.stdout_text();
        let mut lines = stdout.lines();
        let address = lines.next().unwrap_or_default().trim().to_string();
        let pid: u32 = lines
            .next()
            .and_then(|line| line.trim().parse().ok())
            .unwrap_or_else(|| panic!("dbus-daemon printed no pid: {stdout:?}"));
        assert!(
            address.starts_with("unix:path="),
            "dbus-daemon printed no address: {stdout:?}"
        );
        PrivateBus { address, pid }
    }

    /// The address to give clients (`DBUS_SESSION_BUS_ADDRESS`).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Runs `busctl --address=ADDR ARGS...`.
    pub fn busctl<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new("busctl");
        cmd.arg(format!("--address={}", self.address)).args(args);
        run_with_deadline(cmd, TOOL_TIMEOUT)
    }

    /// `busctl --json=short call dev.upq.upq1 PATH INTERFACE METHOD [SIGNATURE ARGS...]`;
    /// expects success and returns the reply's `data` (a JSON array of the out arguments).
    pub fn call(&self, path: &str, interface: &str, method: &str, args: &[&str]) -> Value {
        let output = self.try_call(path, interface, method, args);
        output.assert_ok(&format!("busctl call {path} {interface} {method} {args:?}"));
        let stdout = output.stdout_text();
        if stdout.trim().is_empty() {
            // busctl prints nothing for a reply without arguments.
            return Value::Array(Vec::new());
        }
        parse_json_line(&stdout)["data"].clone()
    }

    /// Like [`PrivateBus::call`] but returns the finished command, for calls that must fail.
    pub fn try_call(&self, path: &str, interface: &str, method: &str, args: &[&str]) -> Output {
        let mut all = vec!["--json=short", "call", BUS_NAME, path, interface, method];
        all.extend_from_slice(args);
        self.busctl(all)
    }

    /// `busctl --json=short get-property dev.upq.upq1 PATH INTERFACE NAME` → the value.
    pub fn property(&self, path: &str, interface: &str, name: &str) -> Value {
        let output = self.busctl([
            "--json=short",
            "get-property",
            BUS_NAME,
            path,
            interface,
            name,
        ]);
        output.assert_ok(&format!("busctl get-property {path} {interface} {name}"));
        parse_json_line(&output.stdout_text())["data"].clone()
    }

    /// Runs `gdbus call --address ADDR --dest dev.upq.upq1 --object-path PATH --method M ARGS...`.
    pub fn gdbus_call(&self, path: &str, method: &str, args: &[&str]) -> Output {
        let mut cmd = Command::new("gdbus");
        cmd.args(["call", "--address", &self.address, "--dest", BUS_NAME])
            .args(["--object-path", path, "--method", method])
            .args(args);
        run_with_deadline(cmd, TOOL_TIMEOUT)
    }

    /// `gdbus introspect --xml` of one object.
    pub fn introspect_xml(&self, path: &str) -> String {
        let mut cmd = Command::new("gdbus");
        cmd.args(["introspect", "--address", &self.address, "--dest", BUS_NAME])
            .args(["--object-path", path, "--xml"]);
        let output = run_with_deadline(cmd, TOOL_TIMEOUT);
        output.assert_ok(&format!("gdbus introspect --xml {path}"));
        output.stdout_text()
    }

    /// Starts `busctl monitor dev.upq.upq1` and returns once it demonstrably sees traffic.
    pub fn monitor(&self) -> Monitor {
        let monitor = Monitor::start(self);
        monitor.sync(self);
        monitor
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        // The bus daemon forked away from us; it is ended by the PID it printed.
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) };
    }
}

fn parse_json_line(text: &str) -> Value {
    serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("busctl printed no JSON document ({e}): {text:?}"))
}

/// The D-Bus error name in `gdbus` or `busctl` stderr (`GDBus.Error:dev.upq.upq1.Error.X: ...`).
pub fn dbus_error_name(stderr: &str) -> Option<String> {
    let (_, rest) = stderr.split_once("GDBus.Error:")?;
    let name: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// Panics unless a `gdbus call` failed with the named D-Bus error; returns its stderr.
pub fn assert_dbus_error(output: &Output, name: &str, what: &str) -> String {
    let stderr = output.stderr_text();
    assert!(
        !output.status.success(),
        "{what} should fail with {name}, but it succeeded: {}",
        output.stdout_text()
    );
    assert_eq!(
        dbus_error_name(&stderr).as_deref(),
        Some(name),
        "{what} should fail with {name}; stderr: {stderr}"
    );
    stderr
}

/// One message seen by the monitor.
#[derive(Debug, Clone)]
pub struct BusMessage {
    /// When the monitor printed it, relative to the monitor's start.
    pub at: Duration,
    /// busctl's JSON form: `type`, `path`, `interface`, `member`, `payload.data`, ...
    pub json: Value,
}

impl BusMessage {
    pub fn kind(&self) -> &str {
        self.json["type"].as_str().unwrap_or_default()
    }

    pub fn member(&self) -> &str {
        self.json["member"].as_str().unwrap_or_default()
    }

    pub fn path(&self) -> &str {
        self.json["path"].as_str().unwrap_or_default()
    }

    pub fn interface(&self) -> &str {
        self.json["interface"].as_str().unwrap_or_default()
    }

    /// The message's arguments.
    pub fn args(&self) -> &Value {
        &self.json["payload"]["data"]
    }

    /// True for a signal `interface.member`.
    pub fn is_signal(&self, interface: &str, member: &str) -> bool {
        self.kind() == "signal" && self.interface() == interface && self.member() == member
    }
}

/// `busctl --json=short monitor dev.upq.upq1`, collected line by line in the background.
pub struct Monitor {
    child: Option<Child>,
    messages: Arc<Mutex<Vec<BusMessage>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Monitor {
    fn start(bus: &PrivateBus) -> Monitor {
        let mut child = Command::new("busctl")
            .arg(format!("--address={}", bus.address()))
            .args(["--json=short", "monitor", BUS_NAME])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn busctl monitor");
        let stdout = child.stdout.take().expect("monitor stdout is piped");
        let messages = Arc::new(Mutex::new(Vec::new()));
        let sink = messages.clone();
        let started = Instant::now();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let Ok(json) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                let message = BusMessage {
                    at: started.elapsed(),
                    json,
                };
                sink.lock().unwrap_or_else(|e| e.into_inner()).push(message);
            }
        });
        Monitor {
            child: Some(child),
            messages,
            reader: Some(reader),
        }
    }

    /// Pings upqd until the monitor shows the ping: from then on nothing is missed.
    fn sync(&self, bus: &PrivateBus) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            bus.call(MANAGER_PATH, "org.freedesktop.DBus.Peer", "Ping", &[]);
            let seen = || {
                self.messages()
                    .iter()
                    .any(|m| m.kind() == "method_call" && m.member() == "Ping")
            };
            let until = Instant::now() + Duration::from_secs(2);
            while Instant::now() < until && !seen() {
                std::thread::sleep(POLL_INTERVAL);
            }
            if seen() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "busctl monitor showed none of our pings within {READY_TIMEOUT:?}"
            );
        }
    }

    /// Every message so far.
    pub fn messages(&self) -> Vec<BusMessage> {
        self.messages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Signals `interface.member` so far.
    pub fn signals(&self, interface: &str, member: &str) -> Vec<BusMessage> {
        self.messages()
            .into_iter()
            .filter(|m| m.is_signal(interface, member))
            .collect()
    }

    /// Waits until a message matching `accept` has been seen; returns it.
    pub fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        accept: impl Fn(&BusMessage) -> bool,
    ) -> BusMessage {
        let explain = || format!("{what}; the monitor saw:\n{}", self.describe());
        crate::wait::wait_for_first(timeout, explain, || self.messages(), accept)
    }

    /// The signals seen, one a line, for assertion messages.
    pub fn describe(&self) -> String {
        self.messages()
            .iter()
            .filter(|m| m.kind() == "signal")
            .map(|m| {
                format!(
                    "  {:>8.3}s {} {}.{} {}",
                    m.at.as_secs_f64(),
                    m.path(),
                    m.interface(),
                    m.member(),
                    m.args()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// The members of each interface in D-Bus introspection XML, normalized so that two
/// documents compare equal when they declare the same API, whatever the order, comments,
/// whitespace or annotations:
/// `method Add(in s file, in a{sv} options, out t)`, `signal Progress(t id, t sent, t size)`,
/// `property State s read`. Only the interfaces of the outermost node count; child nodes
/// (which may carry their own full introspection) are skipped.
pub fn interface_members(xml: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut interfaces: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut interface: Option<String> = None;
    // (kind, name, args) of the method or signal being read.
    let mut member: Option<(String, String, Vec<String>)> = None;
    let mut depth = 0usize;
    for tag in xml_tags(xml) {
        if tag.name == "node" {
            match (tag.closing, tag.self_closing) {
                (false, false) => depth += 1,
                (true, _) => depth = depth.saturating_sub(1),
                (false, true) => {}
            }
            continue;
        }
        if depth > 1 {
            continue;
        }
        let attr = |key: &str| tag.attrs.get(key).cloned().unwrap_or_default();
        match (tag.name.as_str(), tag.closing) {
            ("interface", false) => {
                let name = attr("name");
                interfaces.entry(name.clone()).or_default();
                interface = (!tag.self_closing).then_some(name);
            }
            ("interface", true) => interface = None,
            ("method" | "signal", false) => {
                let entry = (tag.name.clone(), attr("name"), Vec::new());
                if tag.self_closing {
                    if let Some(iface) = &interface {
                        interfaces
                            .entry(iface.clone())
                            .or_default()
                            .insert(member_line(&entry));
                    }
                } else {
                    member = Some(entry);
                }
            }
            ("method" | "signal", true) => {
                if let (Some(entry), Some(iface)) = (member.take(), &interface) {
                    interfaces
                        .entry(iface.clone())
                        .or_default()
                        .insert(member_line(&entry));
                }
            }
            ("arg", false) => {
                if let Some((kind, _, args)) = member.as_mut() {
                    let name = attr("name");
                    let ty = attr("type");
                    let arg = if kind == "method" {
                        let direction = tag
                            .attrs
                            .get("direction")
                            .cloned()
                            .unwrap_or_else(|| "in".into());
                        format!("{direction} {ty} {name}")
                    } else {
                        format!("{ty} {name}")
                    };
                    args.push(arg.trim_end().to_string());
                }
            }
            ("property", false) => {
                if let Some(iface) = &interface {
                    interfaces.entry(iface.clone()).or_default().insert(format!(
                        "property {} {} {}",
                        attr("name"),
                        attr("type"),
                        attr("access")
                    ));
                }
            }
            _ => {}
        }
    }
    interfaces
}

fn member_line((kind, name, args): &(String, String, Vec<String>)) -> String {
    format!("{kind} {name}({})", args.join(", "))
}

/// One tag of an XML document.
#[derive(Debug)]
struct XmlTag {
    name: String,
    attrs: BTreeMap<String, String>,
    closing: bool,
    self_closing: bool,
}

/// The element tags of a simple XML document (no CDATA), comments and declarations skipped.
fn xml_tags(xml: &str) -> Vec<XmlTag> {
    let mut text = xml;
    let mut tags = Vec::new();
    while let Some(start) = text.find('<') {
        text = &text[start..];
        if let Some(rest) = text.strip_prefix("<!--") {
            let end = rest.find("-->").map_or(rest.len(), |end| end + 3);
            text = &rest[end..];
            continue;
        }
        let Some(end) = text.find('>') else { break };
        let inner = &text[1..end];
        text = &text[end + 1..];
        if inner.starts_with('!') || inner.starts_with('?') {
            continue;
        }
        let closing = inner.starts_with('/');
        let inner = inner.trim_start_matches('/');
        let self_closing = inner.trim_end().ends_with('/');
        let inner = inner.trim_end().trim_end_matches('/');
        let (name, mut rest) = inner.split_once(char::is_whitespace).unwrap_or((inner, ""));
        let mut attrs = BTreeMap::new();
        while let Some(eq) = rest.find('=') {
            let key = rest[..eq].trim().to_string();
            let after = rest[eq + 1..].trim_start();
            let Some(quote) = after.chars().next().filter(|c| *c == '"' || *c == '\'') else {
                break;
            };
            let body = &after[1..];
            let close = body.find(quote).unwrap_or(body.len());
            attrs.insert(key, unescape(&body[..close]));
            rest = body.get(close + 1..).unwrap_or("");
        }
        tags.push(XmlTag {
            name: name.to_string(),
            attrs,
            closing,
            self_closing,
        });
    }
    tags
}

fn unescape(value: &str) -> String {
    value
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">
<!-- a comment with <method name="Ghost"/> inside -->
<node>
  <interface name="a.B">
    <method name="Add">
      <arg name="file" type="s" direction="in"/>
      <arg name='options' type="a{sv}"/>
      <arg type="t" direction="out" />
    </method>
    <method name="Ping"/>
    <signal name="Progress">
      <arg name="id" type="t"/>
      <annotation name="x" value="y"/>
    </signal>
    <property name="State" type="s" access="read">
      <annotation name="org.freedesktop.DBus.Property.EmitsChangedSignal" value="true"/>
    </property>
  </interface>
  <interface name="a.Empty"/>
  <node name="job"/>
  <node name="child">
    <interface name="a.Child">
      <method name="Hidden"/>
    </interface>
  </node>
</node>"#;

    #[test]
    fn introspection_is_normalized() {
        let members = interface_members(SAMPLE);
        let b: Vec<&str> = members["a.B"].iter().map(String::as_str).collect();
        assert_eq!(
            b,
            [
                "method Add(in s file, in a{sv} options, out t)",
                "method Ping()",
                "property State s read",
                "signal Progress(t id)",
            ]
        );
        assert!(members["a.Empty"].is_empty());
        assert_eq!(members.len(), 2);
    }

    #[test]
    fn error_names_are_read_from_stderr() {
        assert_eq!(
            dbus_error_name("Error: GDBus.Error:dev.upq.upq1.Error.NotFound: no job 9\n")
                .as_deref(),
            Some("dev.upq.upq1.Error.NotFound")
        );
        assert_eq!(dbus_error_name("Call failed: no job 9"), None);
    }
}
