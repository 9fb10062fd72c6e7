//! Real test videos made by `ffmpeg` from its `testsrc2` pattern: small, short and quick
//! (x264/x265 `ultrafast`, libvpx `realtime`), for the video preflight and TikTok tests.
//!
//! ffmpeg is required (scripts/check installs it); without it the tests fail and say so.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// What to make: `codec` is an ffmpeg encoder (`libx264`, `libx265`, `libvpx`, `libvpx-vp9`,
/// `mpeg4`, ...) and `container` the file extension (`mp4`, `mov`, `webm`, `mkv`), which
/// also picks ffmpeg's muxer.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoSpec {
    pub width: u32,
    pub height: u32,
    /// As ffmpeg takes a rate: "30", "30000/1001", "61".
    pub fps: String,
    pub seconds: f64,
    pub codec: String,
    pub container: String,
    /// Adds a sine tone as audio (AAC, or Opus in WebM).
    pub audio: bool,
    /// Passed to ffmpeg after the codec options, before the output file.
    pub extra_args: Vec<String>,
}

impl VideoSpec {
    /// 360x640 at 30 fps for one second, no audio.
    pub fn new(codec: &str, container: &str) -> VideoSpec {
        VideoSpec {
            width: 360,
            height: 640,
            fps: "30".into(),
            seconds: 1.0,
            codec: codec.into(),
            container: container.into(),
            audio: false,
            extra_args: Vec::new(),
        }
    }

    pub fn size(mut self, width: u32, height: u32) -> VideoSpec {
        self.width = width;
        self.height = height;
        self
    }

    pub fn fps(mut self, fps: impl ToString) -> VideoSpec {
        self.fps = fps.to_string();
        self
    }

    pub fn seconds(mut self, seconds: f64) -> VideoSpec {
        self.seconds = seconds;
        self
    }

    pub fn with_audio(mut self) -> VideoSpec {
        self.audio = true;
        self
    }

    pub fn args(mut self, args: &[&str]) -> VideoSpec {
        self.extra_args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// The encoder options that keep fixtures fast.
    fn codec_args(&self) -> Vec<String> {
        let args: &[&str] = match self.codec.as_str() {
            "libx264" => &["-preset", "ultrafast", "-pix_fmt", "yuv420p"],
            "libx265" => &[
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
                "-x265-params",
                "log-level=error",
            ],
            "libvpx" | "libvpx-vp9" => &["-deadline", "realtime", "-cpu-used", "8"],
            _ => &[],
        };
        args.iter().map(|a| a.to_string()).collect()
    }
}

/// Fails the test unless ffmpeg can run.
pub fn require_ffmpeg() {
    static FOUND: OnceLock<Result<(), String>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        match Command::new("ffmpeg")
            .arg("-version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
        {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => Err(format!("`ffmpeg -version` failed ({status})")),
            Err(e) => Err(format!("cannot run ffmpeg: {e}")),
        }
    });
    if let Err(e) = found {
        panic!(
            "the video tests need ffmpeg to make their fixtures, and {e}; \
             install it (scripts/check does: apt-get install ffmpeg)"
        );
    }
}

/// Makes `dir/name.<container>` as `spec` says and returns its path; panics with ffmpeg's
/// own message when it fails.
pub fn make_video(dir: &Path, name: &str, spec: &VideoSpec) -> PathBuf {
    require_ffmpeg();
    let path = dir.join(format!("{name}.{}", spec.container));
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(["-f", "lavfi", "-i"])
        .arg(format!(
            "testsrc2=size={}x{}:rate={}",
            spec.width, spec.height, spec.fps
        ));
    if spec.audio {
        cmd.args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]);
    }
    cmd.arg("-t")
        .arg(spec.seconds.to_string())
        .args(["-c:v", &spec.codec])
        .args(spec.codec_args());
    if spec.audio {
        let audio = if spec.container == "webm" {
            "libopus"
        } else {
            "aac"
        };
        cmd.args(["-c:a", audio]);
    } else {
        cmd.arg("-an");
    }
    cmd.args(&spec.extra_args).arg(&path);
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run ffmpeg: {e}"));
    assert!(
        output.status.success(),
        "ffmpeg could not make {} ({spec:?}): {}\n{}",
        path.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    path
}
