//! `upqctl completions SHELL` and `upqctl man [PAGE] [--dir DIR]`: the shell's completions and
//! the manual pages (upqctl's, each subcommand's and upqd's), made from the same command-line
//! definitions clap parses, so they cannot drift from them.
//!
//! Live completion: bash, zsh and fish also complete job ids, post ids, drafts and
//! destination names from the running daemon (`upqctl __complete`); the other shells get
//! clap's static script only.

use std::path::Path;

use clap::CommandFactory;

use crate::exit;

/// Subcommands whose ID arguments take active jobs and posts.
const TARGET_COMMANDS: [&str; 8] = [
    "show", "pause", "resume", "cancel", "retry", "publish", "wait", "watch",
];
/// Subcommands whose ID arguments take drafts.
const DRAFT_COMMANDS: [&str; 2] = ["recover", "discard"];
/// Subcommands whose ID argument takes an active job only.
const JOB_COMMANDS: [&str; 1] = ["edit"];

/// Prints the completion script for `shell` on stdout.
pub fn completions(command: clap::Command, shell: clap_complete::Shell) -> anyhow::Result<u8> {
    print!("{}", completion_script(command, shell)?);
    Ok(exit::SUCCESS)
}

/// clap's script for `shell`, with live completion added for bash, zsh and fish.
fn completion_script(
    mut command: clap::Command,
    shell: clap_complete::Shell,
) -> anyhow::Result<String> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "upqctl", &mut script);
    let script = String::from_utf8(script)?;
    Ok(match shell {
        clap_complete::Shell::Bash => format!("{script}\n{BASH_LIVE}"),
        clap_complete::Shell::Zsh => zsh_live(&script),
        clap_complete::Shell::Fish => format!("{script}\n{}", fish_live()),
        _ => script,
    })
}

/// Bash: a function in front of clap's `_upqctl` that answers for ID arguments and `--to`
/// from the daemon, and leaves everything else to `_upqctl`. It passes on a `--socket`
/// typed on the line.
const BASH_LIVE: &str = r#"# Live completion: job ids, post ids, drafts and destinations from the running daemon
# (`upqctl __complete WHAT`); everything else as _upqctl completes it.
_upqctl_live() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="" before="" sub="" what="" word i
    local positionals=0
    local -a socket=()
    if [[ ${COMP_CWORD} -gt 0 ]]; then prev="${COMP_WORDS[COMP_CWORD-1]}"; fi
    if [[ ${COMP_CWORD} -gt 1 ]]; then before="${COMP_WORDS[COMP_CWORD-2]}"; fi
    for (( i = 1; i < COMP_CWORD; i++ )); do
        word="${COMP_WORDS[i]}"
        case "${word}" in
            --socket) socket=(--socket "${COMP_WORDS[i+1]}"); i=$((i + 1)) ;;
            --socket=*) socket=("${word}") ;;
            --color|--timeout|--title|--caption|--privacy|--to) i=$((i + 1)) ;;
            -*) ;;
            *) if [[ -z "${sub}" ]]; then sub="${word}"; else positionals=$((positionals + 1)); fi ;;
        esac
    done
    case "${sub}" in
        add)
            if [[ "${prev}" == --to || ( "${prev}" == "=" && "${before}" == --to ) ]]; then
                what=destinations
            fi
            ;;
        show|pause|resume|cancel|retry|publish|wait|watch) what=targets ;;
        edit) if [[ ${positionals} -eq 0 ]]; then what=jobs; fi ;;
        recover|discard) what=drafts ;;
    esac
    if [[ "${what}" != destinations ]]; then
        case "${prev}" in
            --socket|--color|--timeout|--title|--caption|--privacy) what="" ;;
        esac
        if [[ "${cur}" == -* ]]; then what=""; fi
    fi
    if [[ -n "${what}" ]]; then
        local IFS=$'\n'
        COMPREPLY=($(compgen -W "$("${COMP_WORDS[0]}" __complete "${what}" ${socket[@]+"${socket[@]}"} 2>/dev/null)" -- "${cur}"))
        # No file names in place of ids when the daemon has none to offer.
        compopt +o default +o bashdefault 2>/dev/null
        return 0
    fi
    _upqctl "$@"
}

