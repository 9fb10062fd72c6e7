//! Human views of the daemon itself: `status` and the answer to `limit`.
//! Pure functions of the status view.

use upq_proto::{JobState, StatusView};

use super::{compact_duration, human_rate_limit};

/// Counts of the states that have jobs, in contract order: "2 uploading, 5 queued".
fn counts_text(status: &StatusView) -> String {
    let known = JobState::ALL.iter().map(|state| state.as_str());
    // States a newer daemon may add come after the known ones.
    let unknown = status
        .counts
        .keys()
        .map(String::as_str)
        .filter(|name| JobState::ALL.iter().all(|state| state.as_str() != *name));
    let parts: Vec<String> = known
        .chain(unknown)
        .filter_map(|name| match status.counts.get(name) {
            Some(&count) if count > 0 => Some(format!("{count} {name}")),
            _ => None,
        })
        .collect();
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    }
}

/// What the daemon believes about the machine, each with who said it, and what the
/// policies do about it. Nothing from a daemon that does not report it.
fn system_lines(status: &StatusView) -> Vec<(&'static str, String)> {
    let system = &status.system;
    if system.metered_source.is_empty() {
        return Vec::new();
    }
    let yes_no = |yes: bool| if yes { "yes" } else { "no" };
    let battery = match (system.on_battery, system.battery_percent) {
        (true, Some(percent)) => format!("on battery, {}%", percent.floor()),
        (true, None) => "on battery".to_owned(),
        (false, _) => "on mains power".to_owned(),
    };
    let policies = match status.policies.as_slice() {
        [] => "nothing held back or slowed".to_owned(),
        effects => effects.join("; "),
    };
    vec![
        (
            "metered",
            format!("{} ({})", yes_no(system.metered), system.metered_source),
        ),
        ("battery", format!("{battery} ({})", system.battery_source)),
        (
            "connectivity",
            format!("{} ({})", system.connectivity, system.connectivity_source),
        ),
        ("policies", policies),
    ]
}

/// `status`: one `key  value` line per fact.
pub fn status_text(status: &StatusView) -> String {
    let destinations = if status.destinations.is_empty() {
        "none".to_owned()
    } else {
        status.destinations.join(", ")
    };
    let lines = [
        (
            "upqd",
            format!(
                "{} (protocol {}), pid {}, up {}",
                status.version,
                status.protocol,
                status.pid,
                compact_duration(status.uptime_secs)
            ),
        ),
        ("jobs", counts_text(status)),
        ("max active", status.max_active.to_string()),
        (
            "rate limit",
            match status.rate_limit_until {
                Some(at) => format!(
                    "{} (set by `upqctl limit`, until {})",
                    human_rate_limit(status.rate_limit),
                    at.with_timezone(&chrono::Local).format("%a %H:%M")
                ),
                None => human_rate_limit(status.rate_limit),
            },
        ),
        (
            "queue paused",
            if status.queue_paused { "yes" } else { "no" }.to_owned(),
        ),
        ("destinations", destinations),
        ("socket", status.socket.clone()),
        (
            "desk",
            match &status.web_url {
                Some(url) => format!("{url} (`upqctl open` signs a browser in)"),
                None => "off".to_owned(),
            },
        ),
        ("data dir", status.data_dir.clone()),
        ("quarantined", status.quarantined.to_string()),
    ];
    let mut text: String = lines
        .iter()
        .chain(&system_lines(status))
        .map(|(key, value)| format!("{key:<14}{value}\n"))
        .collect();
    if !status.lost.is_empty() {
        text.push_str(&format!(
            "lost          {} jobs the queue database no longer has:\n",
            status.lost.len()
        ));
        for job in &status.lost {
            let title = job
                .title
                .as_ref()
                .map(|title| format!(" \"{title}\""))
                .unwrap_or_default();
            text.push_str(&format!("  {} {}{title}\n", job.id, job.file));
        }
    }
    text
}

