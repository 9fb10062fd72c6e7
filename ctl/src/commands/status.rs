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

pub fn limit(ctx: &Ctx, rate: u64) -> anyhow::Result<u8> {
    let rate = ctx.backend.limit(rate)?;
    if ctx.json {
        print_json(&json!({ "rate_limit": rate }))?;
    } else {
        println!("{}", limit_line(rate));
    }
    Ok(exit::SUCCESS)
}
