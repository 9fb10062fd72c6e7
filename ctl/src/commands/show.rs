//! `upqctl show ID`: one job's fields and its history.
//! With `--json`, the daemon's job object, history included.

use chrono::Local;

use super::Ctx;
use crate::exit;
use crate::render::{job_details, print_json};

pub fn run(ctx: &Ctx, id: u64) -> anyhow::Result<u8> {
    let (job, data) = ctx.backend.show(id)?;
    if ctx.json {
        print_json(&data)?;
    } else {
        print!("{}", job_details(&job, &Local::now()));
    }
    Ok(exit::SUCCESS)
}
