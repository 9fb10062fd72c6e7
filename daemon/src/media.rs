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

/// ISO base media files: MP4 and QuickTime MOV.
mod iso {
    use super::*;

    /// Box types that may open an MP4/MOV file (QuickTime files need not start with `ftyp`).
    const OPENING_BOXES: [&[u8; 4]; 7] = [
        b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot",
    ];
    /// `ftyp` brands of still images: ISO files without a movie.
    const IMAGE_BRANDS: [&[u8; 4]; 5] = [b"heic", b"heix", b"mif1", b"msf1", b"avif"];
    /// More top-level boxes than this is not a file worth walking.
    const MAX_TOP_BOXES: usize = 1_000_000;

    pub(super) fn looks_like(magic: &[u8]) -> bool {
        magic.len() >= 8 && OPENING_BOXES.iter().any(|t| &magic[4..8] == *t)
    }

    #[derive(Debug, Clone, Copy)]
    struct BoxHead {
        kind: [u8; 4],
        start: u64,
        /// Where the box's content begins.
        data: u64,
        /// One past the box's last byte (may lie past the file's end: truncated).
        end: u64,
    }

    fn kind_str(kind: &[u8; 4]) -> String {
        kind.iter()
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    b as char
                } else if b == 0xA9 {
                    '©'
                } else {
                    '?'
                }
            })
            .collect()
    }

    /// Reads the header of the box at `pos`, inside a parent ending at `limit`.
    fn read_head<R: Read + Seek>(
        r: &mut R,
        pos: u64,
        limit: u64,
        format: &'static str,
    ) -> Result<BoxHead, Bad> {
        let damaged = |reason: String| Bad::Damaged(format, reason);
        let mut buf = [0u8; 16];
        let n = read_at(r, pos, &mut buf[..8])?;
        if n < 8 {
            return Err(damaged(format!(
                "truncated: a box header at offset {pos} is cut off by the end of the file"
            )));
        }
        let kind: [u8; 4] = buf[4..8].try_into().expect("4 bytes");
        if kind.iter().any(|&b| b < 0x20) {
            return Err(damaged(format!(
                "no box header at offset {pos} (the bytes there are not a box type)"
            )));
        }
        let size32 = u32::from_be_bytes(buf[..4].try_into().expect("4 bytes"));
        let (size, header) = match size32 {
            // Extends to the end of its parent (the file, at top level).
            0 => (limit - pos, 8),
            1 => {
                if read_at(r, pos + 8, &mut buf[8..16])? < 8 {
                    return Err(damaged(format!(
                        "truncated: the '{}' box header at offset {pos} is cut off",
                        kind_str(&kind)
                    )));
                }
                (
                    u64::from_be_bytes(buf[8..16].try_into().expect("8 bytes")),
                    16,
                )
            }
            n => (u64::from(n), 8),
        };
        if size < header {
            return Err(damaged(format!(
                "the '{}' box at offset {pos} has an impossible size of {size} bytes",
                kind_str(&kind)
            )));
        }
        let end = pos.checked_add(size).ok_or_else(|| {
            damaged(format!(
                "the '{}' box at offset {pos} has an impossible size of {size} bytes",
                kind_str(&kind)
            ))
        })?;
        Ok(BoxHead {
            kind,
            start: pos,
            data: pos + header,
            end,
        })
    }

    /// The first child of kind `kind` inside `[from, to)`.
    fn find_child<R: Read + Seek>(
        r: &mut R,
        from: u64,
        to: u64,
        kind: &[u8; 4],
        nth: usize,
        format: &'static str,
    ) -> Result<Option<BoxHead>, Bad> {
        let mut pos = from;
        let mut seen = 0;
        while to.saturating_sub(pos) >= 8 {
            let head = read_head(r, pos, to, format)?;
            if head.end > to {
                return Err(Bad::Damaged(
                    format,
                    format!(
                        "the '{}' box at offset {pos} runs past the end of its parent",
                        kind_str(&head.kind)
                    ),
                ));
            }
            if &head.kind == kind {
                if seen == nth {
                    return Ok(Some(head));
                }
                seen += 1;
            }
            pos = head.end;
        }
        Ok(None)
    }

    /// The fourcc and coded size of the first sample entry in the `stsd` of the moov's
    /// `trak_index`-th track.
    fn sample_entry<R: Read + Seek>(
        r: &mut R,
        moov: BoxHead,
        trak_index: usize,
        format: &'static str,
    ) -> Result<Option<(String, u32, u32)>, Bad> {
        let Some(trak) = find_child(r, moov.data, moov.end, b"trak", trak_index, format)? else {
            return Ok(None);
        };
        let mut parent = trak;
        for kind in [b"mdia", b"minf", b"stbl", b"stsd"] {
            match find_child(r, parent.data, parent.end, kind, 0, format)? {
                Some(child) => parent = child,
                None => return Ok(None),
            }
        }
        // stsd: version/flags (4), entry count (4), then the entries.
        let Some(entry) = find_child_any(r, parent.data + 8, parent.end, format)? else {
            return Ok(None);
        };
        // A visual sample entry: 6 reserved, data reference index (2), 16 pre-defined and
        // reserved, then width and height (u16 each).
        let mut dims = [0u8; 4];
        if entry.end < entry.data + 28 || read_at(r, entry.data + 24, &mut dims)? < 4 {
            return Ok(Some((kind_str(&entry.kind), 0, 0)));
        }
        let width = u16::from_be_bytes([dims[0], dims[1]]);
        let height = u16::from_be_bytes([dims[2], dims[3]]);
        Ok(Some((
            kind_str(&entry.kind),
            u32::from(width),
            u32::from(height),
        )))
    }

    fn find_child_any<R: Read + Seek>(
        r: &mut R,
        from: u64,
        to: u64,
        format: &'static str,
    ) -> Result<Option<BoxHead>, Bad> {
        if to.saturating_sub(from) < 8 {
            return Ok(None);
        }
        let head = read_head(r, from, to, format)?;
        if head.end > to {
            return Err(Bad::Damaged(
                format,
                format!(
                    "the sample entry '{}' at offset {from} runs past the end of 'stsd'",
                    kind_str(&head.kind)
                ),
            ));
        }
        Ok(Some(head))
    }

    /// Presents chosen byte ranges of a seekable source as one stream.
    struct Ranges<'a, R> {
        inner: &'a mut R,
        ranges: Vec<(u64, u64)>,
        current: usize,
        /// Position inside the current range; `None` until the source is positioned there.
        offset: Option<u64>,
    }

    impl<R: Read + Seek> Read for Ranges<'_, R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            loop {
                let Some(&(start, end)) = self.ranges.get(self.current) else {
                    return Ok(0);
                };
                let offset = match self.offset {
                    Some(offset) => offset,
                    None => {
                        self.inner.seek(SeekFrom::Start(start))?;
                        self.offset = Some(0);
                        0
                    }
                };
                let left = end - start - offset;
                if left == 0 {
                    self.current += 1;
                    self.offset = None;
                    continue;
                }
                let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                let n = self.inner.read(&mut buf[..want])?;
                if n == 0 {
                    return Ok(0);
                }
                self.offset = Some(offset + n as u64);
                return Ok(n);
            }
        }
    }

    fn parser_error(format: &'static str, e: mp4parse::Error) -> Bad {
        use mp4parse::Status;
        let reason = match e {
            mp4parse::Error::InvalidData(status) => match status {
                Status::Ok
                | Status::BadArg
                | Status::Invalid
                | Status::Unsupported
                | Status::Eof
                | Status::Io
                | Status::Oom => format!("the movie header is invalid ({status:?})"),
                status => format!("the movie header is invalid: {}", <&str>::from(status)),
            },
            mp4parse::Error::Unsupported(what) => {
                format!("the movie header uses something unsupported: {what}")
            }
            mp4parse::Error::UnexpectedEOF => {
                "the movie header ('moov') ends in the middle of a field".into()
            }
            mp4parse::Error::Io(e) => return Bad::Io(e),
            mp4parse::Error::MoovMissing => "no 'moov' box (the movie header)".into(),
            mp4parse::Error::OutOfMemory => {
                "the movie header needs more memory than there is".into()
            }
        };
        Bad::Damaged(format, reason)
    }

    pub(super) fn probe<R: Read + Seek>(r: &mut R, len: u64) -> Result<MediaInfo, Bad> {
        // Walk the top-level boxes by their headers, seeking over everything else.
        let mut ftyp = None;
        let mut moov = None;
        let mut first = None;
        let mut pos = 0;
        let mut count = 0;
        // Until ftyp says otherwise, name the format from the first box.
        let mut format = "MP4/MOV";
        while len - pos >= 8 {
            let head = read_head(r, pos, len, format)?;
            count += 1;
            if count > MAX_TOP_BOXES {
                return Err(Bad::Damaged(
                    format,
                    format!("more than {MAX_TOP_BOXES} top-level boxes"),
                ));
            }
            if first.is_none() {
                first = Some(head);
                format = if &head.kind == b"ftyp" { "MP4" } else { "MOV" };
            }
            if head.end > len {
                return Err(Bad::Damaged(
                    format,
                    format!(
                        "truncated: the '{}' box at offset {} needs {} bytes but the file ends \
                         after {len} bytes",
                        kind_str(&head.kind),
                        head.start,
                        head.end - head.start
                    ),
                ));
            }
            match &head.kind {
                b"ftyp" if ftyp.is_none() => {
                    if head.end - head.data < 8 {
                        return Err(Bad::Damaged(
                            format,
                            format!("the 'ftyp' box at offset {pos} is too short for a brand"),
                        ));
                    }
                    let mut brand = [0u8; 4];
                    read_at(r, head.data, &mut brand)?;
                    format = if &brand == b"qt  " { "MOV" } else { "MP4" };
                    ftyp = Some((head, brand));
                }
                b"moov" if moov.is_none() => moov = Some(head),
                _ => {}
            }
            pos = head.end;
        }
        let container = if format == "MOV" {
            Container::Mov
        } else {
            Container::Mp4
        };
        let Some(moov) = moov else {
            if let Some((_, brand)) = ftyp {
                if IMAGE_BRANDS.contains(&&brand) {
                    return Err(Bad::Unknown(format!(
                        "it is a still image (HEIF/AVIF, brand '{}')",
                        kind_str(&brand)
                    )));
                }
            }
            return Err(Bad::Damaged(
                format,
                "no 'moov' box (the movie header): the recording was not finished or the \
                 file is cut"
                    .into(),
            ));
        };
        if moov.end - moov.start > MOOV_READ_CAP {
            return Err(Bad::Damaged(
                format,
                format!(
                    "its 'moov' box is {} bytes, more than the {MOOV_READ_CAP} bytes upq reads",
                    moov.end - moov.start
                ),
            ));
        }

        let mut ranges = vec![(moov.start, moov.end)];
        if let Some((head, _)) = ftyp {
            ranges.insert(0, (head.start, head.end));
        }
        let context = mp4parse::read_mp4(&mut Ranges {
            inner: r,
            ranges,
            current: 0,
            offset: None,
        })
        .map_err(|e| parser_error(format, e))?;

        let videos: Vec<&mp4parse::Track> = context
            .tracks
            .iter()
            .filter(|t| t.track_type == mp4parse::TrackType::Video)
            .collect();
        let track = videos
            .iter()
            .find(|t| !t.tkhd.as_ref().is_some_and(|h| h.disabled))
            .or(videos.first())
            .copied();
        let Some(track) = track else {
            return Err(Bad::NoVideo(format, describe_tracks(&context.tracks)));
        };

        let entry = track
            .stsd
            .as_ref()
            .and_then(|stsd| stsd.descriptions.first());
        let known = match entry {
            Some(mp4parse::SampleEntry::Video(v)) => {
                use mp4parse::CodecType;
                let codec = match v.codec_type {
                    CodecType::H264 => Some(VideoCodec::H264),
                    CodecType::VP8 => Some(VideoCodec::Vp8),
                    CodecType::VP9 => Some(VideoCodec::Vp9),
                    CodecType::AV1 => Some(VideoCodec::Av1),
                    CodecType::MP4V => Some(VideoCodec::Other("mp4v".into())),
                    _ => None,
                };
                codec.map(|c| (c, u32::from(v.width), u32::from(v.height)))
            }
            _ => None,
        };
        let (codec, mut width, mut height) = match known {
            Some(known) => known,
            // mp4parse does not know this sample entry (HEVC among others): read it.
            None => match sample_entry(r, moov, track.id, format)? {
                Some((fourcc, w, h)) => (VideoCodec::from_fourcc(&fourcc), w, h),
                None => {
                    return Err(Bad::Damaged(
                        format,
                        "the video track has no sample description ('stsd')".into(),
                    ))
                }
            },
        };
        if let Some(tkhd) = &track.tkhd {
            let m = &tkhd.matrix;
            // A 90 or 270 degree rotation: the picture is shown with its sides swapped.
            if m.a == 0 && m.d == 0 && m.b != 0 && m.c != 0 {
                std::mem::swap(&mut width, &mut height);
            }
            if width == 0 || height == 0 {
                // Fall back to the track header's display size (16.16 fixed point).
                width = tkhd.width >> 16;
                height = tkhd.height >> 16;
            }
        }

        let timescale = track.timescale.map_or(0, |t| t.0);
        let (frames, ticks) = track.stts.as_ref().map_or((0u128, 0u128), |stts| {
            stts.samples.iter().fold((0, 0), |(f, t), s| {
                (
                    f + u128::from(s.sample_count),
                    t + u128::from(s.sample_count) * u128::from(s.sample_delta),
                )
            })
        });
        let fps = if frames > 0 && ticks > 0 && timescale > 0 {
            round_fps(frames as f64 * timescale as f64 / ticks as f64)
        } else {
            0.0
        };
        let media_ticks = track.duration.map_or(0, |d| d.0);
        let duration = if media_ticks > 0 && timescale > 0 {
            scaled(media_ticks, timescale)
        } else {
            // Fragmented files: the movie-extends header may say how long the movie is.
            match (
                context.mvex.as_ref().and_then(|m| m.fragment_duration),
                context.timescale,
            ) {
                (Some(d), Some(scale)) if scale.0 > 0 => scaled(d.0, scale.0),
                _ => Duration::ZERO,
            }
        };
        Ok(MediaInfo {
            container,
            codec,
            width,
            height,
            fps,
            duration,
        })
    }

    fn scaled(ticks: u64, timescale: u64) -> Duration {
        let nanos = u128::from(ticks) * 1_000_000_000 / u128::from(timescale);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    fn describe_tracks(tracks: &[mp4parse::Track]) -> String {
        if tracks.is_empty() {
            return "no tracks at all".into();
        }
        let mut parts = Vec::new();
        for (kind, name) in [
            (mp4parse::TrackType::Audio, "audio"),
            (mp4parse::TrackType::Picture, "picture"),
            (mp4parse::TrackType::AuxiliaryVideo, "auxiliary video"),
            (mp4parse::TrackType::Metadata, "metadata"),
            (mp4parse::TrackType::Unknown, "other"),
        ] {
            let n = tracks.iter().filter(|t| t.track_type == kind).count();
            if n > 0 {
                parts.push(format!("{n} {name} track{}", if n == 1 { "" } else { "s" }));
            }
        }
        format!("only {}", parts.join(", "))
    }
}

