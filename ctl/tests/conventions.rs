//! What a system's conventions ask of a command: `--version`, shell completions that load
//! and complete, and manual pages that render. Runs the real `upqctl`; no daemon needed.

use std::process::Command;

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
}

#[test]
fn zsh_and_fish_completions_name_every_subcommand() {
    for shell in ["zsh", "fish"] {
        let out = upqctl(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        for command in ["add", "pause", "resume", "cancel", "edit", "open", "watch"] {
            assert!(
                script.contains(command),
                "{shell} completion lacks {command}"
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
        let all = format!("{}{}", text(&rendered.stdout), text(&rendered.stderr));
        assert!(rendered.status.success(), "{page}: {all}");
        assert!(!all.to_lowercase().contains("warning"), "{page}: {all}");
        assert!(all.contains("upqctl"), "{page}: {all}");
    }
    let to_stdout = upqctl(&["man"]);
    assert!(text(&to_stdout.stdout).starts_with(".ie"), "roff on stdout");
}
