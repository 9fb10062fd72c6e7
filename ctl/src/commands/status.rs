//! `upqctl status` and `upqctl limit RATE`: the daemon itself.
//! With `--json`, the status object or `{"rate_limit": N}`.

use serde_json::json;

use super::Ctx;
use crate::exit;
use crate::render::{limit_line, print_json, status_text};

pub fn status(ctx: &Ctx) -> anyhow::Result<u8> {
    let (status, data) = ctx.backend.status()?;
    if ctx.json {
        print_json(&data)?;
    } else {
        print!("{}", status_text(&status));
    }
    Ok(exit::SUCCESS)
}

pub fn limit(ctx: &Ctx, rate: u64, until: Option<std::time::Duration>) -> anyhow::Result<u8> {
    let rate = ctx.backend.limit(rate, until)?;
    // When it gives way to the configured rate, as the daemon says.
    let (status, _) = ctx.backend.status()?;
    if ctx.json {
        let mut answer = json!({ "rate_limit": rate });
        if let Some(until) = status.rate_limit_until {
            answer["rate_limit_until"] = json!(until);
        }
        print_json(&answer)?;
    } else {
        match status.rate_limit_until {
            Some(at) => println!(
                "{} until {}",
                limit_line(rate),
                at.with_timezone(&chrono::Local).format("%a %H:%M")
            ),
            None => println!("{}", limit_line(rate)),
        }
    }
    Ok(exit::SUCCESS)
}
