//! What upq believes about the machine (a metered connection, the battery, connectivity),
//! where it learned it, and the pure reading of those facts and the configuration into
//! what uploads may do.
//!
//! The facts come from the system bus (`crate::system_facts`); this module never talks to
//! it, so each reaction is tested with plain values.

use super::{rate_text, Reaction};

/// Who answered for a fact, or why nobody did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    NetworkManager,
    /// `org.freedesktop.portal.NetworkMonitor`, where NetworkManager is absent.
    Portal,
    UPower,
    /// Nobody answered; the text says why ("no NetworkManager nor desktop portal").
    Nobody(String),
    /// The daemon runs without D-Bus (`--no-dbus`) or the fact was set by a test.
    Assumed(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::NetworkManager => f.write_str("NetworkManager"),
            Source::Portal => f.write_str("desktop portal"),
            Source::UPower => f.write_str("UPower"),
            Source::Nobody(why) | Source::Assumed(why) => f.write_str(why),
        }
    }
}

/// NetworkManager's view of the way out (`NMConnectivityState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connectivity {
    Unknown,
    /// No network at all.
    None,
    /// Behind a captive portal: the sign-in page answers, nothing else.
    Portal,
    /// A network, but no way to the internet.
    Limited,
    Full,
}

impl Connectivity {
    /// From NetworkManager's number (0 unknown, 1 none, 2 portal, 3 limited, 4 full).
    pub fn from_nm(value: u32) -> Connectivity {
        match value {
            1 => Connectivity::None,
            2 => Connectivity::Portal,
            3 => Connectivity::Limited,
            4 => Connectivity::Full,
            _ => Connectivity::Unknown,
        }
    }

    /// Whether network uploads should wait: with none or limited connectivity every
    /// request would fail, and an attempt spent on it would only count against the job.
    /// A captive portal and "unknown" let uploads try (the portal may be signed in to by
    /// the time a request goes; "unknown" is what machines without a check say).
    pub fn blocks_uploads(self) -> bool {
        matches!(self, Connectivity::None | Connectivity::Limited)
    }

    pub fn name(self) -> &'static str {
        match self {
            Connectivity::Unknown => "unknown",
            Connectivity::None => "none",
            Connectivity::Portal => "portal",
            Connectivity::Limited => "limited",
            Connectivity::Full => "full",
        }
    }
}

/// Everything upq believes, each with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    pub metered: bool,
    pub metered_source: Source,
    pub on_battery: bool,
    /// The charge of the whole system (UPower's DisplayDevice), when known.
    pub battery_percent: Option<f64>,
    pub battery_source: Source,
    pub connectivity: Connectivity,
    pub connectivity_source: Source,
}

impl Facts {
    /// What upq assumes when nobody can be asked: not metered, on mains, connected.
    pub fn assumed(why: &str) -> Facts {
        Facts {
            metered: false,
            metered_source: Source::Assumed(why.into()),
            on_battery: false,
            battery_percent: None,
            battery_source: Source::Assumed(why.into()),
            connectivity: Connectivity::Unknown,
            connectivity_source: Source::Assumed(why.into()),
        }
    }
}

/// The keys of `[daemon]` that react to the facts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reactions {
    pub on_metered: Reaction,
    pub on_battery: Reaction,
    /// `on_battery` acts only below this charge, when given.
    pub on_battery_below: Option<u8>,
}

/// What the facts make uploads do, with the words to show for it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verdict {
    /// Why uploads that honour the policies wait ("metered connection (on_metered =
    /// pause)"), in the order the facts are listed.
    pub paused_by: Vec<String>,
    /// The lowest rate a `limit:` reaction sets, and why.
    pub limit: Option<(u64, String)>,
    /// Why network uploads wait whatever the policies ("no connectivity (NetworkManager)").
    pub offline: Option<String>,
}

impl Reactions {
    /// Reads the facts into what uploads may do.
    pub fn judge(&self, facts: &Facts) -> Verdict {
        let mut verdict = Verdict::default();
        if facts.metered {
            verdict.apply(self.on_metered, "metered connection", "on_metered");
        }
        if facts.on_battery && self.battery_low_enough(facts.battery_percent) {
            let what = match facts.battery_percent {
                // Floored, so "19%" is what shows below an `on_battery_below` of 20%.
                Some(percent) => format!("on battery ({}%)", percent.floor() as u64),
                None => "on battery".to_string(),
            };
            verdict.apply(self.on_battery, &what, "on_battery");
        }
        if facts.connectivity.blocks_uploads() {
            verdict.offline = Some(format!(
                "{} connectivity ({})",
                match facts.connectivity {
                    Connectivity::None => "no",
                    _ => "limited",
                },
                facts.connectivity_source
            ));
        }
        verdict
    }

