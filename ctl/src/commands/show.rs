//! `upqctl show ID`: one job's fields and its history, or a post (`pN`) with its jobs.
//! With `--json`, the daemon's job object, history included, or its post object.

use chrono::Local;

use super::{Ctx, Target};
use crate::exit;
use crate::render::{job_details, jobs_table, print_json, short_time, Style};

pub fn run(ctx: &Ctx, target: Target) -> anyhow::Result<u8> {
    let id = match target {
        Target::Job(id) => id,
        Target::Post(id) => return run_post(ctx, id),
    };
    let (job, data) = ctx.backend.show(id)?;
    if ctx.json {
        print_json(&data)?;
    } else {
        print!("{}", job_details(&job, &Local::now(), ctx.paint));
    }
    Ok(exit::SUCCESS)
}

/// `upqctl edit ID --title/--caption/--privacy`: the job as it is afterwards, as `show`
/// prints it.
pub fn edit(ctx: &Ctx, request: upq_proto::EditRequest) -> anyhow::Result<u8> {
    if request.is_empty() {
        anyhow::bail!("say what to change: --title, --caption or --privacy");
    }
    let (job, data) = ctx.backend.edit(request)?;
    if ctx.json {
        print_json(&data)?;
    } else {
        print!("{}", job_details(&job, &Local::now(), ctx.paint));
    }
    Ok(exit::SUCCESS)
}

fn run_post(ctx: &Ctx, id: upq_proto::PostId) -> anyhow::Result<u8> {
    let (post, data) = ctx.backend.show_post(id)?;
    if ctx.json {
        print_json(&data)?;
        return Ok(exit::SUCCESS);
    }
    let now = Local::now();
    let lines = [
        ("post", post.id.to_string()),
        (
            "state",
            ctx.paint
                .style(Style::of_post_state(post.state), post.state.as_str()),
        ),
        ("file", post.file.clone()),
        ("title", post.title.clone().unwrap_or_else(|| "-".into())),
        (
            "all or nothing",
            if post.all_or_nothing { "yes" } else { "no" }.to_string(),
        ),
        (
            "released",
            post.released_at
                .map_or_else(|| "-".to_string(), |at| short_time(&at, &now)),
        ),
        ("created", short_time(&post.created_at, &now)),
    ];
    for (key, value) in lines {
        println!("{key:<16}{value}");
    }
    println!();
    print!("{}", jobs_table(&post.jobs, &now, ctx.paint));
    Ok(exit::SUCCESS)
}
