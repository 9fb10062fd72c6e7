//! Video preflight: which container, codec, picture size, frame rate and duration a file
//! has, read from its headers only, and whether TikTok's documented limits accept it.
//!
//! MP4 and MOV (ISO base media): upq walks the top-level boxes itself, seeking past `mdat`,
//! and hands only the `ftyp` and `moov` byte ranges to `mp4parse`. `mp4parse` does not know
//! HEVC sample entries, so the sample entry's fourcc (and coded size) is read from `stsd`
//! directly when the crate reports an unknown entry.
//!
//! WebM and Matroska: a small EBML reader reads the EBML header, the Segment's Info and
//! Tracks, and stops at the first Cluster once both are read. Every size is checked against
//! its parent and the file; elements read into memory are capped at [`EBML_READ_CAP`].
//!
//! A frame rate of `0.0` or a zero duration means the file does not record it; `check` then
//! warns instead of failing.

use std::fmt;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The most of one EBML element (Info, Tracks, SeekHead, EBML header) read into memory.
pub const EBML_READ_CAP: u64 = 1024 * 1024;
/// The largest `moov` box upq parses (a 10-minute 60 fps video with audio needs about 1 MB).
pub const MOOV_READ_CAP: u64 = 64 * 1024 * 1024;
/// TikTok's maximum file size, in bytes (documented as 4 GB; decimal).
pub const TIKTOK_MAX_BYTES: u64 = 4_000_000_000;
/// Below this many pixels on the short side TikTok may show a video softer.
pub const SHARP_SHORT_SIDE: u32 = 1080;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    Mp4,
    Mov,
    WebM,
    Matroska,
}

impl fmt::Display for Container {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Container::Mp4 => "MP4",
            Container::Mov => "MOV",
            Container::WebM => "WebM",
            Container::Matroska => "Matroska",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoCodec {
    H264,
    H265,
    Vp8,
    Vp9,
    Av1,
    /// The sample entry fourcc (MP4/MOV) or CodecID (WebM/Matroska).
    Other(String),
}

impl VideoCodec {
    /// Maps an MP4/MOV sample entry fourcc.
    pub fn from_fourcc(fourcc: &str) -> VideoCodec {
        match fourcc {
            "avc1" | "avc3" => VideoCodec::H264,
            "hvc1" | "hev1" => VideoCodec::H265,
            "vp08" => VideoCodec::Vp8,
            "vp09" => VideoCodec::Vp9,
            "av01" => VideoCodec::Av1,
            other => VideoCodec::Other(other.to_owned()),
        }
    }

    /// Maps a Matroska CodecID.
    pub fn from_codec_id(id: &str) -> VideoCodec {
        match id {
            "V_MPEG4/ISO/AVC" => VideoCodec::H264,
            "V_MPEGH/ISO/HEVC" => VideoCodec::H265,
            "V_VP8" => VideoCodec::Vp8,
            "V_VP9" => VideoCodec::Vp9,
            "V_AV1" => VideoCodec::Av1,
            other => VideoCodec::Other(other.to_owned()),
        }
    }
}

/// A readable name for codecs TikTok does not take, by fourcc or CodecID.
fn other_codec_name(tag: &str) -> Option<&'static str> {
    Some(match tag {
        "mp4v" | "V_MPEG4/ISO/ASP" | "V_MPEG4/ISO/SP" | "V_MPEG4/ISO/AP" => "MPEG-4 Part 2",
        "s263" | "h263" | "H263" => "H.263",
        "mp2v" | "V_MPEG2" => "MPEG-2",
        "V_MPEG1" => "MPEG-1",
        "jpeg" | "mjpa" | "mjpb" | "V_MJPEG" => "Motion JPEG",
        "apch" | "apcn" | "apcs" | "apco" | "ap4h" | "ap4x" | "V_PRORES" => "Apple ProRes",
        "dvh1" | "dvhe" => "Dolby Vision",
        "V_THEORA" => "Theora",
        "encv" => "encrypted video",
        "raw " | "V_UNCOMPRESSED" => "uncompressed video",
        _ => return None,
    })
}

impl fmt::Display for VideoCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VideoCodec::H264 => f.write_str("H.264"),
            VideoCodec::H265 => f.write_str("H.265"),
            VideoCodec::Vp8 => f.write_str("VP8"),
            VideoCodec::Vp9 => f.write_str("VP9"),
            VideoCodec::Av1 => f.write_str("AV1"),
            VideoCodec::Other(tag) => match other_codec_name(tag) {
                Some(name) => write!(f, "{name} ({tag})"),
                None => write!(f, "an unknown codec ({tag})"),
            },
        }
    }
}

/// What a probe found. `fps == 0.0` and a zero `duration` mean "not recorded in the file".
#[derive(Debug, Clone, PartialEq)]
pub struct MediaInfo {
    pub container: Container,
    pub codec: VideoCodec,
    /// As displayed: MP4/MOV sizes are swapped when the track is rotated by 90 or 270 degrees.
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    pub duration: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot read {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{} is empty (0 bytes), not a video", path.display())]
    Empty { path: PathBuf },
    #[error(
        "{} is not a video container upq knows (MP4, MOV, WebM or Matroska): {found}",
        path.display()
    )]
    UnknownFormat { path: PathBuf, found: String },
    #[error("{} has no video track ({format} file with {found})", path.display())]
    NoVideoTrack {
        path: PathBuf,
        format: &'static str,
        found: String,
    },
    #[error("{} is a damaged or truncated {format} file: {reason}", path.display())]
    Damaged {
        path: PathBuf,
        format: &'static str,
        reason: String,
    },
}