/// EBML files: WebM and Matroska.
mod ebml {
    use super::*;

    pub(super) const MAGIC: [u8; 4] = [0x1A, 0x45, 0xDF, 0xA3];

    const EBML: u32 = 0x1A45_DFA3;
    const DOC_TYPE: u32 = 0x4282;
    const SEGMENT: u32 = 0x1853_8067;
    const SEEK_HEAD: u32 = 0x114D_9B74;
    const SEEK: u32 = 0x4DBB;
    const SEEK_ID: u32 = 0x53AB;
    const SEEK_POSITION: u32 = 0x53AC;
    const INFO: u32 = 0x1549_A966;
    const TIMESTAMP_SCALE: u32 = 0x2A_D7B1;
    const DURATION: u32 = 0x4489;
    const TRACKS: u32 = 0x1654_AE6B;
    const TRACK_ENTRY: u32 = 0xAE;
    const TRACK_NUMBER: u32 = 0xD7;
    const TRACK_TYPE: u32 = 0x83;
    const FLAG_ENABLED: u32 = 0xB9;
    const CODEC_ID: u32 = 0x86;
    const DEFAULT_DURATION: u32 = 0x23_E383;
    const VIDEO: u32 = 0xE0;
    const PIXEL_WIDTH: u32 = 0xB0;
    const PIXEL_HEIGHT: u32 = 0xBA;
    const CLUSTER: u32 = 0x1F43_B675;
    const SIMPLE_BLOCK: u32 = 0xA3;
    const BLOCK_GROUP: u32 = 0xA0;
    const BLOCK: u32 = 0xA1;
    /// What a Cluster may contain; any other ID ends an unknown-size Cluster.
    const CLUSTER_CHILDREN: [u32; 9] = [
        0xE7,
        0x5854,
        0xA7,
        0xAB,
        SIMPLE_BLOCK,
        BLOCK_GROUP,
        0xAF,
        0xEC,
        0xBF,
    ];
    /// Segment children visited before giving up (a real file has a handful before the
    /// first Cluster, and one per Cluster after).
    const MAX_ELEMENTS: usize = 1_000_000;
    /// Block timestamps read from the first Cluster when the track has no DefaultDuration.
    const MAX_BLOCKS: usize = 512;

