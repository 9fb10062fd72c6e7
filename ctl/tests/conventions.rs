//! What a system's conventions ask of a command: `--version`, shell completions that load
//! and complete (live ones from the real `upqd`), manual pages that render, and colour that
//! follows `--color` and `NO_COLOR`. Runs the real `upqctl`, and `upqd` where jobs are needed.

// Each test binary uses a part of the shared support.
#[allow(dead_code)]
mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{run, Via, World};

fn upqctl(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_upqctl"))
        .args(args)
        .env_remove("UPQ_SOCKET")
        .output()
        .expect("run upqctl")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_version_says_the_protocol_too() {
    let out = upqctl(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout).trim(),
        format!(
            "upqctl {} (protocol {})",
            env!("CARGO_PKG_VERSION"),
            upq_proto::PROTOCOL_VERSION
        )
    );
}

#[test]
fn the_bash_completion_loads_and_completes_subcommands() {
    let out = upqctl(&["completions", "bash"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let script = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(script.path(), &out.stdout).unwrap();
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(script.path())
        .output()
        .unwrap();
    assert!(syntax.status.success(), "bash -n: {}", text(&syntax.stderr));
    // What bash does on Tab after `upqctl pa`.
    let complete = format!(
        "source {}; COMP_WORDS=(upqctl pa); COMP_CWORD=1; COMP_LINE='upqctl pa'; COMP_POINT=9; \
         _upqctl upqctl pa upqctl; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.path().display()
    );
    let offered = Command::new("bash")
        .arg("-c")
        .arg(&complete)
        .output()
        .unwrap();
    assert!(offered.status.success(), "{}", text(&offered.stderr));
    let offered = text(&offered.stdout);
    assert_eq!(
        offered.split_whitespace().collect::<Vec<_>>(),
        ["pause"],
        "{offered}"
    );
    // What bash calls on Tab is the live function in front of `_upqctl`, and it completes
    // subcommands the same way.
    let registered = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {}; complete -p upqctl",
            script.path().display()
        ))
        .output()
        .unwrap();
    assert!(
        text(&registered.stdout).contains("-F _upqctl_live "),
        "{}",
        text(&registered.stdout)
    );
    assert_eq!(bash_complete(script.path(), &["pa"], &[]), ["pause"]);
}

/// What the function bash calls on Tab (as `complete -p upqctl` names it) offers for
/// `upqctl WORDS…`, the last word being the one completed; `vars` are set for bash.
fn bash_complete(script: &Path, words: &[&str], vars: &[(&str, &str)]) -> Vec<String> {
    let (offered, stderr) = bash_complete_with_stderr(script, words, vars);
    assert!(stderr.is_empty(), "bash said: {stderr}");
    offered
}

fn bash_complete_with_stderr(
    script: &Path,
    words: &[&str],
    vars: &[(&str, &str)],
) -> (Vec<String>, String) {
    let quoted: Vec<String> = std::iter::once(env!("CARGO_BIN_EXE_upqctl"))
        .chain(words.iter().copied())
        .map(|word| format!("'{}'", word.replace('\'', "'\\''")))
        .collect();
    let complete = format!(
        "source '{}'\n\
         spec=$(complete -p upqctl); function=${{spec##*-F }}; function=${{function%% *}}\n\
         COMP_WORDS=({})\n\
         COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))\n\
         COMP_LINE=\"${{COMP_WORDS[*]}}\"; COMP_POINT=${{#COMP_LINE}}\n\
         \"$function\" \"${{COMP_WORDS[0]}}\" \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        script.display(),
        quoted.join(" ")
    );
    let mut bash = Command::new("bash");
    bash.arg("-c").arg(&complete).env_remove("UPQ_SOCKET");
    for (name, value) in vars {
        bash.env(name, value);
    }
    let output = run(bash);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let offered = text(&output.stdout)
        .lines()
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect();
    (offered, text(&output.stderr))
}

