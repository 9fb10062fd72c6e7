//! The desk's pages, rendered on the server. Every page works without JavaScript (forms
//! post and come back); `desk.js` adds the live updates and the countdowns.
//!
//! Pure rendering of views the service hands over, except the page handlers at the top,
//! which ask for them.

use axum::extract::{Extension, Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Local, Utc};
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;
use upq_proto::text::{compact_duration, human_size, human_speed, job_name, moved, progress_text};
use upq_proto::{JobState, JobView, PostView};

pub(super) use upq_proto::text::processing_text;

use super::files::{self, Added};
use super::{shown, Desk};
use crate::config::DestinationConfig;
use crate::service::desk::Session;
use crate::service::Service;

/// Cards shown at most on one page.
const PAGE_JOBS: usize = 200;

/// The desk's pages, as its navigation lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Page {
    Queue,
    Review,
    Drafts,
    History,
    Add,
    Accounts,
}

impl Page {
    const ALL: [Page; 6] = [
        Page::Queue,
        Page::Review,
        Page::Drafts,
        Page::History,
        Page::Add,
        Page::Accounts,
    ];

    pub fn path(self) -> &'static str {
        match self {
            Page::Queue => "/",
            Page::Review => "/review",
            Page::Drafts => "/drafts",
            Page::History => "/history",
            Page::Add => "/add",
            Page::Accounts => "/accounts",
        }
    }

    /// The page a path names; the queue for anything else.
    pub fn from_path(path: &str) -> Page {
        Page::ALL
            .into_iter()
            .find(|page| page.path() == path)
            .unwrap_or(Page::Queue)
    }

    fn name(self) -> &'static str {
        match self {
            Page::Queue => "queue",
            Page::Review => "review",
            Page::Drafts => "drafts",
            Page::History => "history",
            Page::Add => "add",
            Page::Accounts => "accounts",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Page::Queue => "Queue",
            Page::Review => "Review",
            Page::Drafts => "Drafts",
            Page::History => "History",
            Page::Add => "Add",
            Page::Accounts => "Accounts",
        }
    }

    /// The pages of job cards, by the name `/cards/{page}/{id}` uses.
    fn of_cards(name: &str) -> Option<Page> {
        [Page::Queue, Page::Review, Page::Drafts, Page::History]
            .into_iter()
            .find(|page| page.name() == name)
    }

    /// Whether a job in `state` has a card on this page.
    fn shows(self, state: JobState) -> bool {
        match self {
            Page::Queue => !state.is_terminal(),
            Page::Review => state == JobState::Held,
            Page::Drafts => state == JobState::Canceled,
            Page::History => matches!(state, JobState::Published | JobState::Failed),
            Page::Add | Page::Accounts => false,
        }
    }

    /// Newest first, except the queue, which runs oldest first.
    fn newest_first(self) -> bool {
        !matches!(self, Page::Queue | Page::Review)
    }
}

/// A whole page: navigation, the daemon's state in a line, and `content`.
fn layout(service: &Service, page: Page, session: &Session, content: Markup) -> Markup {
    let status = service.status();
    let held = status.counts.get("held").copied().unwrap_or(0);
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (page.title()) " · upq" }
                link rel="icon" href="/assets/icon.svg";
                link rel="stylesheet" href="/assets/desk.css";
                script src="/assets/desk.js" defer {}
            }
            body data-page=(page.name()) data-csrf=(session.csrf) {
                a.skip href="#main" { "Skip to the content" }
                header {
                    span.brand { "upq" }
                    nav aria-label="Sections" {
                        @for item in Page::ALL {
                            a href=(item.path()) aria-current=[(item == page).then_some("page")] {
                                (item.title())
                                @if item == Page::Review && held > 0 { " " span.count { (held) } }
                            }
                        }
                    }
                }
                (status_line(&status))
                main #main { (content) }
            }
        }
    }
}

