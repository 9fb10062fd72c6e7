//! `upqctl watch` on a real terminal: a pseudo-terminal 40 columns wide, a slow upload, and
//! Ctrl-C typed on the terminal as a person would.
//!
//! No drawn line may be wider than the terminal, Ctrl-C ends the watch with exit code 0 and
//! the cursor visible on a fresh line.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use upq_tests::bins;
use upq_tests::{wait_until, JobState, TestEnv, MIB};

const COLUMNS: u16 = 40;
const DEADLINE: Duration = Duration::from_secs(60);

/// A program running on a pseudo-terminal of its own (its controlling terminal), and
/// everything it wrote there so far.
struct Terminal {
    child: Child,
    master: File,
    chunks: Receiver<Vec<u8>>,
    seen: Vec<u8>,
}

impl Terminal {
    /// Starts `command` with stdin, stdout and stderr on a new terminal of `columns`
    /// columns, without echo (so that a typed Ctrl-C leaves no `^C` in the output).
    fn spawn(mut command: Command, columns: u16) -> Terminal {
        let size = libc::winsize {
            ws_row: 24,
            ws_col: columns,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let (mut master, mut slave) = (-1, -1);
        // SAFETY: openpty writes two descriptors; the null name and termios are allowed.
        let opened = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                &size,
            )
        };
        assert_eq!(opened, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both descriptors were just opened and are owned by nobody else.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        // SAFETY: termios is plain data, filled by tcgetattr before it is read.
        let mut modes: libc::termios = unsafe { std::mem::zeroed() };
        unsafe {
            assert_eq!(libc::tcgetattr(slave.as_raw_fd(), &mut modes), 0);
            modes.c_lflag &= !(libc::ECHO | libc::ECHOCTL);
            assert_eq!(libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &modes), 0);
        }
        let stdio = |fd: &OwnedFd| Stdio::from(fd.try_clone().expect("dup the terminal"));
        command
            .stdin(stdio(&slave))
            .stdout(stdio(&slave))
            .stderr(stdio(&slave));
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(|| {
                // A session of its own, with this terminal as its controlling terminal, so
                // that Ctrl-C typed on it interrupts the program.
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("start the program on the terminal");
        // Only the program holds the terminal's side now: the reader ends when it exits.
        drop(command);
        drop(slave);
        let master = File::from(master);
        let mut reader = master.try_clone().expect("dup the master side");
        let (sender, chunks) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            // EIO once the program and its terminal are gone.
            while let Ok(read) = reader.read(&mut buffer) {
                if read == 0 || sender.send(buffer[..read].to_vec()).is_err() {
                    break;
                }
            }
        });
        Terminal {
            child,
            master,
            chunks,
            seen: Vec::new(),
        }
    }

    /// Reads what the program writes until `condition` holds of all of it; panics after
    /// `DEADLINE`.
    fn read_until(&mut self, what: &str, condition: impl Fn(&[u8]) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !condition(&self.seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.chunks.recv_timeout(left) {
                Ok(chunk) => self.seen.extend_from_slice(&chunk),
                Err(_) => panic!(
                    "no {what} within {DEADLINE:?}; the terminal shows:\n{}",
                    String::from_utf8_lossy(&self.seen)
                ),
            }
        }
    }

    /// Types `keys` on the terminal.
    fn type_keys(&mut self, keys: &[u8]) {
        self.master.write_all(keys).expect("type on the terminal");
    }

    /// Waits for the program to exit, then reads what it wrote last.
    fn finish(&mut self) -> ExitStatus {
        let mut status = None;
        wait_until(DEADLINE, "upqctl watch to exit", || {
            status = self.child.try_wait().expect("poll upqctl");
            status.is_some()
        });
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.chunks.recv_timeout(left) {
                Ok(chunk) => self.seen.extend_from_slice(&chunk),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!("the terminal stayed open"),
            }
        }
        status.expect("exited")
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `text` without its escape sequences (CSI `ESC [ … final`, OSC `ESC ] … BEL`, and
/// two-byte `ESC X`).
fn without_escapes(text: &str) -> String {
    let mut plain = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            plain.push(c);
            continue;
        }
        match chars.next() {
            Some('[') => {
                for c in chars.by_ref() {
                    if ('\x40'..='\x7e').contains(&c) {
                        break;
                    }
                }
            }
            Some(']') => {
                for c in chars.by_ref() {
                    if c == '\x07' {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    plain
}

/// The cursor-visibility sequences in the order written: `true` for show, `false` for hide.
fn cursor_visibility(text: &str) -> Vec<bool> {
    let mut changes: Vec<(usize, bool)> = text
        .match_indices("\x1b[?25h")
        .map(|(at, _)| (at, true))
        .chain(text.match_indices("\x1b[?25l").map(|(at, _)| (at, false)))
        .collect();
    changes.sort();
    changes.into_iter().map(|(_, shown)| shown).collect()
}

#[test]
fn watch_fits_a_narrow_terminal_and_ends_cleanly_on_ctrl_c() {
    let env = TestEnv::new("watch-terminal");
    // Slow and steady: a 64 KiB piece every half second, for a minute and a half.
    env.write_local_config("rate_limit = \"128KiB\"", "64KiB");
    let video = env.source("a-rather-long-holiday-video-name.mp4", 12 * MIB);
    let _daemon = env.start_daemon();
    let id = env.add(&video, &[]);
    wait_until(DEADLINE, "the upload to move", || {
        let job = env.job(id);
        job.state == JobState::Uploading && job.bytes_sent > 0
    });

    let mut watch = Command::new(bins::upqctl());
    watch.arg("--socket").arg(env.socket_path()).arg("watch");
    env.apply_env(&mut watch);
    watch.env("TERM", "xterm-256color").env_remove("NO_COLOR");
    let mut terminal = Terminal::spawn(watch, COLUMNS);

    // The bar drawn, and drawn again as progress comes in.
    let bar = format!("#{id} ");
    terminal.read_until("progress bar", |seen| {
        let text = String::from_utf8_lossy(seen);
        text.matches(&bar).count() >= 2 && text.contains('[')
    });
    terminal.type_keys(b"\x03");
    let status = terminal.finish();
    let output = String::from_utf8_lossy(&terminal.seen).into_owned();
    assert_eq!(
        status.code(),
        Some(0),
        "Ctrl-C is the normal end of watching (signal {:?}):\n{output}",
        status.signal()
    );

    // Each redraw starts at the start of the line; the drawn line, padded out to the
    // terminal's width by the drawing, must never spill over it.
    let plain = without_escapes(&output);
    let mut drawn = 0;
    for line in plain.split(['\r', '\n']) {
        let width = line.chars().count();
        assert!(
            width <= usize::from(COLUMNS),
            "a line of {width} columns on a {COLUMNS}-column terminal: {line:?}\nall of it: {output:?}"
        );
        drawn += usize::from(line.contains(&bar) && line.contains('['));
    }
    assert!(drawn >= 2, "bars were drawn: {output:?}");
    assert!(
        !plain.contains(video.name()),
        "the long name is cut to fit: {plain:?}"
    );

    let visibility = cursor_visibility(&output);
    if visibility.contains(&false) {
        assert_eq!(
            visibility.last(),
            Some(&true),
            "the cursor is shown again: {output:?}"
        );
    }
    assert!(
        output.ends_with("\r\n"),
        "the prompt comes back on a fresh line: {output:?}"
    );
}

#[test]
fn escapes_and_cursor_changes_are_read_as_a_terminal_would() {
    assert_eq!(
        without_escapes("\r\x1b[2K#1 a [=> ] \x1b[33mretrying\x1b[0m\x1b]0;t\x07"),
        "\r#1 a [=> ] retrying"
    );
    assert_eq!(
        cursor_visibility("\x1b[?25lbars\x1b[?25h\x1b[?25l"),
        [false, true, false]
    );
    assert!(cursor_visibility("plain").is_empty());
}