/// The bash script, in a file.
fn bash_script() -> tempfile::NamedTempFile {
    let out = upqctl(&["completions", "bash"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let script = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(script.path(), &out.stdout).unwrap();
    script
}

/// Whether `program` is on the PATH.
/// Asserts that `program` is on PATH: `scripts/check` installs the shells these tests check
/// their scripts with, so a missing one is a broken setup, not a reason to check less.
fn installed(program: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .output()
        .is_ok_and(|out| out.status.success());
    assert!(
        found,
        "{program} is not installed (`scripts/check` installs it)"
    );
    found
}

#[test]
fn zsh_and_fish_completions_name_every_subcommand() {
    for (shell, live) in [
        ("zsh", ":_upqctl_live targets'"),
        ("fish", "'(upqctl __complete targets)'"),
    ] {
        let out = upqctl(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        for command in ["add", "pause", "resume", "cancel", "edit", "open", "watch"] {
            assert!(
                script.contains(command),
                "{shell} completion lacks {command}"
            );
        }
        assert!(script.contains(live), "{shell} completes ids live");
        assert!(
            !script.contains("'__complete:") && !script.contains("-a \"__complete\""),
            "{shell} does not offer the helper as a subcommand"
        );
        // The syntax check, in the shell itself.
        if installed(shell) {
            let file = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(file.path(), script.as_bytes()).unwrap();
            let checked = Command::new(shell)
                .arg("-n")
                .arg(file.path())
                .output()
                .unwrap();
            assert!(
                checked.status.success() && checked.stderr.is_empty(),
                "{shell} -n: {}",
                text(&checked.stderr)
            );
        }
    }
    let refused = upqctl(&["completions", "tcsh"]);
    assert_eq!(
        refused.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

#[test]
fn the_manual_pages_render_without_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let out = upqctl(&["man", "--dir", &dir.path().display().to_string()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = text(&out.stdout);
    for page in [
        "upqctl.1",
        "upqctl-add.1",
        "upqctl-pause.1",
        "upqctl-open.1",
        "upqctl-man.1",
        "upqd.1",
    ] {
        let path = dir.path().join(page);
        assert!(path.is_file(), "{page} in {listed}");
        let rendered = Command::new("man")
            .arg("-l")
            .arg(&path)
            .env("MANWIDTH", "80")
            .env("MAN_KEEP_FORMATTING", "0")
            .env("PAGER", "cat")
            .output()
            .expect("man is installed (scripts/check installs man-db)");
        let all = format!(
            "{}{}",
            without_overstrikes(&text(&rendered.stdout)),
            text(&rendered.stderr)
        );
        assert!(rendered.status.success(), "{page}: {all}");
        assert!(!all.to_lowercase().contains("warning"), "{page}: {all}");
        assert!(
            listed.lines().any(|line| Path::new(line) == path),
            "{page} named on stdout: {listed}"
        );
        if page == "upqd.1" {
            // upqd's own flags, read from the definition upqd parses.
            for flag in ["--data-dir", "--check", "--no-dbus", "--log-format"] {
                assert!(all.contains(flag), "{page} lacks {flag}: {all}");
            }
            assert!(all.contains("persistent queue of video uploads"), "{all}");
        } else {
            assert!(all.contains("upqctl"), "{page}: {all}");
        }
    }
    let to_stdout = upqctl(&["man"]);
    assert!(text(&to_stdout.stdout).starts_with(".ie"), "roff on stdout");
    assert!(text(&to_stdout.stdout).contains(".TH upqctl 1"));
    let upqd = upqctl(&["man", "upqd"]);
    assert!(upqd.status.success(), "{}", text(&upqd.stderr));
    assert!(
        text(&upqd.stdout).contains(".TH upqd 1"),
        "{}",
        text(&upqd.stdout)
    );
    let pause = upqctl(&["man", "upqctl-pause"]);
    assert!(text(&pause.stdout).contains(".TH upqctl-pause 1"));
    let unknown = upqctl(&["man", "upqctl-nothing"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        text(&unknown.stderr).contains("upqd"),
        "names the pages: {}",
        text(&unknown.stderr)
    );
}

/// man's text without the backspaced doubles it prints bold with (`--\x08--`).
fn without_overstrikes(page: &str) -> String {
    let mut plain: Vec<char> = Vec::with_capacity(page.len());
    for c in page.chars() {
        if c == '\x08' {
            plain.pop();
        } else {
            plain.push(c);
        }
    }
    plain.into_iter().collect()
}

/// A daemon with two destinations and jobs in several states: `paused` (archive) and
/// `queued` (local) behind a paused queue, and a draft. Returns the world, the active jobs'
/// ids, and the draft's id.
fn world_with_jobs() -> (World, Vec<u64>, u64) {
    let mut world = World::bus_only();
    let root = world.dir.path().to_path_buf();
    let config = root.join("config").join("upq");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("config.toml"),
        format!(
            "[destinations.local]\nkind = \"dir\"\npath = \"{}\"\n\n\
             [destinations.archive]\nkind = \"dir\"\npath = \"{}\"\n",
            root.join("out-local").display(),
            root.join("out-archive").display()
        ),
    )
    .unwrap();
    world.start_upqd();
    // Nothing starts: the jobs stay where the test puts them.
    assert!(world.ctl(Via::Socket, &["pause", "--all"]).status.success());
    let queued = world.add(&world.file("queued.mp4", 4096), &[]);
    let paused = world.add(&world.file("paused.mp4", 4096), &["--to", "archive"]);
    let draft = world.add(&world.file("draft.mp4", 4096), &[]);
    for (verb, id) in [("pause", paused), ("cancel", draft)] {
        let out = world.ctl(Via::Socket, &[verb, &id.to_string()]);
        assert!(out.status.success(), "{verb} {id}: {out:?}");
    }
    world.wait_for_state(paused, "paused");
    world.wait_for_state(queued, "queued");
    (world, vec![queued, paused], draft)
}

/// `upqctl ARGS` over the world's socket with extra environment variables: its stdout.
fn ctl_with(world: &World, args: &[&str], vars: &[(&str, &str)]) -> String {
    let mut command = world.command(Via::Socket, args);
    command.env_remove("NO_COLOR").env("TERM", "xterm");
    for (name, value) in vars {
        command.env(name, value);
    }
    let out = run(command);
    assert!(out.status.success(), "upqctl {args:?}: {out:?}");
    text(&out.stdout)
}

/// The same, with a terminal for stdout (script(1) gives it one): what it printed there.
fn ctl_in_terminal(world: &World, args: &[&str], vars: &[(&str, &str)]) -> String {
    let ctl = world.command(Via::Socket, args);
    let line: Vec<String> = std::iter::once(ctl.get_program())
        .chain(ctl.get_args())
        .map(|word| format!("'{}'", word.to_string_lossy()))
        .collect();
    let mut script = Command::new("script");
    script.args(["-q", "-e", "-c", &line.join(" "), "/dev/null"]);
    for (name, value) in ctl.get_envs() {
        match value {
            Some(value) => script.env(name, value),
            None => script.env_remove(name),
        };
    }
    script.env_remove("NO_COLOR").env("TERM", "xterm");
    for (name, value) in vars {
        script.env(name, value);
    }
    let out = run(script);
    assert!(
        out.status.success(),
        "upqctl {args:?} in a terminal: {out:?}"
    );
    text(&out.stdout)
}

const ESC: char = '\x1b';

#[test]
fn colour_follows_the_flag_no_color_and_the_terminal() {
    let (world, active, _) = world_with_jobs();
    let paused = active[1].to_string();

    // On a terminal: coloured unless NO_COLOR says otherwise (or the terminal is dumb).
    let on_terminal = ctl_in_terminal(&world, &["list"], &[]);
    assert!(
        on_terminal.contains("\x1b[33mpaused\x1b[0m"),
        "{on_terminal:?}"
    );
    let no_color = ctl_in_terminal(&world, &["list"], &[("NO_COLOR", "1")]);
    assert!(no_color.contains("paused"), "{no_color:?}");
    assert!(!no_color.contains(ESC), "NO_COLOR=1: {no_color:?}");
    let empty = ctl_in_terminal(&world, &["list"], &[("NO_COLOR", "")]);
    assert!(empty.contains(ESC), "an empty NO_COLOR is unset: {empty:?}");
    let dumb = ctl_in_terminal(&world, &["list"], &[("TERM", "dumb")]);
    assert!(!dumb.contains(ESC), "TERM=dumb: {dumb:?}");
    let forced = ctl_in_terminal(&world, &["--color", "always", "list"], &[("NO_COLOR", "1")]);
    assert!(forced.contains(ESC), "--color always wins: {forced:?}");

    // Into a pipe: plain unless asked.
    let piped = ctl_with(&world, &["list"], &[]);
    assert!(
        piped.contains("paused") && !piped.contains(ESC),
        "{piped:?}"
    );
    let always = ctl_with(&world, &["--color", "always", "list"], &[]);
    assert!(always.contains("\x1b[33mpaused\x1b[0m"), "{always:?}");
    // Colour never moves a column: without its sequences the table is the plain one.
    assert_eq!(always.replace("\x1b[33m", "").replace("\x1b[0m", ""), piped);
    let never = ctl_with(&world, &["list", "--color", "never"], &[]);
    assert_eq!(never, piped);
    let shown = ctl_with(&world, &["show", &paused, "--color", "always"], &[]);
    assert!(shown.contains("\x1b[33mpaused\x1b[0m"), "{shown:?}");

    // JSON is never coloured.
    for args in [
        &["--color", "always", "list", "--json"][..],
        &["--color", "always", "show", &paused, "--json"],
        &["--color", "always", "drafts", "--json"],
    ] {
        let json = ctl_with(&world, args, &[]);
        assert!(!json.contains(ESC), "{args:?}: {json:?}");
        serde_json::from_str::<serde_json::Value>(&json).expect("one JSON document");
    }
    let json_on_terminal = ctl_in_terminal(&world, &["list", "--json"], &[]);
    assert!(!json_on_terminal.contains(ESC), "{json_on_terminal:?}");
}

#[test]
fn live_completion_offers_the_daemon_s_ids_and_destinations() {
    let (world, active, draft) = world_with_jobs();
    let script = bash_script();
    let socket = world.socket().display().to_string();
    let ids: Vec<String> = active.iter().map(u64::to_string).collect();
    let by_env = [("UPQ_SOCKET", socket.as_str())];

    assert_eq!(bash_complete(script.path(), &["cancel", ""], &by_env), ids);
    // A --socket on the line is where the candidates come from.
    assert_eq!(
        bash_complete(script.path(), &["--socket", &socket, "pause", ""], &[]),
        ids
    );
    assert_eq!(
        bash_complete(script.path(), &["add", "f.mp4", "--to", ""], &by_env),
        ["archive", "local"]
    );
    assert_eq!(
        bash_complete(script.path(), &["add", "f.mp4", "--to", "ar"], &by_env),
        ["archive"]
    );
    assert_eq!(
        bash_complete(script.path(), &["recover", ""], &by_env),
        [draft.to_string()]
    );
    // Flags and subcommands are still clap's.
    assert_eq!(
        bash_complete(script.path(), &["cancel", "--so"], &by_env),
        ["--socket"]
    );
    assert_eq!(bash_complete(script.path(), &["pa"], &by_env), ["pause"]);

    // The helper itself, as the zsh and fish scripts call it.
    let helper = Command::new(env!("CARGO_BIN_EXE_upqctl"))
        .args(["__complete", "targets", "--socket", &socket])
        .output()
        .unwrap();
    assert!(helper.status.success());
    assert_eq!(text(&helper.stdout).lines().collect::<Vec<_>>(), ids);

    // fish: its own completion engine, on the same lines.
    if installed("fish") {
        let out = upqctl(&["completions", "fish"]);
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &out.stdout).unwrap();
        let bin = Path::new(env!("CARGO_BIN_EXE_upqctl")).parent().unwrap();
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        for (line, expected) in [
            ("upqctl cancel ", ids.clone()),
            (
                "upqctl add f.mp4 --to ",
                vec!["archive".to_owned(), "local".to_owned()],
            ),
        ] {
            let mut fish = Command::new("fish");
            fish.arg("-c")
                .arg(format!(
                    "source {}; complete -C'{line}'",
                    file.path().display()
                ))
                .env("PATH", &path)
                .env("UPQ_SOCKET", &socket);
            let offered = run(fish);
            assert_eq!(
                text(&offered.stdout).lines().collect::<Vec<_>>(),
                expected,
                "fish: {line}"
            );
        }
    }
}

#[test]
fn without_a_daemon_completion_offers_nothing_and_says_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("upqd.sock").display().to_string();
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_upqctl"))
        .args(["__complete", "targets", "--socket", &socket])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "no waiting");

    let script = bash_script();
    let by_env = [("UPQ_SOCKET", socket.as_str())];
    for words in [
        &["cancel", ""][..],
        &["add", "f.mp4", "--to", ""],
        &["recover", ""],
        &["edit", ""],
    ] {
        let (offered, stderr) = bash_complete_with_stderr(script.path(), words, &by_env);
        assert!(offered.is_empty(), "{words:?}: {offered:?}");
        assert!(stderr.is_empty(), "{words:?}: {stderr}");
    }
    // A question it does not know is a usage error, said on stderr.
    let wrong = upqctl(&["__complete", "files"]);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(text(&wrong.stderr).contains("usage"));
}
