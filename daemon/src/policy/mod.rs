//! Upload policies: when upq uploads and how fast, decided by the clock (a rate
//! timetable, upload hours), the network (metered, connectivity) and the battery.
//!
//! Policies decide, the scheduler and the pacer act: a policy is a pure reading of facts
//! (the time, what the system bus says) into "may start", "must pause" and "at most this
//! fast", so each can be tested without a clock or a bus, and the doors only show it.

pub mod facts;
pub mod timetable;
pub mod zone;

pub use facts::{Connectivity, Facts, Reactions, Source, Verdict};
pub use timetable::Timetable;
pub use zone::Zone;

/// What a fact (a metered connection, running on battery) does to uploads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reaction {
    /// Nothing.
    #[default]
    Ignore,
    /// New uploads wait and those under way pause at their next piece.
    Pause,
    /// Uploads go on, at most this fast (bytes per second).
    Limit(u64),
}

impl Reaction {
    /// `"pause"`, `"ignore"` or `"limit:256KiB"`.
    pub fn parse(
        text: &str,
        parse_rate: impl Fn(&str) -> Result<u64, String>,
    ) -> Result<Reaction, String> {
        let text = text.trim();
        match text {
            "pause" => Ok(Reaction::Pause),
            "ignore" => Ok(Reaction::Ignore),
            _ => match text.strip_prefix("limit:") {
                Some(rate) => match parse_rate(rate)? {
                    0 => Err(format!("'{text}': a limit of 0 is no limit; say \"ignore\" or \"pause\"")),
                    rate => Ok(Reaction::Limit(rate)),
                },
                None => Err(format!(
                    "'{text}' is not one of \"pause\", \"limit:RATE\" (\"limit:256KiB\") or \"ignore\""
                )),
            },
        }
    }
}

impl std::fmt::Display for Reaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reaction::Ignore => f.write_str("ignore"),
            Reaction::Pause => f.write_str("pause"),
            Reaction::Limit(rate) => write!(f, "limit:{}", rate_text(*rate)),
        }
    }
}

/// A rate as the configuration writes it: "2MiB", "512KiB", "1000B"; "off" for none.
pub fn rate_text(rate: u64) -> String {
    const KIB: u64 = 1024;
    match rate {
        0 => "off".into(),
        r if r % (KIB * KIB) == 0 => format!("{}MiB", r / (KIB * KIB)),
        r if r % KIB == 0 => format!("{}KiB", r / KIB),
        r => format!("{r}B"),
    }
}

/// A size for messages: "20 MiB", "1.5 GiB", "512 B".
pub fn size_text(bytes: u64) -> String {
    bytesize::ByteSize(bytes)
        .display()
        .iec()
        .to_string()
        .replacen(".0 ", " ", 1)
}