impl ProbeError {
    pub fn path(&self) -> &Path {
        match self {
            ProbeError::Io { path, .. }
            | ProbeError::Empty { path }
            | ProbeError::UnknownFormat { path, .. }
            | ProbeError::NoVideoTrack { path, .. }
            | ProbeError::Damaged { path, .. } => path,
        }
    }
}

/// Why a probe failed, before the path is attached.
#[derive(Debug)]
enum Bad {
    Io(io::Error),
    Unknown(String),
    NoVideo(&'static str, String),
    Damaged(&'static str, String),
}

impl From<io::Error> for Bad {
    fn from(e: io::Error) -> Bad {
        Bad::Io(e)
    }
}

impl Bad {
    fn into_error(self, path: &Path) -> ProbeError {
        let path = path.to_owned();
        match self {
            Bad::Io(source) => ProbeError::Io { path, source },
            Bad::Unknown(found) => ProbeError::UnknownFormat { path, found },
            Bad::NoVideo(format, found) => ProbeError::NoVideoTrack {
                path,
                format,
                found,
            },
            Bad::Damaged(format, reason) => ProbeError::Damaged {
                path,
                format,
                reason,
            },
        }
    }
}

/// Blocking: reads only the container's headers (moov / EBML Segment Info + Tracks), never
/// the media data; seeks past mdat / Clusters.
pub fn probe(path: &Path) -> Result<MediaInfo, ProbeError> {
    let io_error = |source| ProbeError::Io {
        path: path.to_owned(),
        source,
    };
    // Looked at before opening: opening a FIFO would wait for a writer.
    let meta = std::fs::metadata(path).map_err(io_error)?;
    if !meta.is_file() {
        let found = if meta.is_dir() {
            "it is a directory"
        } else {
            "it is not a regular file"
        };
        return Err(ProbeError::UnknownFormat {
            path: path.to_owned(),
            found: found.into(),
        });
    }
    if meta.len() == 0 {
        return Err(ProbeError::Empty {
            path: path.to_owned(),
        });
    }
    // Swapped for a FIFO since the look above: the open must not wait for a writer.
    let file = crate::source::open_without_waiting(path).map_err(io_error)?;
    let len = file.metadata().map_err(io_error)?.len();
    let mut reader = BufReader::with_capacity(8 * 1024, file);
    probe_reader(&mut reader, len).map_err(|bad| bad.into_error(path))
}

/// Probes `len` bytes from `r` (positioned anywhere).
fn probe_reader<R: Read + Seek>(r: &mut R, len: u64) -> Result<MediaInfo, Bad> {
    let mut magic = [0u8; 16];
    let n = read_at(r, 0, &mut magic)?;
    let magic = &magic[..n];
    if magic.starts_with(&ebml::MAGIC) {
        ebml::probe(r, len)
    } else if iso::looks_like(magic) {
        iso::probe(r, len)
    } else {
        Err(Bad::Unknown(describe_unknown(magic)))
    }
}

/// Reads up to `buf.len()` bytes at `pos`; fewer only at the end of the stream.
fn read_at<R: Read + Seek>(r: &mut R, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
    r.seek(SeekFrom::Start(pos))?;
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// What a file that is no known container looks like, from its first bytes.
fn describe_unknown(magic: &[u8]) -> String {
    let known: &[(&[u8], usize, &str)] = &[
        (b"RIFF", 0, ""),
        (b"FLV", 0, "it is an FLV (Flash video) file"),
        (b"OggS", 0, "it is an Ogg file"),
        (
            &[0x30, 0x26, 0xB2, 0x75],
            0,
            "it is an ASF/WMV (Windows Media) file",
        ),
        (&[0x00, 0x00, 0x01, 0xBA], 0, "it is an MPEG program stream"),
        (b"\x89PNG", 0, "it is a PNG image"),
        (&[0xFF, 0xD8, 0xFF], 0, "it is a JPEG image"),
        (b"GIF8", 0, "it is a GIF image"),
        (b"%PDF", 0, "it is a PDF document"),
        (b"PK\x03\x04", 0, "it is a ZIP archive"),
        (b"ID3", 0, "it is an MP3 audio file"),
    ];
    for (sig, at, what) in known {
        if magic.len() >= at + sig.len() && &magic[*at..at + sig.len()] == *sig {
            if sig == b"RIFF" {
                return match magic.get(8..12) {
                    Some(b"AVI ") => "it is an AVI file".into(),
                    Some(b"WAVE") => "it is a WAV audio file".into(),
                    _ => "it is a RIFF file".into(),
                };
            }
            return (*what).into();
        }
    }
    if magic.first() == Some(&0x47) {
        return "it looks like an MPEG transport stream".into();
    }
    let text = magic
        .iter()
        .all(|&b| b.is_ascii_graphic() || b.is_ascii_whitespace() || b >= 0x80);
    if text {
        return "it looks like text".into();
    }
    let hex: Vec<String> = magic.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("it starts with the bytes {}", hex.join(" "))
}

/// Rounds a measured frame rate to 3 decimals (29.97002997 -> 29.97; 30.0000003 -> 30).
fn round_fps(fps: f64) -> f64 {
    if fps.is_finite() && fps > 0.0 {
        (fps * 1000.0).round() / 1000.0
    } else {
        0.0
    }
}

mod ebml;
mod iso;
mod limits;
#[cfg(test)]
mod tests;

pub use limits::{check, content_type, fmt_duration, Verdict, VideoLimits};
