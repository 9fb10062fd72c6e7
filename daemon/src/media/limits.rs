//! TikTok's documented video limits and the check of a probe's result against them.
//! Pure rules over [`MediaInfo`]; it reads no file.

use super::*;

/// TikTok's documented video limits, in one table (see [`VideoLimits::tiktok`]).
#[derive(Debug, Clone, PartialEq)]
pub struct VideoLimits {
    pub containers: &'static [Container],
    pub codecs: &'static [VideoCodec],
    pub min_fps: f64,
    pub max_fps: f64,
    pub min_side: u32,
    pub max_side: u32,
    pub max_bytes: u64,
    /// The creator's `max_video_post_duration_sec`; `None` when not known.
    pub max_duration: Option<Duration>,
}

impl VideoLimits {
    /// MP4/MOV/WebM; H.264/H.265/VP8/VP9; 23–60 fps; 360–4096 px on each side; at most 4 GB;
    /// and the creator's maximum duration when known.
    pub fn tiktok(max_duration: Option<Duration>) -> VideoLimits {
        VideoLimits {
            containers: &[Container::Mp4, Container::Mov, Container::WebM],
            codecs: &[
                VideoCodec::H264,
                VideoCodec::H265,
                VideoCodec::Vp8,
                VideoCodec::Vp9,
            ],
            min_fps: 23.0,
            max_fps: 60.0,
            min_side: 360,
            max_side: 4096,
            max_bytes: TIKTOK_MAX_BYTES,
            max_duration,
        }
    }
}

#[derive(Debug, Default, PartialEq)]
pub struct Verdict {
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

impl Verdict {
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// "A, B or C".
fn one_of<T: fmt::Display>(items: &[T]) -> String {
    let names: Vec<String> = items.iter().map(ToString::to_string).collect();
    match names.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// 15 -> "15", 29.97 -> "29.97", 22.9 -> "22.9".
fn fmt_fps(fps: f64) -> String {
    let s = format!("{fps:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// "11m 5s", "10m", "2.5s", "1h 0m 3s".
pub fn fmt_duration(d: Duration) -> String {
    // Whole milliseconds, rounded up so a duration just over a limit never prints as it.
    let ms = d.as_nanos().div_ceil(1_000_000);
    let (h, m) = (ms / 3_600_000, ms / 60_000 % 60);
    let (s, frac) = (ms / 1000 % 60, ms % 1000);
    let mut parts = Vec::new();
    if h > 0 {
        parts.push(format!("{h}h"));
    }
    if m > 0 || (h > 0 && (s > 0 || frac > 0)) {
        parts.push(format!("{m}m"));
    }
    if s > 0 || frac > 0 || parts.is_empty() {
        if frac > 0 {
            let f = format!("{frac:03}");
            parts.push(format!("{s}.{}s", f.trim_end_matches('0')));
        } else {
            parts.push(format!("{s}s"));
        }
    }
    parts.join(" ")
}

/// Decimal gigabytes with two places.
fn fmt_gb(bytes: u64) -> String {
    let gb = bytes as f64 / 1e9;
    let s = format!("{gb:.2}");
    format!("{} GB", s.trim_end_matches('0').trim_end_matches('.'))
}

/// Every failed rule is one precise error; soft problems are warnings.
pub fn check(info: &MediaInfo, file_size: u64, limits: &VideoLimits) -> Verdict {
    let mut v = Verdict::default();
    if !limits.containers.contains(&info.container) {
        v.errors.push(format!(
            "{} is not a container TikTok accepts; it takes {}",
            info.container,
            one_of(limits.containers)
        ));
    }
    if !limits.codecs.contains(&info.codec) {
        v.errors.push(format!(
            "{} needed; the video is {}",
            one_of(limits.codecs),
            info.codec
        ));
    }
    if info.fps <= 0.0 || !info.fps.is_finite() {
        v.warnings.push(format!(
            "frame rate unknown (the file does not record it); TikTok needs {} to {} fps",
            fmt_fps(limits.min_fps),
            fmt_fps(limits.max_fps)
        ));
    } else if info.fps < limits.min_fps {
        v.errors.push(format!(
            "frame rate {} fps is below TikTok's minimum of {} fps",
            fmt_fps(info.fps),
            fmt_fps(limits.min_fps)
        ));
    } else if info.fps > limits.max_fps {
        v.errors.push(format!(
            "frame rate {} fps is above TikTok's maximum of {} fps",
            fmt_fps(info.fps),
            fmt_fps(limits.max_fps)
        ));
    }
    let size = format!("{}x{}", info.width, info.height);
    let mut size_ok = true;
    for (side, px) in [("width", info.width), ("height", info.height)] {
        if px < limits.min_side {
            size_ok = false;
            v.errors.push(format!(
                "{side} {px} px ({size}) is below TikTok's minimum of {} px on each side",
                limits.min_side
            ));
        } else if px > limits.max_side {
            size_ok = false;
            v.errors.push(format!(
                "{side} {px} px ({size}) is above TikTok's maximum of {} px on each side",
                limits.max_side
            ));
        }
    }
    if size_ok && info.width.min(info.height) < SHARP_SHORT_SIDE {
        v.warnings
            .push(format!("{size} is below 1080p; TikTok may show it softer"));
    }
    if file_size > limits.max_bytes {
        v.errors.push(format!(
            "file size {} ({file_size} bytes) is above TikTok's maximum of {} ({} bytes)",
            fmt_gb(file_size),
            fmt_gb(limits.max_bytes),
            limits.max_bytes
        ));
    }
    if let Some(max) = limits.max_duration {
        if info.duration.is_zero() {
            v.warnings.push(format!(
                "duration unknown (the file does not record it); this creator may post at most {}",
                fmt_duration(max)
            ));
        } else if info.duration > max {
            v.errors.push(format!(
                "duration {} is longer than the {} this creator may post",
                fmt_duration(info.duration),
                fmt_duration(max)
            ));
        }
    }
    v
}

/// The Content-Type TikTok wants for the container (`None` for Matroska, which it refuses).
pub fn content_type(container: Container) -> Option<&'static str> {
    match container {
        Container::Mp4 => Some("video/mp4"),
        Container::Mov => Some("video/quicktime"),
        Container::WebM => Some("video/webm"),
        Container::Matroska => None,
    }
}