    fn name(id: u32) -> String {
        match id {
            EBML => "EBML header".into(),
            SEGMENT => "Segment".into(),
            SEEK_HEAD => "SeekHead".into(),
            INFO => "Info".into(),
            TRACKS => "Tracks".into(),
            TRACK_ENTRY => "TrackEntry".into(),
            VIDEO => "Video".into(),
            CLUSTER => "Cluster".into(),
            SIMPLE_BLOCK => "SimpleBlock".into(),
            BLOCK_GROUP => "BlockGroup".into(),
            id => format!("0x{id:X}"),
        }
    }

    /// An element's ID and size, from the start of `b`: `Ok(None)` when `b` is too short.
    /// The size is `None` when unknown (all value bits set).
    pub(super) fn parse_head(b: &[u8]) -> Result<Option<(u32, Option<u64>, usize)>, String> {
        let Some(&first) = b.first() else {
            return Ok(None);
        };
        let id_len = first.leading_zeros() as usize + 1;
        if id_len > 4 {
            return Err(format!("an invalid element ID (first byte 0x{first:02x})"));
        }
        if b.len() < id_len {
            return Ok(None);
        }
        let id = b[..id_len]
            .iter()
            .fold(0u32, |acc, &x| (acc << 8) | u32::from(x));
        let Some(&first) = b.get(id_len) else {
            return Ok(None);
        };
        let size_len = first.leading_zeros() as usize + 1;
        if size_len > 8 {
            return Err(format!(
                "an invalid size for element {} (first byte 0x00)",
                name(id)
            ));
        }
        if b.len() < id_len + size_len {
            return Ok(None);
        }
        let mut value = u64::from(first) & (0xFF >> size_len);
        let mut all_ones = value == 0xFF >> size_len;
        for &x in &b[id_len + 1..id_len + size_len] {
            value = (value << 8) | u64::from(x);
            all_ones &= x == 0xFF;
        }
        let size = if all_ones { None } else { Some(value) };
        Ok(Some((id, size, id_len + size_len)))
    }

    /// An element header read from the stream.
    #[derive(Debug, Clone, Copy)]
    struct Head {
        id: u32,
        start: u64,
        data: u64,
        size: Option<u64>,
    }