/// The daemon's state in a line: what its jobs do, a paused queue, the rate and policies.
fn status_line(status: &upq_proto::StatusView) -> Markup {
    let active: Vec<String> = [
        "uploading",
        "queued",
        "retrying",
        "paused",
        "held",
        "processing",
    ]
    .into_iter()
    .filter_map(|state| {
        let count = status.counts.get(state).copied().unwrap_or(0);
        (count > 0).then(|| format!("{count} {state}"))
    })
    .collect();
    html! {
        p.daemon #daemon role="status" {
            @if active.is_empty() { "Nothing to do." } @else { (active.join(" · ")) }
            @if status.queue_paused { " · queue paused" }
            @if status.rate_limit > 0 { " · limit " (human_speed(status.rate_limit)) }
            @for effect in &status.policies { " · " (effect) }
        }
    }
}

/// `/status-line`: the line again, for the live updates.
pub(super) async fn status_line_part(State(desk): State<Desk>) -> Markup {
    status_line(&desk.service.status())
}

/// A page without the navigation: for answers outside a session, and short ones.
fn bare_page(title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · upq" }
                link rel="stylesheet" href="/assets/desk.css";
            }
            body { (content) }
        }
    }
}

/// A page that says no, with why.
pub(super) fn refusal(status: StatusCode, why: &str) -> Response {
    let page = bare_page(
        &status.as_u16().to_string(),
        html! {
            main #main.refusal {
                h1 { (status.canonical_reason().unwrap_or("Refused")) }
                p.error role="alert" { (why) }
                p { a href="/" { "Back to the queue" } }
            }
        },
    );
    (status, page).into_response()
}

/// What a browser without a session sees.
pub(super) fn sign_in_needed() -> Response {
    let page = bare_page(
        "Sign in",
        html! {
            main #main.refusal {
                h1 { "upq's desk" }
                p { "This browser is not signed in. In a terminal, run" }
                pre { code { "upqctl open" } }
                p { "It opens the desk signed in. " code { "upqctl open --no-browser" }
                    " prints a one-time address instead, to open within a minute." }
            }
        },
    );
    (StatusCode::UNAUTHORIZED, page).into_response()
}

/// A hidden field with the session's CSRF token, and where to come back.
fn form_fields(session: &Session, back: Page) -> Markup {
    html! {
        input type="hidden" name="csrf" value=(session.csrf);
        input type="hidden" name="back" value=(back.path());
    }
}

/// A button that posts `action` for job `id`.
fn action_button(session: &Session, back: Page, id: u64, action: &str, label: &str) -> Markup {
    html! {
        form.inline method="post" action={ "/jobs/" (id) "/" (action) } {
            (form_fields(session, back))
            button type="submit" data-action=(action) { (label) }
        }
    }
}

/// "in 5m 3s", "2m ago".
fn relative(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    match (at - now).num_seconds() {
        0 => "just now".to_owned(),
        seconds if seconds > 0 => format!("in {}", compact_duration(seconds as u64)),
        seconds => format!("{} ago", compact_duration(seconds.unsigned_abs())),
    }
}

fn local(at: DateTime<Utc>) -> String {
    at.with_timezone(&Local)
        .format("%a %e %b %H:%M")
        .to_string()
}

/// A time that counts down on the page.
fn countdown(at: DateTime<Utc>, now: DateTime<Utc>) -> Markup {
    html! {
        time.countdown datetime=(at.to_rfc3339()) title=(local(at)) { (relative(at, now)) }
    }
}

/// The state's reason, in words: "stalled (2×) …; retrying in 12s", "waiting: metered
/// connection", "held until you publish it".
fn reason(job: &JobView, now: DateTime<Utc>) -> Markup {
    let error = job.last_error.as_ref().map(|e| e.message.as_str());
    html! {
        @match job.state {
            JobState::Queued => {
                @if let Some(waiting) = &job.waiting { "waiting: " (waiting) }
                @else if let Some(at) = job.next_attempt_at { "starts " (countdown(at, now)) }
                @else { "waiting for a free upload slot" }
            }
            JobState::Uploading => {}
            JobState::Retrying => {
                @if job.stalls > 0 {
                    "stalled (" (job.stalls) "×)" @if let Some(e) = error { ": " (e) }
                    @if let Some(at) = job.next_attempt_at { "; retrying " (countdown(at, now)) }
                } @else if let Some(waiting) = &job.waiting {
                    "waiting: " (waiting) @if let Some(e) = error { " (" (e) ")" }
                } @else {
                    "retrying " @if let Some(at) = job.next_attempt_at { (countdown(at, now)) } @else { "now" }
                    @if let Some(e) = error { " (" (e) ")" }
                }
            }
            JobState::Paused => {
                "paused"
                @if job.bytes_sent > 0 { "; " (human_size(job.bytes_sent)) " safe at the destination" }
            }
            JobState::Held => {
                @if job.hold { "held until you publish it" }
                @else if let Some(at) = job.publish_at { "publishes " (countdown(at, now)) }
                @else { "held" }
            }
            JobState::Processing => {
                @if let Some(progress) = &job.processing_progress { "the platform is processing it: " (processing_text(progress)) }
                @else { "the destination is processing it" }
            }
            JobState::Publishing => { "making it public" }
            JobState::Published => { "published " (relative(job.updated_at, now)) }
            JobState::Failed => { (error.unwrap_or("failed")) }
            JobState::Canceled => { "canceled " (relative(job.updated_at, now)) "; kept in Drafts" }
        }
    }
}

