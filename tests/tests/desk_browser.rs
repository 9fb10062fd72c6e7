//! The desk in a real browser: headless Chromium over WebDriver, against the real upqd.
//! What a person does on the pages, checked against the daemon's own account of it
//! (`upqctl`) after each step. Screenshots of each page go to `target/desk-screenshots`.

use std::time::Duration;

use fantoccini::key::Key;
use fantoccini::Locator;
use upq_tests::desk::{serve_html, sign_in_url, Browser};
use upq_tests::video::{make_video, VideoSpec};
use upq_tests::{hash_file, wait_for, JobState, OutputExt, SourceFile, TestEnv, MIB};

const WAIT: Duration = Duration::from_secs(30);

/// Waits for job `id`'s state to be what `wanted` accepts; on a timeout, says what the
/// browser shows.
async fn expect_state(
    browser: &Browser,
    env: &TestEnv,
    id: u64,
    what: &str,
    wanted: impl Fn(JobState) -> bool,
) -> JobState {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let state = env.job(id).state;
        if wanted(state) {
            return state;
        }
        if std::time::Instant::now() > deadline {
            let url = browser.client.current_url().await.map(|u| u.to_string());
            let text = browser.eval("return document.body.innerText").await;
            panic!("job {id} is {state:?}, not {what}; the browser is at {url:?} showing:\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs the browser part of a test on a runtime of its own; the servers and daemons of
/// the test live outside it.
fn in_browser<F: std::future::Future<Output = ()>>(steps: F) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(steps)
}

/// Presses Tab until the focus is on `[data-action=action]` inside `#job-<id>`; the page
/// must be usable with the keyboard alone.
async fn tab_to(browser: &Browser, id: u64, action: &str) {
    let script = format!(
        "const a = document.activeElement; return !!a && a.dataset.action === '{action}' && !!a.closest('#job-{id}');"
    );
    for _ in 0..60 {
        if browser.eval(&script).await == serde_json::json!(true) {
            return;
        }
        let focused = browser
            .client
            .active_element()
            .await
            .expect("a focused element");
        focused
            .send_keys(&char::from(Key::Tab).to_string())
            .await
            .expect("Tab");
    }
    panic!("Tab never reached the {action} button of job {id}");
}

#[test]
fn a_person_watches_pauses_resumes_cancels_and_recovers_on_the_desk() {
    let env = TestEnv::new("desk-browser");
    env.set_var("XDG_VIDEOS_DIR", env.root().join("videos"));
    env.write_config("[daemon]\nrate_limit = \"2MiB\"\n");
    let _daemon = env.start_daemon();
    in_browser(async {
        let browser = Browser::start(1280, 900, &[]).await;
        let client = &browser.client;

        // 1. The one-time address signs the browser in and lands on the queue.
        client.goto(&sign_in_url(&env)).await.unwrap();
        let here = client.current_url().await.unwrap();
        assert_eq!(here.path(), "/", "{here}");
        assert_eq!(
            browser.eval("return document.body.dataset.page").await,
            "queue"
        );
        browser.eval("window.upqMarker = 42; return true").await;

        // 2. A job added now appears, and its bar moves, with no reload.
        let video = env.source("watched.mp4", 24 * MIB);
        let id = env.add(&video, &["--title", "Watched on the desk"]);
        let bar = format!("document.querySelector('#job-{id} progress')");
        let first = browser
            .wait_js(
                "the bar to move",
                WAIT,
                &format!("const b = {bar}; return b && b.value > 0 ? b.value : 0"),
            )
            .await
            .as_f64()
            .unwrap();
        browser
            .wait_js(
                "the bar to move on",
                WAIT,
                &format!("const b = {bar}; return b && b.value > {first}"),
            )
            .await;
        let figures = browser
            .eval(&format!(
                "return document.querySelector('#job-{id} .figures').textContent"
            ))
            .await;
        assert!(figures.as_str().unwrap().contains("MiB"), "{figures}");
        assert_eq!(
            browser.eval("return window.upqMarker").await,
            42,
            "no reload"
        );
        browser.screenshot("queue").await;

        // 3. Pause with the keyboard, resume and cancel with the buttons.
        tab_to(&browser, id, "pause").await;
        let focused = client.active_element().await.unwrap();
        focused
            .send_keys(&char::from(Key::Enter).to_string())
            .await
            .unwrap();
        expect_state(&browser, &env, id, "paused", |s| s == JobState::Paused).await;
        browser
            .wait_js(
                "the Resume button",
                WAIT,
                &format!("return !!document.querySelector('#job-{id} button[data-action=resume]')"),
            )
            .await;
        let shown = browser
            .eval(&format!(
                "return document.querySelector('#job-{id} .reason').textContent"
            ))
            .await;
        assert!(shown.as_str().unwrap().starts_with("paused"), "{shown}");
        browser
            .click(&format!("#job-{id} button[data-action=resume]"))
            .await;
        expect_state(&browser, &env, id, "resumed", |s| s != JobState::Paused).await;
        browser
            .click(&format!("#job-{id} a[data-action=cancel]"))
            .await;
        let asked = browser
            .eval("return document.querySelector('main').textContent")
            .await;
        let asked = asked.as_str().unwrap();
        assert!(
            asked.contains("Drafts") && asked.contains("not touched"),
            "{asked}"
        );
        assert_ne!(
            env.job(id).state,
            JobState::Canceled,
            "asking is not canceling"
        );
        browser.click("button[data-action=confirm-cancel]").await;
        expect_state(&browser, &env, id, "canceled", |s| s == JobState::Canceled).await;

        // 4. Recover from Drafts.
        client.goto(&format!("{}drafts", base(&env))).await.unwrap();
        browser.screenshot("drafts").await;
        browser
            .click(&format!("#job-{id} button[data-action=recover]"))
            .await;
        expect_state(&browser, &env, id, "back in the queue", |s| {
            s != JobState::Canceled
        })
        .await;
        env.wait_published(id, 60);
        client
            .goto(&format!("{}history", base(&env)))
            .await
            .unwrap();
        browser
            .wait_js(
                "the job in History",
                WAIT,
                &format!("return !!document.querySelector('#job-{id}[data-state=published]')"),
            )
            .await;
        browser.screenshot("history").await;
        client
            .goto(&format!("{}jobs/{id}", base(&env)))
            .await
            .unwrap();
        let history = browser
            .eval("return document.querySelector('table.history').textContent")
            .await;
        for step in ["paused", "canceled", "published"] {
            assert!(
                history.as_str().unwrap().contains(step),
                "{step} in {history}"
            );
        }

        // The other pages, and a narrow window: nothing wider than the screen.
        for (path, name) in [("add", "add"), ("accounts", "accounts"), ("", "queue-done")] {
            client.goto(&format!("{}{path}", base(&env))).await.unwrap();
            browser.screenshot(name).await;
        }
        client.set_window_size(360, 780).await.unwrap();
        for path in ["", "history", "add", &format!("jobs/{id}")] {
            client.goto(&format!("{}{path}", base(&env))).await.unwrap();
            let wider = browser
            .eval(
                "return [...document.querySelectorAll('body *')]\
                 .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)\
                 .map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))\
                 .slice(0, 5).join(', ')",
            )
            .await;
            assert_eq!(wider, "", "/{path} is wider than 360 px");
        }
        browser.screenshot("history-360px").await;
        browser.close().await;
    });
}

fn base(env: &TestEnv) -> String {
    env.ctl_json(["status"])["web_url"]
        .as_str()
        .expect("the desk serves")
        .to_owned()
}

#[test]
fn a_held_video_is_watched_edited_and_published_from_the_review_desk() {
    use upq_tests::youtube::world::{assert_no_violations, the_video, wait_state, world};
    use upq_tests::youtube::YouTubeOptions;

    let (env, server) = world("desk-review", YouTubeOptions::default());
    let _daemon = env.start_daemon();
    let path = make_video(
        &env.root().join("videos"),
        "review",
        &VideoSpec::new("libvpx", "webm").seconds(6.0),
    );
    let source = SourceFile {
        size: std::fs::metadata(&path).unwrap().len(),
        hash: hash_file(&path),
        path: path.clone(),
    };
    let id = env.add(
        &source,
        &[
            "--hold",
            "--title",
            "Review me",
            "--caption",
            "old words",
            "--privacy",
            "public",
            "--meta",
            "made_for_kids=false",
        ],
    );
    wait_state(&env, &server, id, JobState::Held);

    in_browser(async {
        let browser = Browser::start(1280, 1000, &[]).await;
        let client = &browser.client;
        client.goto(&sign_in_url(&env)).await.unwrap();
        client.goto(&format!("{}review", base(&env))).await.unwrap();
        let card = format!("#job-{id}");
        browser
            .click(&format!("{card} textarea[name=caption]"))
            .await;

        // 5. Edit the caption, play the preview, then Publish.
        let caption = client
            .find(Locator::Css(&format!("{card} textarea[name=caption]")))
            .await
            .unwrap();
        caption.clear().await.unwrap();
        caption.send_keys("Edited on the desk").await.unwrap();
        browser
            .click(&format!("{card} button[data-action=edit]"))
            .await;
        wait_for(WAIT, "the edited caption", || {
            (env.show(id).metadata.caption.as_deref() == Some("Edited on the desk")).then_some(())
        });
        assert_eq!(
            env.job(id).state,
            JobState::Held,
            "an edit does not release"
        );

        let played = browser
            .eval(&format!(
                "const v = document.querySelector('{card} video'); v.muted = true; \
             return v.play().then(() => 'playing', e => 'refused: ' + e);"
            ))
            .await;
        assert_eq!(played, "playing", "{played}");
        browser
            .wait_js(
                "the preview to play",
                WAIT,
                &format!("return document.querySelector('{card} video').currentTime > 1"),
            )
            .await;
        browser.screenshot("review").await;
        browser
            .click(&format!("{card} button[data-action=publish]"))
            .await;
        wait_state(&env, &server, id, JobState::Published);

        // 6. The published video carries the edited caption.
        let video = the_video(&server, &source);
        assert_eq!(
            video.snippet["description"], "Edited on the desk",
            "{:?}",
            video.snippet
        );
        assert_eq!(video.snippet["title"], "Review me");
        assert_no_violations(&server);
        browser.close().await;
    });
}

/// A page of another origin, open in the same signed-in browser, tries to cancel a job
/// with a form and with fetch; neither works. The same form sent from the desk's own
/// page does, so the refusal is the guard's doing.
#[test]
fn a_page_from_another_origin_cannot_cancel_a_job() {
    let env = TestEnv::new("desk-cross-origin");
    let _daemon = env.start_daemon();
    env.ctl(["pause", "--all"]).assert_ok("pause --all");
    let video = env.source("target.mp4", MIB);
    let id = env.add(&video, &[]);
    // The page reads where to send and what from its address's fragment.
    let other = serve_html(
        "<!DOCTYPE html><html><head><title>elsewhere</title></head><body><p id=out>start</p>\
         <form id=f method=post><input id=c name=csrf></form>\
         <script>\
         const [action, csrf] = decodeURIComponent(location.hash.slice(1)).split(' ');\
         document.getElementById('f').action = action;\
         document.getElementById('c').value = csrf;\
         fetch(action, {method: 'POST', credentials: 'include', mode: 'no-cors',\
           headers: {'Content-Type': 'application/x-www-form-urlencoded'}, body: 'csrf=' + csrf})\
           .then(() => { document.getElementById('out').textContent = 'fetched'; },\
                 () => { document.getElementById('out').textContent = 'fetch failed'; });\
         </script></body></html>"
            .to_owned(),
    );
    in_browser(async {
        let browser = Browser::start(1024, 768, &[]).await;
        let client = &browser.client;
        client.goto(&sign_in_url(&env)).await.unwrap();
        let desk = base(&env);
        let csrf = browser.eval("return document.body.dataset.csrf").await;
        let csrf = csrf.as_str().unwrap().to_owned();

        // The attacker knows the job id and, for the worst case, even the CSRF token; it
        // serves from 127.0.0.1 on another port: the same site, another origin.
        let action = format!("{desk}jobs/{id}/cancel");
        let target = format!("{action} {csrf}").replace(' ', "%20");
        client
            .goto(&other.url(&format!("/#{target}")))
            .await
            .unwrap();
        browser
        .wait_js(
            "the other page's fetch to end",
            WAIT,
            "const t = document.getElementById('out').textContent; return t !== 'start' ? t : '';",
        )
        .await;
        assert_eq!(
            env.job(id).state,
            JobState::Queued,
            "the fetch canceled nothing"
        );
        browser
            .eval("document.getElementById('f').submit(); return true")
            .await;
        browser
            .wait_js(
                "the desk's answer to the form",
                WAIT,
                "return document.title.includes('403') ? document.title : ''",
            )
            .await;
        assert_eq!(
            env.job(id).state,
            JobState::Queued,
            "the form canceled nothing"
        );

        // The desk's own page does it.
        client
            .goto(&format!("{desk}jobs/{id}/cancel"))
            .await
            .unwrap();
        browser.click("button[data-action=confirm-cancel]").await;
        expect_state(&browser, &env, id, "canceled", |s| s == JobState::Canceled).await;
        browser.close().await;
    });
}

/// In a dark system theme the desk is dark; with the keyboard, the first Tab reaches the
/// link that skips to the content.
#[test]
fn the_desk_follows_a_dark_theme_and_starts_with_a_skip_link() {
    let env = TestEnv::new("desk-dark");
    let _daemon = env.start_daemon();
    let video = env.source("dark.mp4", MIB);
    let id = env.add(&video, &["--hold", "--title", "In the dark"]);
    wait_for(WAIT, "a held job", || {
        (env.job(id).state == JobState::Held).then_some(())
    });
    in_browser(async {
        let browser = Browser::start(
            1280,
            800,
            &[
                "--force-dark-mode",
                "--blink-settings=preferredColorScheme=0",
            ],
        )
        .await;
        browser.client.goto(&sign_in_url(&env)).await.unwrap();
        let dark = browser
            .eval("return window.matchMedia('(prefers-color-scheme: dark)').matches")
            .await;
        assert_eq!(dark, true, "the browser prefers dark");
        // The page's background is dark: each of its colour channels is low.
        let background = browser
            .eval("return getComputedStyle(document.body).backgroundColor")
            .await;
        let channels: Vec<u32> = background
            .as_str()
            .unwrap()
            .trim_start_matches("rgb(")
            .trim_end_matches(')')
            .split(',')
            .filter_map(|c| c.trim().parse().ok())
            .collect();
        assert!(
            channels.len() == 3 && channels.iter().all(|c| *c < 64),
            "{background}"
        );
        browser.screenshot("queue-dark").await;

        let body = browser.client.find(Locator::Css("body")).await.unwrap();
        body.send_keys(&char::from(Key::Tab).to_string())
            .await
            .unwrap();
        let first = browser
            .eval("return document.activeElement.className + ' ' + document.activeElement.getAttribute('href')")
            .await;
        assert_eq!(first, "skip #main", "{first}");
        browser.close().await;
    });
}
