//! Colour on the terminal: `--color auto|always|never`, `NO_COLOR` and `TERM=dumb`, decided
//! once per run, and the few styles upqctl uses, as plain ANSI SGR sequences. No I/O.

use std::ffi::OsStr;

use upq_proto::{JobState, PostState};

/// `--color`: when to colour the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour on a terminal, unless NO_COLOR is set or TERM is dumb
    #[default]
    Auto,
    /// Colour even into a pipe or a file, whatever NO_COLOR says
    Always,
    /// No colour
    Never,
}

/// A style a piece of text is shown in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Style {
    #[default]
    Plain,
    /// All is well: bold green.
    Ok,
    /// Needs a look, not urgent: yellow.
    Warning,
    /// Went wrong: red.
    Problem,
    /// Less important: faint.
    Dim,
}

impl Style {
    /// The SGR parameters that turn the style on; empty for plain text.
    fn sgr(self) -> &'static str {
        match self {
            Style::Plain => "",
            Style::Ok => "1;32",
            Style::Warning => "33",
            Style::Problem => "31",
            Style::Dim => "2",
        }
    }

    /// How a job in `state` is shown: failed red, published green, waiting on a person or
    /// on a retry yellow, canceled faint.
    pub fn of_state(state: JobState) -> Style {
        match state {
            JobState::Published => Style::Ok,
            JobState::Failed => Style::Problem,
            JobState::Paused | JobState::Retrying => Style::Warning,
            JobState::Canceled => Style::Dim,
            JobState::Queued
            | JobState::Uploading
            | JobState::Held
            | JobState::Processing
            | JobState::Publishing => Style::Plain,
        }
    }

    /// How a post in `state` is shown, as its jobs are.
    pub fn of_post_state(state: PostState) -> Style {
        match state {
            PostState::Published => Style::Ok,
            PostState::Failed => Style::Problem,
            PostState::Paused | PostState::Partial => Style::Warning,
            PostState::Canceled => Style::Dim,
            PostState::Queued | PostState::Uploading | PostState::Held | PostState::Publishing => {
                Style::Plain
            }
        }
    }
}

/// Whether this run colours its output; every command gets it in `Ctx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Paint {
    on: bool,
}

impl Paint {
    pub const OFF: Paint = Paint { on: false };
    #[cfg(test)]
    pub const ON: Paint = Paint { on: true };

    /// The decision from the flag and the environment: `always` and `never` are final;
    /// `auto` colours only a terminal, and only when `NO_COLOR` is unset or empty
    /// (no-color.org) and `TERM` is not `dumb`.
    pub fn decide(
        choice: ColorChoice,
        is_terminal: bool,
        no_color: Option<&OsStr>,
        term: Option<&OsStr>,
    ) -> Paint {
        let on = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                is_terminal
                    && no_color.is_none_or(OsStr::is_empty)
                    && term != Some(OsStr::new("dumb"))
            }
        };
        Paint { on }
    }

    /// [`Paint::decide`] for this process: stdout and the environment.
    pub fn for_stdout(choice: ColorChoice) -> Paint {
        use std::io::IsTerminal;
        Paint::decide(
            choice,
            std::io::stdout().is_terminal(),
            std::env::var_os("NO_COLOR").as_deref(),
            std::env::var_os("TERM").as_deref(),
        )
    }

    #[cfg(test)]
    pub fn is_on(self) -> bool {
        self.on
    }

    /// `text` in `style`, or `text` as it is when colour is off or the style is plain.
    pub fn style(self, style: Style, text: &str) -> String {
        if !self.on || style == Style::Plain || text.is_empty() {
            return text.to_owned();
        }
        format!("\x1b[{}m{text}\x1b[0m", style.sgr())
    }

    /// Something that is fine (bold green).
    pub fn ok(self, text: &str) -> String {
        self.style(Style::Ok, text)
    }

    /// Something worth a look (yellow).
    pub fn warning(self, text: &str) -> String {
        self.style(Style::Warning, text)
    }

    /// Something that went wrong (red).
    pub fn problem(self, text: &str) -> String {
        self.style(Style::Problem, text)
    }

    /// Something of less importance (faint).
    pub fn dim(self, text: &str) -> String {
        self.style(Style::Dim, text)
    }

    /// A job state's name, in the state's style.
    pub fn state(self, state: JobState) -> String {
        self.style(Style::of_state(state), state.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auto(is_terminal: bool, no_color: Option<&str>, term: Option<&str>) -> bool {
        Paint::decide(
            ColorChoice::Auto,
            is_terminal,
            no_color.map(OsStr::new),
            term.map(OsStr::new),
        )
        .is_on()
    }

    #[test]
    fn auto_colours_only_a_terminal_that_wants_colour() {
        assert!(auto(true, None, Some("xterm-256color")));
        assert!(auto(true, None, None), "no TERM is not a dumb one");
        assert!(
            auto(true, Some(""), Some("xterm")),
            "an empty NO_COLOR is unset"
        );
        assert!(!auto(false, None, Some("xterm")), "a pipe or a file");
        assert!(!auto(true, Some("1"), Some("xterm")));
        assert!(!auto(true, Some("0"), Some("xterm")), "any value counts");
        assert!(!auto(true, None, Some("dumb")));
    }

    #[test]
    fn always_and_never_are_final() {
        let no_color = Some(OsStr::new("1"));
        let dumb = Some(OsStr::new("dumb"));
        assert!(Paint::decide(ColorChoice::Always, false, no_color, dumb).is_on());
        assert!(!Paint::decide(ColorChoice::Never, true, None, None).is_on());
    }

    #[test]
    fn styles_wrap_text_in_sgr_sequences_only_when_on() {
        assert_eq!(Paint::ON.problem("failed"), "\x1b[31mfailed\x1b[0m");
        assert_eq!(Paint::ON.ok("ok"), "\x1b[1;32mok\x1b[0m");
        assert_eq!(Paint::ON.warning("paused"), "\x1b[33mpaused\x1b[0m");
        assert_eq!(Paint::ON.dim("x"), "\x1b[2mx\x1b[0m");
        assert_eq!(Paint::ON.style(Style::Plain, "queued"), "queued");
        assert_eq!(Paint::ON.problem(""), "");
        for text in [
            Paint::OFF.ok("a"),
            Paint::OFF.warning("a"),
            Paint::OFF.problem("a"),
            Paint::OFF.dim("a"),
        ] {
            assert_eq!(text, "a");
        }
    }

    #[test]
    fn states_have_their_colours() {
        assert_eq!(Paint::ON.state(JobState::Failed), "\x1b[31mfailed\x1b[0m");
        assert_eq!(
            Paint::ON.state(JobState::Published),
            "\x1b[1;32mpublished\x1b[0m"
        );
        assert_eq!(Paint::ON.state(JobState::Paused), "\x1b[33mpaused\x1b[0m");
        assert_eq!(
            Paint::ON.state(JobState::Retrying),
            "\x1b[33mretrying\x1b[0m"
        );
        assert_eq!(Paint::ON.state(JobState::Uploading), "uploading");
        assert_eq!(Paint::OFF.state(JobState::Failed), "failed");
    }
}