/// The part of a card that follows the job: state, reason, progress and buttons.
fn live(session: &Session, page: Page, job: &JobView, now: DateTime<Utc>) -> Markup {
    let speed = job
        .speed
        .filter(|s| *s > 0 && job.state == JobState::Uploading);
    let eta = speed.map(|speed| {
        format!(
            "{} left",
            compact_duration((job.size - moved(job)).div_ceil(speed))
        )
    });
    let offers = |action: &str| job.actions.iter().any(|a| a == action);
    html! {
        div.live {
            p.state {
                span class={ "badge " (job.state.as_str()) } { (job.state.as_str()) }
                " "
                span.reason { (reason(job, now)) }
            }
            @if matches!(page, Page::Queue) || job.state == JobState::Uploading {
                progress max=(job.size.max(1)) value=(moved(job)) aria-label={ "Progress of " (job_name(job)) } {}
                p.figures {
                    span.progress-text { (progress_text(job)) }
                    " " span.speed { @if let Some(s) = speed { (human_speed(s)) } }
                    " " span.eta { @if let Some(eta) = &eta { (eta) } }
                }
            }
            @if let Some(warning) = &job.warning { p.warning { (warning) } }
            div.actions {
                @if offers("pause") { (action_button(session, page, job.id, "pause", "Pause")) }
                @if offers("resume") { (action_button(session, page, job.id, "resume", "Resume")) }
                @if offers("retry") { (action_button(session, page, job.id, "retry", "Retry")) }
                @if offers("publish") { (action_button(session, page, job.id, "publish", "Publish")) }
                @if offers("recover") { (action_button(session, page, job.id, "recover", "Recover")) }
                @if offers("discard") { (action_button(session, page, job.id, "discard", "Discard")) }
                @if offers("cancel") {
                    a.button.danger href={ "/jobs/" (job.id) "/cancel?back=" (page.path()) } data-action="cancel" { "Cancel…" }
                }
                @if matches!(page, Page::History | Page::Drafts) {
                    a.button href={ "/jobs/" (job.id) } { "History" }
                }
            }
        }
    }
}

/// The kind of a destination, as its config says.
fn kind_of(service: &Service, destination: &str) -> Option<&'static str> {
    Some(match service.config().destinations.get(destination)? {
        DestinationConfig::Dir { .. } => "dir",
        DestinationConfig::Tus { .. } => "tus",
        DestinationConfig::Tiktok(_) => "tiktok",
        DestinationConfig::Youtube(_) => "youtube",
    })
}

/// Where the published upload is, where that is a post or a file to show: a tus upload's
/// address is a credential of sorts and stays off the page.
fn published_at(service: &Service, job: &JobView) -> Option<Markup> {
    let remote = job.remote.as_deref()?;
    match kind_of(service, &job.destination)? {
        "youtube" | "tiktok" if remote.starts_with("https://") => Some(html! {
            a href=(remote) rel="noreferrer noopener" target="_blank" { (remote) }
        }),
        "dir" => Some(html! { code { (remote) } }),
        _ => None,
    }
}