    struct Reader<'a, R> {
        r: &'a mut R,
        len: u64,
        format: &'static str,
    }

    impl<R: Read + Seek> Reader<'_, R> {
        fn damaged(&self, reason: String) -> Bad {
            Bad::Damaged(self.format, reason)
        }

        /// The header at `pos`, whose parent ends at `limit`; a known size must fit in it.
        fn head(&mut self, pos: u64, limit: u64) -> Result<Head, Bad> {
            let mut buf = [0u8; 12];
            let n = read_at(self.r, pos, &mut buf)?;
            let n = n.min(usize::try_from(limit.saturating_sub(pos)).unwrap_or(usize::MAX));
            let parsed =
                parse_head(&buf[..n]).map_err(|e| self.damaged(format!("{e} at offset {pos}")))?;
            let Some((id, size, header)) = parsed else {
                return Err(self.damaged(format!(
                    "truncated: an element header at offset {pos} is cut off{}",
                    if limit >= self.len {
                        " by the end of the file"
                    } else {
                        " by the end of its parent"
                    }
                )));
            };
            let data = pos + header as u64;
            if let Some(size) = size {
                if data.checked_add(size).is_none_or(|end| end > limit) {
                    let what = if limit >= self.len {
                        format!(
                            "truncated: the {} element at offset {pos} needs {size} bytes but \
                             the file ends after {} bytes",
                            name(id),
                            self.len
                        )
                    } else {
                        format!(
                            "the {} element at offset {pos} claims {size} bytes, more than its \
                             parent holds",
                            name(id)
                        )
                    };
                    return Err(self.damaged(what));
                }
            }
            Ok(Head {
                id,
                start: pos,
                data,
                size,
            })
        }

        /// The element's content, at most [`EBML_READ_CAP`] bytes.
        fn content(&mut self, head: Head) -> Result<Vec<u8>, Bad> {
            let Some(size) = head.size else {
                return Err(self.damaged(format!(
                    "the {} element at offset {} has an unknown size",
                    name(head.id),
                    head.start
                )));
            };
            if size > EBML_READ_CAP {
                return Err(self.damaged(format!(
                    "the {} element at offset {} is {size} bytes, more than the {EBML_READ_CAP} \
                     bytes upq reads",
                    name(head.id),
                    head.start
                )));
            }
            let mut buf = vec![0u8; size as usize];
            if read_at(self.r, head.data, &mut buf)? < buf.len() {
                return Err(self.damaged(format!(
                    "truncated: the {} element at offset {} is cut off",
                    name(head.id),
                    head.start
                )));
            }
            Ok(buf)
        }

        /// Where an unknown-size Cluster starting at `head` ends: at the first element that
        /// cannot be its child.
        fn cluster_end(&mut self, head: Head, limit: u64) -> Result<u64, Bad> {
            if let Some(size) = head.size {
                return Ok(head.data + size);
            }
            let mut pos = head.data;
            while pos < limit {
                let child = self.head(pos, limit)?;
                if !CLUSTER_CHILDREN.contains(&child.id) {
                    return Ok(pos);
                }
                pos = self.known_end(child)?;
            }
            Ok(limit)
        }

        fn known_end(&self, head: Head) -> Result<u64, Bad> {
            match head.size {
                Some(size) => Ok(head.data + size),
                None => Err(self.damaged(format!(
                    "the {} element at offset {} has an unknown size",
                    name(head.id),
                    head.start
                ))),
            }
        }

        /// Block timestamps of `track` in the Cluster `head` (ending at `end`), in the
        /// Cluster's timestamp units.
        fn block_timestamps(&mut self, head: Head, end: u64, track: u64) -> Result<Vec<i64>, Bad> {
            let mut stamps = Vec::new();
            let mut pos = head.data;
            while pos < end && stamps.len() < MAX_BLOCKS {
                let child = self.head(pos, end)?;
                if !CLUSTER_CHILDREN.contains(&child.id) {
                    break;
                }
                let child_end = self.known_end(child)?;
                let block = match child.id {
                    SIMPLE_BLOCK => Some(child),
                    BLOCK_GROUP => {
                        let mut found = None;
                        let mut at = child.data;
                        while at < child_end {
                            let inner = self.head(at, child_end)?;
                            if inner.id == BLOCK {
                                found = Some(inner);
                                break;
                            }
                            at = self.known_end(inner)?;
                        }
                        found
                    }
                    _ => None,
                };
                if let Some(block) = block {
                    let mut buf = [0u8; 11];
                    let block_end = self.known_end(block)?;
                    let n = read_at(self.r, block.data, &mut buf)?;
                    let n = n.min((block_end - block.data) as usize);
                    if let Some((number, at)) = block_track(&buf[..n]) {
                        if number == track && n >= at + 2 {
                            stamps.push(i64::from(i16::from_be_bytes([buf[at], buf[at + 1]])));
                        }
                    }
                }
                pos = child_end;
            }
            Ok(stamps)
        }
    }

    /// The track number at the start of a Block, and where its timestamp begins.
    fn block_track(b: &[u8]) -> Option<(u64, usize)> {
        let first = *b.first()?;
        let len = first.leading_zeros() as usize + 1;
        if len > 8 || b.len() < len {
            return None;
        }
        let mut value = u64::from(first) & (0xFF >> len);
        for &x in &b[1..len] {
            value = (value << 8) | u64::from(x);
        }
        Some((value, len))
    }

    /// The children of an element read into memory.
    pub(super) fn children(buf: &[u8]) -> impl Iterator<Item = Result<(u32, &[u8]), String>> {
        let mut pos = 0usize;
        let mut failed = false;
        std::iter::from_fn(move || {
            if failed || pos >= buf.len() {
                return None;
            }
            let item = match parse_head(&buf[pos..]) {
                Err(e) => Err(e),
                Ok(None) => Err(format!("an element header at byte {pos} is cut off")),
                Ok(Some((id, None, _))) => Err(format!(
                    "the {} element at byte {pos} has an unknown size",
                    name(id)
                )),
                Ok(Some((id, Some(size), header))) => {
                    let data = pos + header;
                    match usize::try_from(size)
                        .ok()
                        .and_then(|s| data.checked_add(s))
                        .filter(|&end| end <= buf.len())
                    {
                        Some(end) => {
                            pos = end;
                            Ok((id, &buf[data..end]))
                        }
                        None => Err(format!(
                            "the {} element at byte {pos} claims {size} bytes, more than its \
                             parent holds",
                            name(id)
                        )),
                    }
                }
            };
            failed = item.is_err();
            Some(item)
        })
    }

    fn uint(b: &[u8]) -> Result<u64, String> {
        if b.len() > 8 {
            return Err(format!("an unsigned integer of {} bytes", b.len()));
        }
        Ok(b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
    }

    fn float(b: &[u8]) -> Result<f64, String> {
        match b.len() {
            0 => Ok(0.0),
            4 => Ok(f64::from(f32::from_be_bytes(
                b.try_into().expect("4 bytes"),
            ))),
            8 => Ok(f64::from_be_bytes(b.try_into().expect("8 bytes"))),
            n => Err(format!("a float of {n} bytes")),
        }
    }

    fn string(b: &[u8]) -> String {
        let end = b.iter().position(|&x| x == 0).unwrap_or(b.len());
        String::from_utf8_lossy(&b[..end]).into_owned()
    }

    /// What Info says: the timestamp scale (ns) and the duration (in scaled units).
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub(super) struct Info {
        pub scale: u64,
        pub duration: Option<f64>,
    }

    pub(super) fn parse_info(buf: &[u8]) -> Result<Info, String> {
        let mut info = Info {
            scale: 1_000_000,
            duration: None,
        };
        for child in children(buf) {
            let (id, data) = child.map_err(|e| format!("in Info: {e}"))?;
            match id {
                TIMESTAMP_SCALE => {
                    info.scale = uint(data).map_err(|e| format!("TimestampScale is {e}"))?;
                    if info.scale == 0 {
                        return Err("TimestampScale is 0".into());
                    }
                }
                DURATION => {
                    let d = float(data).map_err(|e| format!("Duration is {e}"))?;
                    info.duration = (d.is_finite() && d > 0.0).then_some(d);
                }
                _ => {}
            }
        }
        Ok(info)
    }

    /// The first (enabled) video track, and a count of the other kinds.
    #[derive(Debug, Clone, PartialEq, Default)]
    pub(super) struct VideoTrack {
        pub number: u64,
        pub codec_id: String,
        pub width: u64,
        pub height: u64,
        pub default_duration: Option<u64>,
    }

    pub(super) struct Tracks {
        pub video: Option<VideoTrack>,
        pub others: Vec<u64>,
    }

    pub(super) fn parse_tracks(buf: &[u8]) -> Result<Tracks, String> {
        let mut videos = Vec::new();
        let mut others = Vec::new();
        for child in children(buf) {
            let (id, entry) = child.map_err(|e| format!("in Tracks: {e}"))?;
            if id != TRACK_ENTRY {
                continue;
            }
            let mut track = VideoTrack::default();
            let mut kind = 0;
            let mut enabled = true;
            for field in children(entry) {
                let (id, data) = field.map_err(|e| format!("in a TrackEntry: {e}"))?;
                let bad = |e: String| format!("a TrackEntry's {}: {e}", name(id));
                match id {
                    TRACK_NUMBER => track.number = uint(data).map_err(bad)?,
                    TRACK_TYPE => kind = uint(data).map_err(bad)?,
                    FLAG_ENABLED => enabled = uint(data).map_err(bad)? != 0,
                    CODEC_ID => track.codec_id = string(data),
                    DEFAULT_DURATION => {
                        track.default_duration = Some(uint(data).map_err(bad)?).filter(|&d| d > 0)
                    }
                    VIDEO => {
                        for video in children(data) {
                            let (id, data) = video.map_err(|e| format!("in a Video: {e}"))?;
                            match id {
                                PIXEL_WIDTH => track.width = uint(data).map_err(bad)?,
                                PIXEL_HEIGHT => track.height = uint(data).map_err(bad)?,
                                _ => {}
                            }
                        }
                    }
                    _ => {}
                }
            }
            if kind == 1 {
                videos.push((enabled, track));
            } else {
                others.push(kind);
            }
        }
        let video = videos
            .iter()
            .position(|(enabled, _)| *enabled)
            .or(if videos.is_empty() { None } else { Some(0) })
            .map(|i| videos.swap_remove(i).1);
        Ok(Tracks { video, others })
    }

    fn describe_others(others: &[u64]) -> String {
        if others.is_empty() {
            return "no tracks at all".into();
        }
        let mut parts = Vec::new();
        for (kind, label) in [
            (2, "audio"),
            (0x11, "subtitle"),
            (3, "complex"),
            (0x10, "logo"),
            (0x12, "button"),
            (0x20, "control"),
            (0x21, "metadata"),
        ] {
            let n = others.iter().filter(|&&k| k == kind).count();
            if n > 0 {
                parts.push(format!(
                    "{n} {label} track{}",
                    if n == 1 { "" } else { "s" }
                ));
            }
        }
        let rest = others
            .iter()
            .filter(|&&k| ![2, 0x11, 3, 0x10, 0x12, 0x20, 0x21].contains(&k))
            .count();
        if rest > 0 {
            parts.push(format!(
                "{rest} track{} of unknown type",
                if rest == 1 { "" } else { "s" }
            ));
        }
        format!("only {}", parts.join(", "))
    }

    /// Seek entries: (element ID, position relative to the Segment's data).
    pub(super) fn parse_seek_head(buf: &[u8]) -> Result<Vec<(u32, u64)>, String> {
        let mut seeks = Vec::new();
        for child in children(buf) {
            let (id, data) = child.map_err(|e| format!("in SeekHead: {e}"))?;
            if id != SEEK {
                continue;
            }
            let mut target = None;
            let mut position = None;
            for field in children(data) {
                let (id, data) = field.map_err(|e| format!("in a Seek: {e}"))?;
                match id {
                    SEEK_ID if data.len() <= 4 => {
                        target = Some(data.iter().fold(0u32, |a, &x| (a << 8) | u32::from(x)))
                    }
                    SEEK_POSITION => position = Some(uint(data)?),
                    _ => {}
                }
            }
            if let (Some(target), Some(position)) = (target, position) {
                seeks.push((target, position));
            }
        }
        Ok(seeks)
    }

    pub(super) fn probe<R: Read + Seek>(r: &mut R, len: u64) -> Result<MediaInfo, Bad> {
        let mut rd = Reader {
            r,
            len,
            format: "WebM/Matroska",
        };
        let header = rd.head(0, len)?;
        let header_buf = rd.content(header)?;
        let mut doc_type = "matroska".to_owned();
        for child in children(&header_buf) {
            let (id, data) = child.map_err(|e| rd.damaged(format!("in the EBML header: {e}")))?;
            if id == DOC_TYPE {
                doc_type = string(data);
            }
        }
        let container = match doc_type.as_str() {
            "webm" => Container::WebM,
            "matroska" => Container::Matroska,
            other => {
                return Err(Bad::Unknown(format!(
                    "it is an EBML file of DocType '{other}', not WebM or Matroska"
                )))
            }
        };
        rd.format = if container == Container::WebM {
            "WebM"
        } else {
            "Matroska"
        };

        // Find the Segment (Void or CRC elements may come first).
        let mut pos = header.data + header_buf.len() as u64;
        let segment = loop {
            if pos >= len {
                return Err(rd.damaged("no Segment after the EBML header".into()));
            }
            let head = rd.head(pos, len)?;
            if head.id == SEGMENT {
                break head;
            }
            pos = rd.known_end(head)?;
        };
        let seg_end = segment.size.map_or(len, |s| segment.data + s);

        let mut info = None;
        let mut tracks = None;
        let mut seeks: Vec<(u32, u64)> = Vec::new();
        let mut first_cluster = None;
        let mut pos = segment.data;
        let mut visited = 0usize;
        while pos < seg_end && (info.is_none() || tracks.is_none() || first_cluster.is_none()) {
            visited += 1;
            if visited > MAX_ELEMENTS {
                return Err(rd.damaged(format!(
                    "more than {MAX_ELEMENTS} elements in the Segment before its Tracks"
                )));
            }
            let head = rd.head(pos, seg_end)?;
            match head.id {
                CLUSTER => {
                    let end = rd.cluster_end(head, seg_end)?;
                    if first_cluster.is_none() {
                        first_cluster = Some((head, end));
                    }
                    if info.is_some() && tracks.is_some() {
                        break;
                    }
                    // Info or Tracks come after the media: jump there if the SeekHead says
                    // where, else keep skipping Clusters.
                    let missing = [(INFO, info.is_none()), (TRACKS, tracks.is_none())];
                    let all_known = missing
                        .iter()
                        .filter(|(_, m)| *m)
                        .all(|(id, _)| seeks.iter().any(|(t, _)| t == id));
                    if all_known {
                        break;
                    }
                    pos = end;
                    continue;
                }
                INFO if info.is_none() => {
                    let buf = rd.content(head)?;
                    info = Some(parse_info(&buf).map_err(|e| rd.damaged(e))?);
                }
                TRACKS if tracks.is_none() => {
                    let buf = rd.content(head)?;
                    tracks = Some(parse_tracks(&buf).map_err(|e| rd.damaged(e))?);
                }
                SEEK_HEAD if seeks.is_empty() => {
                    let buf = rd.content(head)?;
                    seeks = parse_seek_head(&buf).map_err(|e| rd.damaged(e))?;
                }
                _ => {}
            }
            pos = rd.known_end(head)?;
        }
        // Whatever is still missing, from where the SeekHead points.
        for (target, rel) in seeks.clone() {
            let wanted = match target {
                INFO => info.is_none(),
                TRACKS => tracks.is_none(),
                _ => false,
            };
            if !wanted {
                continue;
            }
            let at = segment.data.saturating_add(rel);
            if at >= seg_end {
                return Err(rd.damaged(format!(
                    "the SeekHead points {} past the end of the Segment",
                    name(target)
                )));
            }
            let head = rd.head(at, seg_end)?;
            if head.id != target {
                return Err(rd.damaged(format!(
                    "the SeekHead points {} at offset {at}, where there is a {} element",
                    name(target),
                    name(head.id)
                )));
            }
            let buf = rd.content(head)?;
            if target == INFO {
                info = Some(parse_info(&buf).map_err(|e| rd.damaged(e))?);
            } else {
                tracks = Some(parse_tracks(&buf).map_err(|e| rd.damaged(e))?);
            }
        }
        let Some(tracks) = tracks else {
            return Err(rd.damaged("no Tracks element in the Segment".into()));
        };
        let info = info.unwrap_or(Info {
            scale: 1_000_000,
            duration: None,
        });
        let Some(video) = tracks.video else {
            return Err(Bad::NoVideo(rd.format, describe_others(&tracks.others)));
        };

        let fps = match video.default_duration {
            Some(ns) => round_fps(1e9 / ns as f64),
            None => match first_cluster {
                Some((head, end)) => {
                    let mut stamps = rd.block_timestamps(head, end, video.number)?;
                    stamps.sort_unstable();
                    stamps.dedup();
                    match (stamps.first(), stamps.last()) {
                        (Some(&lo), Some(&hi)) if hi > lo && stamps.len() >= 2 => {
                            let span_ns = (hi - lo) as f64 * info.scale as f64;
                            let fps = (stamps.len() - 1) as f64 * 1e9 / span_ns;
                            // Block timestamps are coarse (1 ms by default): 2 decimals.
                            if fps.is_finite() {
                                (fps * 100.0).round() / 100.0
                            } else {
                                0.0
                            }
                        }
                        _ => 0.0,
                    }
                }
                None => 0.0,
            },
        };
        let duration = info
            .duration
            .map(|d| d * info.scale as f64)
            .filter(|ns| ns.is_finite() && *ns > 0.0 && *ns < u64::MAX as f64)
            .map_or(Duration::ZERO, |ns| Duration::from_nanos(ns.round() as u64));
        let side = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        Ok(MediaInfo {
            container,
            codec: VideoCodec::from_codec_id(&video.codec_id),
            width: side(video.width),
            height: side(video.height),
            fps,
            duration,
        })
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    // --- hand-built EBML ---

    fn id_bytes(id: u32) -> Vec<u8> {
        let b = id.to_be_bytes();
        let skip = b.iter().take_while(|&&x| x == 0).count();
        b[skip..].to_vec()
    }

    /// An element with an 8-byte size field (as many muxers write them).
    fn el(id: u32, data: &[u8]) -> Vec<u8> {
        let mut v = id_bytes(id);
        v.push(0x01);
        v.extend_from_slice(&(data.len() as u64).to_be_bytes()[1..]);
        v.extend_from_slice(data);
        v
    }

    /// An element of unknown size.
    fn el_unknown(id: u32, data: &[u8]) -> Vec<u8> {
        let mut v = id_bytes(id);
        v.extend_from_slice(&[0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
        v.extend_from_slice(data);
        v
    }

    fn uint_el(id: u32, value: u64) -> Vec<u8> {
        el(id, &value.to_be_bytes())
    }

    fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
        parts.concat()
    }

    fn ebml_header(doc_type: &str) -> Vec<u8> {
        el(
            0x1A45_DFA3,
            &cat(&[uint_el(0x4286, 1), el(0x4282, doc_type.as_bytes())]),
        )
    }

    fn info(duration_ms: f64) -> Vec<u8> {
        el(
            0x1549_A966,
            &cat(&[
                uint_el(0x2A_D7B1, 1_000_000),
                el(0x4489, &duration_ms.to_be_bytes()),
            ]),
        )
    }

    fn video_track(number: u64, codec: &str, w: u64, h: u64, default_ns: Option<u64>) -> Vec<u8> {
        let mut fields = vec![
            uint_el(0xD7, number),
            uint_el(0x83, 1),
            el(0x86, codec.as_bytes()),
            el(0xE0, &cat(&[uint_el(0xB0, w), uint_el(0xBA, h)])),
        ];
        if let Some(ns) = default_ns {
            fields.push(uint_el(0x23_E383, ns));
        }
        el(0xAE, &cat(&fields))
    }

    fn audio_track(number: u64) -> Vec<u8> {
        el(
            0xAE,
            &cat(&[uint_el(0xD7, number), uint_el(0x83, 2), el(0x86, b"A_OPUS")]),
        )
    }

    fn tracks(entries: &[Vec<u8>]) -> Vec<u8> {
        el(0x1654_AE6B, &cat(entries))
    }

    fn simple_block(track: u8, rel_ms: i16, payload: usize) -> Vec<u8> {
        let mut data = vec![0x80 | track];
        data.extend_from_slice(&rel_ms.to_be_bytes());
        data.push(0x80);
        data.extend(std::iter::repeat_n(0xAB, payload));
        el(0xA3, &data)
    }

    fn cluster(blocks: &[Vec<u8>]) -> Vec<u8> {
        el(
            0x1F43_B675,
            &cat(&[vec![uint_el(0xE7, 0)], blocks.to_vec()].concat()),
        )
    }

    fn probe_bytes(bytes: &[u8]) -> Result<MediaInfo, Bad> {
        probe_reader(&mut Cursor::new(bytes), bytes.len() as u64)
    }

    fn damaged(result: Result<MediaInfo, Bad>) -> String {
        match result {
            Err(Bad::Damaged(_, reason)) => reason,
            other => panic!("expected a damaged-file error, got {other:?}"),
        }
    }

    fn good_webm() -> Vec<u8> {
        cat(&[
            ebml_header("webm"),
            el(
                0x1853_8067,
                &cat(&[
                    info(2000.0),
                    tracks(&[
                        audio_track(2),
                        video_track(1, "V_VP9", 1080, 1920, Some(33_333_333)),
                    ]),
                    cluster(&[simple_block(1, 0, 64), simple_block(2, 0, 64)]),
                ]),
            ),
        ])
    }

    #[test]
    fn webm_headers_give_codec_size_rate_and_duration() {
        let info = probe_bytes(&good_webm()).unwrap();
        assert_eq!(
            info,
            MediaInfo {
                container: Container::WebM,
                codec: VideoCodec::Vp9,
                width: 1080,
                height: 1920,
                fps: 30.0,
                duration: Duration::from_secs(2),
            }
        );
    }

    #[test]
    fn matroska_doc_type_and_codec_ids() {
        let file = cat(&[
            ebml_header("matroska"),
            el(
                0x1853_8067,
                &cat(&[
                    info(1000.0),
                    tracks(&[video_track(
                        1,
                        "V_MPEG4/ISO/AVC",
                        640,
                        360,
                        Some(41_708_333),
                    )]),
                ]),
            ),
        ]);
        let info = probe_bytes(&file).unwrap();
        assert_eq!(info.container, Container::Matroska);
        assert_eq!(info.codec, VideoCodec::H264);
        assert_eq!(info.fps, 23.976);
        assert_eq!(
            VideoCodec::from_codec_id("V_MPEG4/ISO/ASP").to_string(),
            "MPEG-4 Part 2 (V_MPEG4/ISO/ASP)"
        );
    }

    #[test]
    fn unknown_sizes_tracks_after_clusters_and_rate_from_block_timestamps() {
        // A live recording: unknown-size Segment and Clusters, no DefaultDuration, and the
        // Tracks written after the first Clusters (no SeekHead to find them).
        let blocks: Vec<Vec<u8>> = [0i16, 80, 40, 120, 160]
            .iter()
            .map(|&t| simple_block(1, t, 16))
            .collect();
        let mut first = el_unknown(0x1F43_B675, &uint_el(0xE7, 0));
        first.extend(cat(&blocks));
        let second = el_unknown(
            0x1F43_B675,
            &cat(&[uint_el(0xE7, 200), simple_block(1, 0, 16)]),
        );
        let file = cat(&[
            ebml_header("webm"),
            el_unknown(
                0x1853_8067,
                &cat(&[
                    el(0x1549_A966, &uint_el(0x2A_D7B1, 1_000_000)),
                    first,
                    second,
                    tracks(&[video_track(1, "V_VP8", 640, 480, None)]),
                ]),
            ),
        ]);
        let info = probe_bytes(&file).unwrap();
        assert_eq!(info.codec, VideoCodec::Vp8);
        assert_eq!((info.width, info.height), (640, 480));
        assert_eq!(info.fps, 25.0);
        assert_eq!(
            info.duration,
            Duration::ZERO,
            "no Duration in Info: unknown"
        );
    }

    /// Counts the bytes read through it.
    struct Counting<R> {
        inner: R,
        read: u64,
    }

    impl<R: Read> Read for Counting<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.read += n as u64;
            Ok(n)
        }
    }

    impl<R: Seek> Seek for Counting<R> {
        fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
            self.inner.seek(pos)
        }
    }

    #[test]
    fn seek_head_finds_tracks_past_a_large_cluster_without_reading_it() {
        let big = cluster(&[simple_block(1, 0, 8 * 1024 * 1024)]);
        let tracks_el = tracks(&[video_track(1, "V_VP9", 720, 1280, Some(16_666_667))]);
        // SeekHead (fixed size, so positions are known) + Info, then the Cluster, then Tracks.
        let info_el = info(500.0);
        let seek = |id: u32, pos: u64| {
            el(
                0x4DBB,
                &cat(&[el(0x53AB, &id_bytes(id)), uint_el(0x53AC, pos)]),
            )
        };
        let head_len = el(
            0x114D_9B74,
            &cat(&[seek(0x1654_AE6B, 0), seek(0x1549_A966, 0)]),
        )
        .len() as u64;
        let tracks_pos = head_len + info_el.len() as u64 + big.len() as u64;
        let seek_head = el(
            0x114D_9B74,
            &cat(&[seek(0x1654_AE6B, tracks_pos), seek(0x1549_A966, head_len)]),
        );
        assert_eq!(seek_head.len() as u64, head_len);
        let file = cat(&[
            ebml_header("webm"),
            el(0x1853_8067, &cat(&[seek_head, info_el, big, tracks_el])),
        ]);
        let mut reader = Counting {
            inner: BufReader::with_capacity(8 * 1024, Cursor::new(&file)),
            read: 0,
        };
        let info = probe_reader(&mut reader, file.len() as u64).unwrap();
        assert_eq!((info.width, info.height, info.fps), (720, 1280, 60.0));
        assert_eq!(info.duration, Duration::from_millis(500));
        assert!(
            reader.read < 64 * 1024,
            "read {} bytes of a {} byte file",
            reader.read,
            file.len()
        );
    }

    #[test]
    fn hostile_sizes_are_errors_not_panics_or_huge_allocations() {
        // A Segment claiming far more than the file: truncated.
        let mut file = ebml_header("webm");
        file.extend_from_slice(&[
            0x18, 0x53, 0x80, 0x67, 0x01, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        ]);
        file.extend(info(1.0));
        assert!(damaged(probe_bytes(&file)).starts_with("truncated: the Segment element"));

        // Tracks claiming 2^56 - 2 bytes inside an unknown-size Segment.
        let mut tracks_huge = vec![
            0x16, 0x54, 0xAE, 0x6B, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE,
        ];
        tracks_huge.extend_from_slice(&[0xAE, 0x80]);
        let file = cat(&[
            ebml_header("webm"),
            el_unknown(0x1853_8067, &cat(&[info(1.0), tracks_huge])),
        ]);
        let reason = damaged(probe_bytes(&file));
        assert!(reason.contains("Tracks element"), "{reason}");

        // A real 2 MiB Tracks element: over the read cap.
        let pad = el(0xEC, &vec![0u8; 2 * 1024 * 1024]);
        let file = cat(&[
            ebml_header("webm"),
            el(
                0x1853_8067,
                &cat(&[
                    info(1.0),
                    tracks(&[video_track(1, "V_VP9", 720, 1280, None), pad]),
                ]),
            ),
        ]);
        let reason = damaged(probe_bytes(&file));
        assert!(
            reason.contains("more than the 1048576 bytes upq reads"),
            "{reason}"
        );

        // A TrackEntry child claiming more than the TrackEntry holds.
        let bad_entry = vec![0xAE, 0x84, 0xD7, 0x88, 0x01, 0x02];
        let file = cat(&[
            ebml_header("webm"),
            el(0x1853_8067, &cat(&[info(1.0), tracks(&[bad_entry])])),
        ]);
        let reason = damaged(probe_bytes(&file));
        assert!(reason.contains("more than its parent holds"), "{reason}");

        // Invalid ID and size bytes.
        let file = cat(&[ebml_header("webm"), vec![0x00, 0x81, 0x00]]);
        assert!(damaged(probe_bytes(&file)).contains("invalid element ID"));
        let file = cat(&[
            ebml_header("webm"),
            vec![0x18, 0x53, 0x80, 0x67, 0x00, 0x00],
        ]);
        assert!(damaged(probe_bytes(&file)).contains("invalid size"));

        // An unknown-size element where only Segment and Cluster may have one.
        let file = cat(&[
            ebml_header("webm"),
            el_unknown(
                0x1853_8067,
                &el_unknown(0x1654_AE6B, &video_track(1, "V_VP9", 1, 1, None)),
            ),
        ]);
        assert!(damaged(probe_bytes(&file)).contains("unknown size"));

        // Unsigned integers longer than 8 bytes.
        let file = cat(&[
            ebml_header("webm"),
            el(
                0x1853_8067,
                &cat(&[info(1.0), tracks(&[el(0xAE, &el(0xD7, &[1; 9]))])]),
            ),
        ]);
        assert!(damaged(probe_bytes(&file)).contains("unsigned integer of 9 bytes"));
    }

    #[test]
    fn every_truncation_and_byte_flip_of_a_webm_is_handled() {
        let good = good_webm();
        for len in 1..good.len() {
            let _ = probe_bytes(&good[..len]);
        }
        for i in 0..good.len() {
            for value in [0x00, 0x01, 0x7F, 0x80, 0xFF] {
                let mut bad = good.clone();
                bad[i] = value;
                let _ = probe_bytes(&bad);
            }
        }
    }

    #[test]
    fn other_doc_types_and_no_video_track() {
        let file = cat(&[ebml_header("fancy"), el(0x1853_8067, &[])]);
        match probe_bytes(&file) {
            Err(Bad::Unknown(found)) => assert!(found.contains("DocType 'fancy'"), "{found}"),
            other => panic!("{other:?}"),
        }
        let file = cat(&[
            ebml_header("webm"),
            el(
                0x1853_8067,
                &cat(&[info(1.0), tracks(&[audio_track(1)]), cluster(&[])]),
            ),
        ]);
        match probe_bytes(&file) {
            Err(Bad::NoVideo("WebM", found)) => assert_eq!(found, "only 1 audio track"),
            other => panic!("{other:?}"),
        }
        let file = cat(&[ebml_header("webm"), el(0x1853_8067, &info(1.0))]);
        assert_eq!(
            damaged(probe_bytes(&file)),
            "no Tracks element in the Segment"
        );
    }

    #[test]
    fn unknown_files_say_what_they_look_like() {
        let cases: [(&[u8], &str); 5] = [
            (b"hello, this is text\n", "it looks like text"),
            (b"RIFF\0\0\0\0AVI LIST", "it is an AVI file"),
            (b"\x89PNG\r\n\x1a\n", "it is a PNG image"),
            (
                b"\x01\x02\x03\x04\x05",
                "it starts with the bytes 01 02 03 04 05",
            ),
            (b"OggS\0\x02", "it is an Ogg file"),
        ];
        for (bytes, expected) in cases {
            match probe_bytes(bytes) {
                Err(Bad::Unknown(found)) => assert_eq!(found, expected),
                other => panic!("{bytes:?}: {other:?}"),
            }
        }
    }

    // --- check ---

    fn good_info() -> MediaInfo {
        MediaInfo {
            container: Container::Mp4,
            codec: VideoCodec::H264,
            width: 1080,
            height: 1920,
            fps: 30.0,
            duration: Duration::from_secs(30),
        }
    }

    fn verdict(f: impl FnOnce(&mut MediaInfo)) -> Verdict {
        let mut info = good_info();
        f(&mut info);
        check(&info, 1_000_000, &VideoLimits::tiktok(None))
    }

    #[test]
    fn frame_rate_boundaries() {
        for fps in [23.0, 29.97, 60.0] {
            assert_eq!(verdict(|i| i.fps = fps), Verdict::default(), "{fps}");
        }
        assert_eq!(
            verdict(|i| i.fps = 22.9).errors,
            ["frame rate 22.9 fps is below TikTok's minimum of 23 fps"]
        );
        assert_eq!(
            verdict(|i| i.fps = 60.1).errors,
            ["frame rate 60.1 fps is above TikTok's maximum of 60 fps"]
        );
        let unknown = verdict(|i| i.fps = 0.0);
        assert!(unknown.errors.is_empty());
        assert_eq!(
            unknown.warnings,
            ["frame rate unknown (the file does not record it); TikTok needs 23 to 60 fps"]
        );
    }

    #[test]
    fn side_boundaries() {
        for (w, h) in [(1080, 4096), (4096, 1080)] {
            assert_eq!(
                verdict(|i| (i.width, i.height) = (w, h)),
                Verdict::default()
            );
        }
        let v = verdict(|i| (i.width, i.height) = (360, 4096));
        assert!(v.errors.is_empty());
        assert_eq!(
            v.warnings,
            ["360x4096 is below 1080p; TikTok may show it softer"]
        );
        assert_eq!(
            verdict(|i| (i.width, i.height) = (359, 640)).errors,
            ["width 359 px (359x640) is below TikTok's minimum of 360 px on each side"]
        );
        assert_eq!(
            verdict(|i| (i.width, i.height) = (1080, 4097)).errors,
            ["height 4097 px (1080x4097) is above TikTok's maximum of 4096 px on each side"]
        );
        let both = verdict(|i| (i.width, i.height) = (100, 5000));
        assert_eq!(both.errors.len(), 2);
        assert!(
            both.warnings.is_empty(),
            "no softness warning on top of size errors"
        );
    }

    #[test]
    fn containers_codecs_size_and_duration() {
        assert_eq!(
            verdict(|i| i.container = Container::Matroska).errors,
            ["Matroska is not a container TikTok accepts; it takes MP4, MOV or WebM"]
        );
        for c in [Container::Mp4, Container::Mov, Container::WebM] {
            assert!(verdict(|i| i.container = c).is_ok());
        }
        assert_eq!(
            verdict(|i| i.codec = VideoCodec::Other("mp4v".into())).errors,
            ["H.264, H.265, VP8 or VP9 needed; the video is MPEG-4 Part 2 (mp4v)"]
        );
        assert_eq!(
            verdict(|i| i.codec = VideoCodec::Av1).errors,
            ["H.264, H.265, VP8 or VP9 needed; the video is AV1"]
        );
        assert_eq!(
            verdict(|i| i.codec = VideoCodec::Other("xyz1".into())).errors,
            ["H.264, H.265, VP8 or VP9 needed; the video is an unknown codec (xyz1)"]
        );
        for c in [
            VideoCodec::H264,
            VideoCodec::H265,
            VideoCodec::Vp8,
            VideoCodec::Vp9,
        ] {
            assert!(verdict(|i| i.codec = c).is_ok());
        }

        let limits = VideoLimits::tiktok(None);
        assert!(check(&good_info(), TIKTOK_MAX_BYTES, &limits).is_ok());
        assert_eq!(
            check(&good_info(), TIKTOK_MAX_BYTES + 1, &limits).errors,
            ["file size 4 GB (4000000001 bytes) is above TikTok's maximum of 4 GB (4000000000 bytes)"]
        );

        let ten = VideoLimits::tiktok(Some(Duration::from_secs(600)));
        let mut info = good_info();
        info.duration = Duration::from_secs(600);
        assert!(check(&info, 1, &ten).is_ok());
        info.duration = Duration::from_secs(665);
        assert_eq!(
            check(&info, 1, &ten).errors,
            ["duration 11m 5s is longer than the 10m this creator may post"]
        );
        info.duration = Duration::from_millis(600_001);
        assert_eq!(
            check(&info, 1, &ten).errors,
            ["duration 10m 0.001s is longer than the 10m this creator may post"]
        );
        info.duration = Duration::ZERO;
        let unknown = check(&info, 1, &ten);
        assert!(unknown.is_ok());
        assert_eq!(
            unknown.warnings,
            ["duration unknown (the file does not record it); this creator may post at most 10m"]
        );
    }

    #[test]
    fn durations_read_well() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_secs(2), "2s"),
            (Duration::from_millis(2500), "2.5s"),
            (Duration::from_secs(600), "10m"),
            (Duration::from_secs(665), "11m 5s"),
            (Duration::from_secs(3603), "1h 0m 3s"),
            (Duration::from_secs(7200), "2h"),
        ];
        for (d, s) in cases {
            assert_eq!(fmt_duration(d), s);
        }
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type(Container::Mp4), Some("video/mp4"));
        assert_eq!(content_type(Container::Mov), Some("video/quicktime"));
        assert_eq!(content_type(Container::WebM), Some("video/webm"));
        assert_eq!(content_type(Container::Matroska), None);
    }

    // --- MP4 from a real file ---

    #[test]
    fn every_truncation_and_moov_byte_flip_of_an_mp4_is_handled() {
        use upq_tests::video::{make_video, VideoSpec};
        let dir = tempfile::tempdir().unwrap();
        let spec = VideoSpec::new("libx264", "mp4")
            .size(360, 360)
            .seconds(0.2)
            .with_audio()
            .args(&["-movflags", "+faststart"]);
        let path = make_video(dir.path(), "small", &spec);
        let good = std::fs::read(&path).unwrap();
        assert_eq!(probe_bytes(&good).unwrap().codec, VideoCodec::H264);
        // faststart: ftyp, moov, then mdat; every header byte up to the mdat payload.
        let moov_end = good.windows(4).position(|w| w == b"mdat").unwrap() + 4;
        for len in (1..good.len()).step_by(7).chain(1..moov_end) {
            let _ = probe_bytes(&good[..len]);
        }
        let mut parsed = 0;
        for i in 0..moov_end {
            for value in [0x00, 0x01, 0x7F, 0xFF] {
                let mut bad = good.clone();
                bad[i] = value;
                if !matches!(probe_bytes(&bad), Err(Bad::Damaged(_, _) | Bad::Unknown(_))) {
                    parsed += 1;
                }
            }
        }
        // Most flips land in tables the probe does not need; the parser saw them all.
        assert!(parsed > moov_end, "only {parsed} mutated files parsed");
    }
}
