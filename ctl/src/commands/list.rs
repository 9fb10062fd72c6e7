//! `upqctl list` and `upqctl drafts`: tables of jobs.
//! With `--json`, the daemon's job objects as an array.

use chrono::Local;

use super::Ctx;
use crate::exit;
use crate::render::{drafts_table, jobs_table, JsonArray};

pub fn list(ctx: &Ctx, all: bool) -> anyhow::Result<u8> {
    if ctx.json {
        let mut out = JsonArray::stdout()?;
        ctx.backend
            .list_json(all, &mut |items| Ok(out.extend(&items)?))?;
        out.finish()?;
        return Ok(exit::SUCCESS);
    }
    let (jobs, _) = ctx.backend.list(all)?;
    if jobs.is_empty() && all {
        println!("no jobs");
    } else if jobs.is_empty() {
        println!("no active jobs (`upqctl list --all` shows finished ones)");
    } else {
        print!("{}", jobs_table(&jobs, &Local::now()));
    }
    Ok(exit::SUCCESS)
}

pub fn drafts(ctx: &Ctx) -> anyhow::Result<u8> {
    if ctx.json {
        let mut out = JsonArray::stdout()?;
        ctx.backend
            .drafts_json(&mut |items| Ok(out.extend(&items)?))?;
        out.finish()?;
        return Ok(exit::SUCCESS);
    }
    let (jobs, _) = ctx.backend.drafts()?;
    if jobs.is_empty() {
        println!("no drafts");
    } else {
        print!("{}", drafts_table(&jobs, &Local::now()));
    }
    Ok(exit::SUCCESS)
}