/// The review part of a held job's card: the video, the schedule and the words.
fn review_part(service: &Service, session: &Session, job: &JobView, now: DateTime<Utc>) -> Markup {
    // A job that cannot be read offers nothing to edit, and says why.
    let editable = service
        .editable(job.id)
        .unwrap_or_else(|e| crate::service::Editable {
            fields: &[],
            why_not: Some(e.message),
        });
    let can = |field: &str| editable.fields.contains(&field);
    let any = ["title", "caption", "privacy"].iter().any(|f| can(f));
    html! {
        div.review {
            video controls preload="metadata" src={ "/preview/" (job.id) } aria-label={ "Preview of " (job_name(job)) } {}
            dl {
                dt { "Destination" } dd { (job.destination) }
                dt { "Privacy" } dd { (job.metadata.privacy.as_deref().unwrap_or("the destination's default")) }
                dt { "Publishes" } dd {
                    @if job.hold { "when you press Publish" }
                    @else if let Some(at) = job.publish_at { (local(at)) " (" (countdown(at, now)) ")" }
                    @else { "when the review ends" }
                }
                @if let Some(url) = &job.review_url {
                    dt { "On the platform" } dd { a href=(url) rel="noreferrer noopener" target="_blank" { "look at it there" } }
                }
            }
            form.edit method="post" action={ "/jobs/" (job.id) "/edit" } {
                (form_fields(session, Page::Review))
                label { "Title" input name="title" value=[job.metadata.title.as_deref()] disabled[!can("title")]; }
                label { "Caption" textarea name="caption" rows="3" disabled[!can("caption")] { (job.metadata.caption.as_deref().unwrap_or("")) } }
                label { "Privacy" input name="privacy" value=[job.metadata.privacy.as_deref()] disabled[!can("privacy")] list="privacies"; }
                @if let Some(why) = &editable.why_not {
                    p.note { (why) }
                }
                @if any { button type="submit" data-action="edit" { "Save changes" } }
            }
        }
    }
}

/// One job's card, as `page` shows it.
fn job_card(service: &Service, session: &Session, page: Page, job: &JobView) -> Markup {
    let now = Utc::now();
    html! {
        article.job id={ "job-" (job.id) } data-id=(job.id) data-state=(job.state.as_str()) {
            h3 { (job_name(job)) }
            p.meta {
                "#" (job.id) " · " (job.destination) " · " (human_size(job.size))
                @if let Some(post) = job.post { " · post " (post) }
            }
            @if page == Page::Review { (review_part(service, session, job, now)) }
            @if matches!(page, Page::Drafts) {
                dl {
                    dt { "File" } dd { code { (job.file) } }
                    dt { "Caption" } dd { (job.metadata.caption.as_deref().unwrap_or("-")) }
                    dt { "Privacy" } dd { (job.metadata.privacy.as_deref().unwrap_or("-")) }
                }
            }
            @if page == Page::History {
                @if let Some(link) = published_at(service, job) { p { "At " (link) } }
            }
            (live(session, page, job, now))
        }
    }
}

/// What was read, or nothing with the reason kept in `trouble` (and logged).
fn read_or_say<T>(
    read: Result<Vec<T>, crate::service::ServiceError>,
    trouble: &mut Option<String>,
) -> Vec<T> {
    read.unwrap_or_else(|e| {
        tracing::error!(error = %e, "the desk cannot read the queue");
        *trouble = Some(e.message);
        Vec::new()
    })
}