    /// With `on_battery_below`, the battery acts only under that charge; a charge nobody
    /// reports counts as under it (a laptop that cannot say is treated as low).
    fn battery_low_enough(&self, percent: Option<f64>) -> bool {
        match (self.on_battery_below, percent) {
            (None, _) | (Some(_), None) => true,
            (Some(below), Some(percent)) => percent < f64::from(below),
        }
    }
}

impl Verdict {
    fn apply(&mut self, reaction: Reaction, what: &str, key: &str) {
        match reaction {
            Reaction::Ignore => {}
            Reaction::Pause => self.paused_by.push(format!("{what} ({key} = pause)")),
            Reaction::Limit(rate) => {
                if self.limit.as_ref().is_none_or(|(lower, _)| rate < *lower) {
                    let why = format!("{what} ({key} = limit:{})", rate_text(rate));
                    self.limit = Some((rate, why));
                }
            }
        }
    }
}

/// The lower of two rates where 0 means "no limit".
pub fn lower_rate(a: u64, b: u64) -> u64 {
    match (a, b) {
        (0, other) | (other, 0) => other,
        (a, b) => a.min(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            metered: false,
            metered_source: Source::NetworkManager,
            on_battery: false,
            battery_percent: Some(80.0),
            battery_source: Source::UPower,
            connectivity: Connectivity::Full,
            connectivity_source: Source::NetworkManager,
        }
    }

    const IGNORE_ALL: Reactions = Reactions {
        on_metered: Reaction::Ignore,
        on_battery: Reaction::Ignore,
        on_battery_below: None,
    };

    #[test]
    fn ignored_facts_change_nothing_but_connectivity_always_counts() {
        let mut f = facts();
        f.metered = true;
        f.on_battery = true;
        assert_eq!(IGNORE_ALL.judge(&f), Verdict::default());
        f.connectivity = Connectivity::None;
        assert_eq!(
            IGNORE_ALL.judge(&f).offline.as_deref(),
            Some("no connectivity (NetworkManager)")
        );
        f.connectivity = Connectivity::Limited;
        assert!(IGNORE_ALL.judge(&f).offline.is_some());
        for fine in [
            Connectivity::Portal,
            Connectivity::Unknown,
            Connectivity::Full,
        ] {
            f.connectivity = fine;
            assert_eq!(IGNORE_ALL.judge(&f).offline, None, "{fine:?}");
        }
    }

    #[test]
    fn pause_and_limit_say_which_key_did_it() {
        let reactions = Reactions {
            on_metered: Reaction::Pause,
            on_battery: Reaction::Limit(256 * 1024),
            on_battery_below: None,
        };
        let mut f = facts();
        f.metered = true;
        assert_eq!(
            reactions.judge(&f).paused_by,
            vec!["metered connection (on_metered = pause)".to_string()]
        );
        f.metered = false;
        f.on_battery = true;
        let verdict = reactions.judge(&f);
        assert!(verdict.paused_by.is_empty());
        assert_eq!(
            verdict.limit,
            Some((
                256 * 1024,
                "on battery (80%) (on_battery = limit:256KiB)".to_string()
            ))
        );
    }

    #[test]
    fn the_lower_of_two_limits_wins() {
        let reactions = Reactions {
            on_metered: Reaction::Limit(1024 * 1024),
            on_battery: Reaction::Limit(100 * 1024),
            on_battery_below: None,
        };
        let mut f = facts();
        f.metered = true;
        f.on_battery = true;
        assert_eq!(
            reactions.judge(&f).limit.map(|(rate, _)| rate),
            Some(100 * 1024)
        );
        assert_eq!(lower_rate(0, 5), 5);
        assert_eq!(lower_rate(7, 0), 7);
        assert_eq!(lower_rate(7, 5), 5);
        assert_eq!(lower_rate(0, 0), 0);
    }

    #[test]
    fn on_battery_below_acts_only_under_the_charge() {
        let reactions = Reactions {
            on_metered: Reaction::Ignore,
            on_battery: Reaction::Pause,
            on_battery_below: Some(20),
        };
        let mut f = facts();
        f.on_battery = true;
        f.battery_percent = Some(20.0);
        assert!(
            reactions.judge(&f).paused_by.is_empty(),
            "20% is not below 20%"
        );
        f.battery_percent = Some(19.5);
        assert_eq!(
            reactions.judge(&f).paused_by,
            vec!["on battery (19%) (on_battery = pause)".to_string()]
        );
        f.battery_percent = None;
        assert_eq!(
            reactions.judge(&f).paused_by.len(),
            1,
            "an unknown charge counts as low"
        );
        f.on_battery = false;
        f.battery_percent = Some(5.0);
        assert!(reactions.judge(&f).paused_by.is_empty(), "on mains");
    }
}
