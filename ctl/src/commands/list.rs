//! `upqctl list` and `upqctl drafts`: tables of jobs.
//! The jobs of a post are grouped under a line naming it (its state as far as the jobs
//! listed tell). With `--json`, the daemon's job objects as an array, each job of a post
//! with its `post`. `list --posts` lists posts instead, each with all of its jobs; with
//! `--json` the daemon's post views as an array.

use chrono::Local;

use super::Ctx;
use crate::exit;
use upq_proto::{JobView, PostId, PostState};

use crate::render::{drafts_table, job_name, jobs_table, JsonArray, Paint, Style};

pub fn list(ctx: &Ctx, all: bool, posts: bool) -> anyhow::Result<u8> {
    if posts {
        return list_posts(ctx, all);
    }
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
        let now = Local::now();
        print!(
            "{}",
            grouped(jobs, ctx.paint, |jobs| jobs_table(jobs, &now, ctx.paint))
        );
    }
    Ok(exit::SUCCESS)
}

fn list_posts(ctx: &Ctx, all: bool) -> anyhow::Result<u8> {
    let (posts, json) = ctx.backend.list_posts(all)?;
    if ctx.json {
        crate::render::print_json(&json)?;
    } else if posts.is_empty() && all {
        println!("no posts");
    } else if posts.is_empty() {
        println!("no active posts (`upqctl list --posts --all` shows finished ones)");
    } else {
        let now = Local::now();
        let tables: Vec<String> = posts
            .iter()
            .map(|post| {
                let name = post.title.clone().unwrap_or_else(|| {
                    let file = std::path::Path::new(&post.file);
                    file.file_name()
                        .unwrap_or(file.as_os_str())
                        .to_string_lossy()
                        .into_owned()
                });
                format!(
                    "post {} ({}): {name}\n{}",
                    post.id,
                    ctx.paint
                        .style(Style::of_post_state(post.state), post.state.as_str()),
                    jobs_table(&post.jobs, &now, ctx.paint)
                )
            })
            .collect();
        print!("{}", tables.join("\n"));
    }
    Ok(exit::SUCCESS)
}

/// The jobs of no post in one table, then each post's jobs under a line naming the post,
/// in the order the posts first appear.
fn grouped(jobs: Vec<JobView>, paint: Paint, table: impl Fn(&[JobView]) -> String) -> String {
    let mut loose = Vec::new();
    let mut posts: Vec<(PostId, Vec<JobView>)> = Vec::new();
    for job in jobs {
        match job.post {
            None => loose.push(job),
            Some(post) => match posts.iter_mut().find(|(id, _)| *id == post) {
                Some((_, members)) => members.push(job),
                None => posts.push((post, vec![job])),
            },
        }
    }
    let mut out = String::new();
    if !loose.is_empty() {
        out.push_str(&table(&loose));
    }
    for (post, members) in posts {
        if !out.is_empty() {
            out.push('\n');
        }
        let states: Vec<_> = members.iter().map(|job| job.state).collect();
        let name = members[0]
            .metadata
            .title
            .clone()
            .unwrap_or_else(|| job_name(&members[0]).to_string());
        let state = PostState::of(&states);
        out.push_str(&format!(
            "post {post} ({}): {name}\n",
            paint.style(Style::of_post_state(state), state.as_str())
        ));
        out.push_str(&table(&members));
    }
    out
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
        let now = Local::now();
        print!(
            "{}",
            grouped(jobs, ctx.paint, |jobs| drafts_table(jobs, &now, ctx.paint))
        );
    }
    Ok(exit::SUCCESS)
}