/// The cards of `page`, posts first on the queue.
fn cards_page(service: &Service, session: &Session, page: Page) -> Markup {
    // A queue that cannot be read is said, not shown as an empty one.
    let mut trouble = None;
    let jobs = read_or_say(
        service.views_where(page.newest_first(), PAGE_JOBS, |state| page.shows(state)),
        &mut trouble,
    );
    let posts: Vec<PostView> = if page == Page::Queue {
        read_or_say(service.list_posts(false, None, Some(50)), &mut trouble)
    } else {
        Vec::new()
    };
    let empty = match page {
        Page::Queue => "Nothing is uploading. Add a video, or run upqctl add FILE.",
        Page::Review => "Nothing waits for review. Add with Hold, or a publish time, to review before it goes public.",
        Page::Drafts => "No drafts. A canceled upload lands here with its title, caption and privacy.",
        _ => "Nothing has finished yet.",
    };
    html! {
        h1 { (page.title()) }
        @if let Some(trouble) = &trouble {
            p.error role="alert" { "The queue could not be read: " (trouble) }
        }
        @if page == Page::Review {
            datalist #privacies { option value="public"; option value="unlisted"; option value="private"; }
        }
        @for post in &posts {
            section.post aria-label={ "Post " (post.id) } {
                h2 { "Post " (post.id) ": " (post.title.as_deref().unwrap_or(upq_proto::text::file_name(&post.file))) " · " (post.state.as_str()) }
                div.actions {
                    @if post.jobs.iter().any(|job| job.actions.iter().any(|a| a == "publish")) {
                        form.inline method="post" action={ "/posts/" (post.id) "/publish" } {
                            (form_fields(session, page))
                            button type="submit" data-action="publish-post" { "Publish all" }
                        }
                    }
                }
            }
        }
        p.empty hidden[!jobs.is_empty()] { (empty) }
        div #jobs.jobs {
            @for job in &jobs { (job_card(service, session, page, job)) }
        }
        @if jobs.len() == PAGE_JOBS { p.note { "Showing the first " (PAGE_JOBS) "; upqctl list shows all." } }
    }
}

/// A page of job cards: the queue, the review desk, the drafts or the history.
pub(super) async fn cards(desk: State<Desk>, session: Extension<Session>, page: Page) -> Markup {
    let (State(desk), Extension(session)) = (desk, session);
    let content = cards_page(&desk.service, &session, page);
    layout(&desk.service, page, &session, content)
}

/// `/cards/{page}/{id}`: one card, for the live updates; 204 when the job left the page.
pub(super) async fn card(
    State(desk): State<Desk>,
    Extension(session): Extension<Session>,
    UrlPath((page, id)): UrlPath<(String, u64)>,
) -> Response {
    let Some(page) = Page::of_cards(&page) else {
        return refusal(StatusCode::NOT_FOUND, "no such page");
    };
    match desk.service.show(id) {
        Ok(job) if page.shows(job.state) => {
            job_card(&desk.service, &session, page, &job).into_response()
        }
        _ => StatusCode::NO_CONTENT.into_response(),
    }
}

/// `/jobs/{id}`: one job with its whole history.
pub(super) async fn job_page(
    State(desk): State<Desk>,
    Extension(session): Extension<Session>,
    UrlPath(id): UrlPath<u64>,
) -> Response {
    let job = match shown(&desk, id) {
        Ok(job) => job,
        Err(refused) => return *refused,
    };
    let page = if job.state.is_terminal() {
        Page::History
    } else {
        Page::Queue
    };
    let content = html! {
        h1 { (job_name(&job)) }
        (job_card(&desk.service, &session, page, &job))
        h2 { "History" }
        table.history {
            thead { tr { th { "When" } th { "From" } th { "To" } th { "Why" } } }
            tbody {
                @for entry in job.history.iter().flatten() {
                    tr {
                        td { (local(entry.at)) }
                        td { (entry.from.map(|s| s.as_str()).unwrap_or("-")) }
                        td { (entry.to.as_str()) }
                        td { (entry.reason) }
                    }
                }
            }
        }
    };
    layout(&desk.service, page, &session, content).into_response()
}

#[derive(Deserialize)]
pub(super) struct Back {
    #[serde(default)]
    back: String,
}

/// What canceling does at the destination, in words.
fn remote_effect(service: &Service, job: &JobView) -> &'static str {
    if job.bytes_sent == 0 && job.state != JobState::Held {
        return "Nothing has reached the destination yet.";
    }
    match kind_of(service, &job.destination) {
        Some("dir") => "The partial copy in the destination folder is removed.",
        Some("tus") => {
            "The partial upload is deleted from the tus server, where the server allows it."
        }
        Some("tiktok") => "The upload at TikTok is abandoned before anything is posted.",
        Some("youtube") => {
            "The private video uploaded so far is deleted from the channel; nothing was public."
        }
        _ => "What was sent stays at the destination.",
    }
}

