//! The TikTok conformance server as a process, for benchmarks and trying upq by hand:
//! prints `listening on <api_base> token <token>` and serves until it is killed.
//!
//! Usage: upq-tiktok-server [--processing-polls N] [--max-pending-shares N]

use upq_tests::tiktok::{TikTokOptions, TikTokServer};

fn main() {
    let mut options = TikTokOptions::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().and_then(|v| v.parse::<u32>().ok());
        match (flag.as_str(), value) {
            ("--processing-polls", Some(n)) => options.processing_polls = n,
            ("--max-pending-shares", Some(n)) => options.max_pending_shares = n,
            _ => {
                eprintln!(
                    "usage: upq-tiktok-server [--processing-polls N] [--max-pending-shares N]"
                );
                std::process::exit(2);
            }
        }
    }
    let server = TikTokServer::start(options);
    println!(
        "listening on {} token {}",
        server.api_base(),
        server.token()
    );
    loop {
        std::thread::park();
    }
}