/// The answer to `limit`.
pub fn limit_line(rate: u64) -> String {
    if rate == 0 {
        "rate limit: none".to_owned()
    } else {
        format!("rate limit: {}", human_rate_limit(rate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn status() -> StatusView {
        let counts = JobState::ALL
            .iter()
            .map(|state| (state.as_str().to_owned(), 0))
            .collect();
        StatusView {
            version: "0.1.0".into(),
            protocol: 1,
            pid: 4242,
            started_at: Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap(),
            uptime_secs: 2 * 3600 + 3 * 60,
            counts,
            max_active: 2,
            rate_limit: 0,
            rate_limit_until: None,
            queue_paused: false,
            destinations: vec!["local".into(), "vimeo".into()],
            data_dir: "/home/me/.local/share/upq".into(),
            socket: "/run/user/1000/upq/upqd.sock".into(),
            quarantined: 0,
            lost: Vec::new(),
            system: upq_proto::SystemView::default(),
            policies: Vec::new(),
            web_url: Some("http://127.0.0.1:43117/".into()),
        }
    }

    #[test]
    fn an_idle_daemon() {
        assert_eq!(
            status_text(&status()),
            "\
upqd          0.1.0 (protocol 1), pid 4242, up 2h 3m
jobs          none
max active    2
rate limit    none
queue paused  no
destinations  local, vimeo
socket        /run/user/1000/upq/upqd.sock
desk          http://127.0.0.1:43117/ (`upqctl open` signs a browser in)
data dir      /home/me/.local/share/upq
quarantined   0
"
        );
    }

    #[test]
    fn a_damaged_store_shows_quarantined_records_and_lost_jobs() {
        let mut damaged = status();
        damaged.quarantined = 2;
        damaged.lost = vec![upq_proto::LostJob {
            id: 7,
            file: "/v/clip.mp4".into(),
            title: Some("My clip".into()),
            noticed_at: Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap(),
        }];
        let text = status_text(&damaged);
        assert!(text.contains("quarantined   2\n"), "{text}");
        assert!(
            text.contains("lost          1 jobs the queue database no longer has:\n  7 /v/clip.mp4 \"My clip\"\n"),
            "{text}"
        );
    }

    #[test]
    fn a_busy_daemon_lists_non_zero_counts_in_state_order() {
        let mut busy = status();
        busy.counts.insert("queued".into(), 5);
        busy.counts.insert("uploading".into(), 2);
        busy.counts.insert("failed".into(), 1);
        busy.counts.insert("frozen".into(), 3);
        busy.rate_limit = 4 * 1024 * 1024;
        busy.queue_paused = true;
        let text = status_text(&busy);
        assert!(
            text.contains("jobs          5 queued, 2 uploading, 1 failed, 3 frozen\n"),
            "{text}"
        );
        assert!(text.contains("rate limit    4 MiB/s\n"), "{text}");
        assert!(text.contains("queue paused  yes\n"), "{text}");
    }

    #[test]
    fn what_the_daemon_believes_and_does_about_it() {
        let mut status = status();
        status.system = upq_proto::SystemView {
            metered: true,
            metered_source: "NetworkManager".into(),
            on_battery: true,
            battery_percent: Some(14.6),
            battery_source: "UPower".into(),
            connectivity: "full".into(),
            connectivity_source: "NetworkManager".into(),
        };
        status.policies = vec!["uploads wait: metered connection (on_metered = pause)".into()];
        let text = status_text(&status);
        for line in [
            "metered       yes (NetworkManager)\n",
            "battery       on battery, 14% (UPower)\n",
            "connectivity  full (NetworkManager)\n",
            "policies      uploads wait: metered connection (on_metered = pause)\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        status.policies.clear();
        assert!(status_text(&status).contains("policies      nothing held back or slowed\n"));
    }

    #[test]
    fn limits() {
        assert_eq!(limit_line(0), "rate limit: none");
        assert_eq!(limit_line(500 * 1024), "rate limit: 500 KiB/s");
    }
}