/// `/jobs/{id}/cancel`: asks before a cancel, and says what it does.
pub(super) async fn cancel_page(
    State(desk): State<Desk>,
    Extension(session): Extension<Session>,
    UrlPath(id): UrlPath<u64>,
    Query(back): Query<Back>,
) -> Response {
    let job = match shown(&desk, id) {
        Ok(job) => job,
        Err(refused) => return *refused,
    };
    let back = Page::from_path(&back.back);
    let content = html! {
        h1 { "Cancel “" (job_name(&job)) "”?" }
        @if job.actions.iter().any(|a| a == "cancel") {
            p { "The job goes to " a href="/drafts" { "Drafts" } " with its title, caption and privacy; Recover puts it back in the queue. Your file is not touched." }
            p { (remote_effect(&desk.service, &job)) }
            div.actions {
                form.inline method="post" action={ "/jobs/" (id) "/cancel" } {
                    (form_fields(&session, back))
                    button.danger type="submit" data-action="confirm-cancel" autofocus { "Cancel the upload" }
                }
                a.button href=(back.path()) { "Keep it" }
            }
        } @else {
            p.error { "A " (job.state.as_str()) " job cannot be canceled." }
            a.button href=(back.path()) { "Back" }
        }
    };
    layout(&desk.service, back, &session, content).into_response()
}

#[derive(Deserialize)]
pub(super) struct Browse {
    #[serde(default)]
    dir: String,
    #[serde(default)]
    file: Option<String>,
}

/// `/add`: a file from the videos folder, then where and how.
pub(super) async fn add_page(
    State(desk): State<Desk>,
    Extension(session): Extension<Session>,
    Query(browse): Query<Browse>,
) -> Markup {
    let service = &desk.service;
    let root = super::videos_dir();
    let listing = files::list_folder(&browse.dir);
    let parent = browse
        .dir
        .trim_matches('/')
        .rsplit_once('/')
        .map(|(parent, _)| parent.to_owned())
        .unwrap_or_default();
    let default_destination = service.config().daemon.default_destination.clone();
    let content = html! {
        h1 { "Add" }
        p { "From " code { (root.display()) } @if !browse.dir.is_empty() { " / " code { (browse.dir) } } }
        @if let Some(file) = &browse.file {
            form.add method="post" action="/add" {
                input type="hidden" name="csrf" value=(session.csrf);
                input type="hidden" name="file" value=(file);
                p { "File: " code { (file) } }
                fieldset {
                    legend { "Destinations" }
                    @for name in service.status().destinations {
                        label.check { input type="checkbox" name="to" value=(name) checked[name == default_destination]; " " (name) }
                    }
                }
                label { "Title" input name="title"; }
                label { "Caption" textarea name="caption" rows="3" {} }
                label { "Privacy" input name="privacy" list="privacies" placeholder="the destination's default"; }
                datalist #privacies { option value="public"; option value="unlisted"; option value="private"; }
                label.check { input type="checkbox" name="hold"; " Hold for review (publish from the Review page)" }
                label { "Publish at (optional)" input type="datetime-local" name="publish_at"; }
                div.actions { button type="submit" data-action="add" { "Queue it" } }
            }
        }
        @match &listing {
            Ok((entries, more)) => {
                ul.files {
                    @if !browse.dir.is_empty() { li { a href={ "/add?dir=" (urlencode(&parent)) } { "↑ up" } } }
                    @for entry in entries {
                        li {
                            @if entry.folder {
                                a href={ "/add?dir=" (urlencode(&entry.relative)) } { (entry.name) "/" }
                            } @else {
                                a href={ "/add?dir=" (urlencode(&browse.dir)) "&file=" (urlencode(&entry.relative)) } { (entry.name) }
                                " " span.size { (human_size(entry.size)) }
                            }
                        }
                    }
                }
                @if *more { p.note { "More files than shown; choose a folder below, or use upqctl add." } }
            }
            Err(why) => { p.error { (why) } }
        }
    };
    layout(service, Page::Add, &session, content)
}

/// Percent-encodes a query value.
fn urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// After an add: what was queued, and the warnings `add` would print.
pub(super) fn added(added: &Added) -> Response {
    bare_page(
        "Queued",
        html! {
            main #main {
                h1 { "Queued" }
                @if let Some(post) = added.post { p { "Post " (post) " with " (added.jobs.len()) " jobs." } }
                ul {
                    @for job in &added.jobs {
                        li { "#" (job.id) " to " (job.destination) ": " (job_name(job))
                            @if let Some(warning) = &job.warning { p.warning { (warning) } } }
                    }
                }
                p { a.button href="/" { "To the queue" } " " a.button href="/add" { "Add another" } }
            }
        },
    )
    .into_response()
}

