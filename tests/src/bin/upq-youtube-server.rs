//! The YouTube conformance server as a process, for benchmarks and trying upq by hand:
//! prints `listening on <api_base> token <token>` and serves until it is killed.
//!
//! Usage: upq-youtube-server [--processing-polls N] [--daily-quota UNITS] [--insert-calls N]
//!        [--upload-limit N]

use upq_tests::youtube::{InsertQuota, YouTubeOptions, YouTubeServer};

const USAGE: &str = "usage: upq-youtube-server [--processing-polls N] [--daily-quota UNITS] \
                     [--insert-calls N] [--upload-limit N]";

fn main() {
    let mut options = YouTubeOptions::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().and_then(|v| v.parse::<u64>().ok());
        let small = value.and_then(|v| u32::try_from(v).ok());
        match (flag.as_str(), value, small) {
            ("--processing-polls", _, Some(n)) => options.processing_polls = n,
            ("--daily-quota", Some(units), _) => options.daily_quota = units,
            ("--insert-calls", Some(n), _) => options.insert_quota = InsertQuota::Calls(n),
            ("--upload-limit", _, Some(n)) => options.upload_limit = n,
            _ => {
                eprintln!("{USAGE}");
                std::process::exit(2);
            }
        }
    }
    let server = YouTubeServer::start(options);
    println!(
        "listening on {} token {}",
        server.api_base(),
        server.token()
    );
    loop {
        std::thread::park();
    }
}
