//! `upqctl completions SHELL` and `upqctl man [--dir DIR]`: the shell's completions and the
//! manual pages, made from the same command-line definition clap parses, so they cannot
//! drift from it.

use std::path::Path;

use crate::exit;

/// Prints the completion script for `shell` on stdout.
pub fn completions(mut command: clap::Command, shell: clap_complete::Shell) -> anyhow::Result<u8> {
    clap_complete::generate(shell, &mut command, "upqctl", &mut std::io::stdout());
    Ok(exit::SUCCESS)
}

/// Prints upqctl's manual page on stdout, or writes it and one page a subcommand
/// (`upqctl-pause.1`, …) into `dir`, naming each file on stdout.
pub fn man(command: clap::Command, dir: Option<&Path>) -> anyhow::Result<u8> {
    match dir {
        None => clap_mangen::Man::new(command).render(&mut std::io::stdout())?,
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
            let mut command = command.disable_help_subcommand(true);
            command.build();
            let mut pages = vec![clap_mangen::Man::new(command.clone()).generate_to(dir)?];
            for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
                // `upqctl-pause(1)`, as git and cargo name the pages of their subcommands;
                // its synopsis reads `upqctl pause`.
                let page = sub
                    .clone()
                    .display_name(format!("upqctl-{}", sub.get_name()))
                    .bin_name(format!("upqctl {}", sub.get_name()));
                pages.push(clap_mangen::Man::new(page).generate_to(dir)?);
            }
            for page in pages {
                println!("{}", page.display());
            }
        }
    }
    Ok(exit::SUCCESS)
}