/// `/accounts`: each destination's sign-in, with Sign in and Sign out.
pub(super) async fn accounts(
    State(desk): State<Desk>,
    Extension(session): Extension<Session>,
) -> Markup {
    let accounts = desk.service.accounts().await;
    let content = html! {
        h1 { "Accounts" }
        @if accounts.is_empty() {
            p.empty { "No destination signs in. TikTok and YouTube destinations with a client_key or client_id do." }
        }
        @for account in &accounts {
            article.account {
                h3 { (account.destination) " · " (account.provider) }
                p { span class={ "badge " (account.state) } { (account.state.replace('_', " ")) }
                    @if let Some(name) = &account.display_name { " as " (name) } }
                @if !account.missing_scopes.is_empty() {
                    p.warning { "Not granted: " (account.missing_scopes.join(", ")) }
                }
                @if let Some(at) = account.refresh_expires_at { p.note { "Sign-in lasts until " (local(at)) } }
                div.actions {
                    @if account.state != "manual" {
                        form.inline method="post" action={ "/accounts/" (urlencode(&account.destination)) "/login" } {
                            (form_fields(&session, Page::Accounts))
                            button type="submit" data-action="login" { @if account.state == "signed_in" { "Sign in again" } @else { "Sign in" } }
                        }
                    }
                    @if account.state == "signed_in" {
                        form.inline method="post" action={ "/accounts/" (urlencode(&account.destination)) "/logout" } {
                            (form_fields(&session, Page::Accounts))
                            button.danger type="submit" data-action="logout" { "Sign out" }
                        }
                    }
                }
            }
        }
    };
    layout(&desk.service, Page::Accounts, &session, content)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(state: &str, extra: serde_json::Value) -> JobView {
        let mut value = serde_json::json!({
            "id": 7, "file": "/v/clip.mp4", "destination": "tus", "state": state,
            "size": 100 * 1024 * 1024, "bytes_sent": 20 * 1024 * 1024, "attempts": 1,
            "last_error": null, "next_attempt_at": null, "publish_at": null,
            "created_at": "2026-12-03T10:00:00Z", "updated_at": "2026-12-03T10:00:00Z",
            "metadata": {}, "remote": null, "content_hash": null, "speed": null,
            "warning": null,
        });
        for (key, field) in extra.as_object().unwrap() {
            value[key] = field.clone();
        }
        serde_json::from_value(value).unwrap()
    }

    fn said(job: &JobView) -> String {
        let now = "2026-12-03T10:00:00Z".parse().unwrap();
        reason(job, now).into_string()
    }

    #[test]
    fn each_state_says_why_in_words() {
        let error = |message: &str| serde_json::json!({ "kind": "transient", "message": message });
        let in_12s = "2026-12-03T10:00:12Z";
        let retrying = job(
            "retrying",
            serde_json::json!({ "last_error": error("HTTP 503"), "next_attempt_at": in_12s }),
        );
        assert!(
            said(&retrying).starts_with("retrying <time"),
            "{}",
            said(&retrying)
        );
        assert!(
            said(&retrying).contains(">in 12s</time> (HTTP 503)"),
            "{}",
            said(&retrying)
        );
        let stalled = job(
            "retrying",
            serde_json::json!({
                "stalls": 2, "last_error": error("no progress for 34s"), "next_attempt_at": in_12s,
            }),
        );
        assert!(said(&stalled).starts_with("stalled (2×): no progress for 34s; retrying"));
        let waiting = job(
            "queued",
            serde_json::json!({ "waiting": "metered connection" }),
        );
        assert_eq!(said(&waiting), "waiting: metered connection");
        let paused = job("paused", serde_json::json!({}));
        assert_eq!(said(&paused), "paused; 20 MiB safe at the destination");
        let held = job("held", serde_json::json!({ "hold": true }));
        assert_eq!(said(&held), "held until you publish it");
        let failed = job(
            "failed",
            serde_json::json!({ "last_error": error("gone <b>") }),
        );
        assert_eq!(said(&failed), "gone &lt;b&gt;", "escaped");
    }
}