if [[ "${BASH_VERSINFO[0]}" -eq 4 && "${BASH_VERSINFO[1]}" -ge 4 || "${BASH_VERSINFO[0]}" -gt 4 ]]; then
    complete -F _upqctl_live -o nosort -o bashdefault -o default upqctl
else
    complete -F _upqctl_live -o bashdefault -o default upqctl
fi
"#;

/// Zsh: the function the ID arguments and `--to` call instead of clap's `_default`.
const ZSH_LIVE: &str = r#"# Live completion: `upqctl __complete WHAT` lists candidates from the running daemon.
(( $+functions[_upqctl_live] )) ||
_upqctl_live() {
    # _arguments passes compadd's options first; what to list comes last.
    local what="${@[-1]}"
    local -a candidates
    candidates=(${(f)"$(upqctl __complete $what 2>/dev/null)"})
    compadd "${@[1,-2]}" -a candidates
}
"#;

/// Zsh: clap's script with the ID arguments' and `--to`'s `_default` action replaced by
/// `_upqctl_live`.
fn zsh_live(script: &str) -> String {
    let mut out = String::with_capacity(script.len() + ZSH_LIVE.len());
    let mut lines = script.lines();
    // `#compdef upqctl` must stay the first line.
    if let Some(first) = lines.next() {
        out.push_str(first);
        out.push('\n');
    }
    out.push('\n');
    out.push_str(ZSH_LIVE);
    // The case branch of `_arguments` being read: `(cancel)`, `(add)`, …
    let mut branch = String::new();
    for line in lines {
        let label = line.trim();
        if let Some(name) = label
            .strip_prefix('(')
            .and_then(|rest| rest.strip_suffix(')'))
        {
            branch = name.to_owned();
        }
        let what = zsh_candidates(&branch, line);
        match (what, line.strip_suffix(":_default' \\")) {
            (Some(what), Some(head)) => {
                out.push_str(&format!("{head}:_upqctl_live {what}' \\"));
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// What a line of clap's zsh script completes live, in the branch of subcommand `branch`.
fn zsh_candidates(branch: &str, line: &str) -> Option<&'static str> {
    let is_id = line.starts_with("'*::ids -- ") || line.starts_with("':id -- ");
    if branch == "add" && line.starts_with("'*--to=[") {
        Some("destinations")
    } else if !is_id {
        None
    } else if TARGET_COMMANDS.contains(&branch) {
        Some("targets")
    } else if DRAFT_COMMANDS.contains(&branch) {
        Some("drafts")
    } else if JOB_COMMANDS.contains(&branch) {
        Some("jobs")
    } else {
        None
    }
}

/// Fish: lines added after clap's script.
fn fish_live() -> String {
    let mut out = String::from(
        "# Live completion: `upqctl __complete WHAT` lists candidates from the running daemon.\n",
    );
    for (commands, what) in [
        (&TARGET_COMMANDS[..], "targets"),
        (&DRAFT_COMMANDS[..], "drafts"),
        (&JOB_COMMANDS[..], "jobs"),
    ] {
        out.push_str(&format!(
            "complete -c upqctl -n '__fish_seen_subcommand_from {}' -f -a '(upqctl __complete {what})'\n",
            commands.join(" ")
        ));
    }
    out.push_str(
        "complete -c upqctl -n '__fish_seen_subcommand_from add' -l to -x -a '(upqctl __complete destinations)'\n",
    );
    out
}

/// Every manual page: upqctl's, one per subcommand (`upqctl-pause(1)`, as git and cargo name
/// them, with a synopsis reading `upqctl pause`), and upqd's.
fn pages(command: clap::Command) -> Vec<clap::Command> {
    let mut command = command.disable_help_subcommand(true);
    command.build();
    let mut pages = vec![command.clone()];
    for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        pages.push(
            sub.clone()
                .display_name(format!("upqctl-{}", sub.get_name()))
                .bin_name(format!("upqctl {}", sub.get_name())),
        );
    }
    pages.push(upq_proto::cli::UpqdArgs::command());
    pages
}

/// A page's name: `upqctl`, `upqctl-pause`, `upqd`.
fn page_name(page: &clap::Command) -> &str {
    page.get_display_name().unwrap_or_else(|| page.get_name())
}

/// Prints the manual page named `page` on stdout, or writes every page into `dir`, naming
/// each file on stdout.
pub fn man(command: clap::Command, page: &str, dir: Option<&Path>) -> anyhow::Result<u8> {
    let pages = pages(command);
    match dir {
        None => {
            let Some(found) = pages.iter().find(|found| page_name(found) == page) else {
                let names: Vec<&str> = pages.iter().map(page_name).collect();
                eprintln!(
                    "upqctl: no manual page '{page}'; there are: {}",
                    names.join(", ")
                );
                return Ok(exit::USAGE);
            };
            clap_mangen::Man::new(found.clone()).render(&mut std::io::stdout())?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
            for page in pages {
                let path = clap_mangen::Man::new(page).generate_to(dir)?;
                println!("{}", path.display());
            }
        }
    }
    Ok(exit::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap_complete::Shell;

    fn script(shell: Shell) -> String {
        completion_script(crate::Cli::command(), shell).unwrap()
    }

    #[test]
    fn zsh_asks_the_daemon_for_every_id_argument_and_for_to() {
        let zsh = script(Shell::Zsh);
        assert!(zsh.starts_with("#compdef upqctl\n"), "{}", &zsh[..40]);
        let count = |what: &str| zsh.matches(&format!(":_upqctl_live {what}' \\")).count();
        assert_eq!(count("targets"), TARGET_COMMANDS.len());
        assert_eq!(count("drafts"), DRAFT_COMMANDS.len());
        assert_eq!(count("jobs"), JOB_COMMANDS.len());
        assert_eq!(count("destinations"), 1);
        // Only the ID arguments and `--to` changed: the rest is clap's, line for line.
        let clap_only = {
            let mut command = crate::Cli::command();
            let mut out = Vec::new();
            clap_complete::generate(Shell::Zsh, &mut command, "upqctl", &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            clap_only.lines().count() + 1 + ZSH_LIVE.lines().count(),
            zsh.lines().count()
        );
    }

    #[test]
    fn fish_and_bash_add_their_live_completion() {
        let fish = script(Shell::Fish);
        assert!(fish.contains(
            "complete -c upqctl -n '__fish_seen_subcommand_from show pause resume cancel retry \
             publish wait watch' -f -a '(upqctl __complete targets)'"
        ));
        assert!(fish.contains("-l to -x -a '(upqctl __complete destinations)'"));
        let bash = script(Shell::Bash);
        assert!(bash.starts_with("_upqctl() {"), "clap's function stays");
        assert!(
            bash.contains("complete -F _upqctl_live -o nosort -o bashdefault -o default upqctl")
        );
        let elvish = script(Shell::Elvish);
        assert!(!elvish.contains("__complete"), "no live completion there");
    }

    #[test]
    fn every_page_is_named_and_upqd_has_one() {
        let pages = pages(crate::Cli::command());
        let names: Vec<&str> = pages.iter().map(page_name).collect();
        assert_eq!(names.first(), Some(&"upqctl"));
        assert_eq!(names.last(), Some(&"upqd"));
        assert!(names.contains(&"upqctl-pause") && names.contains(&"upqctl-man"));
        assert!(!names.contains(&"upqctl-help"));
        let upqd = pages.last().unwrap();
        let flags: Vec<&str> = upqd
            .get_arguments()
            .filter_map(|arg| arg.get_long())
            .collect();
        for flag in [
            "config",
            "data-dir",
            "socket",
            "log-format",
            "no-dbus",
            "check",
        ] {
            assert!(flags.contains(&flag), "upqd.1 lacks --{flag}: {flags:?}");
        }
    }
}
