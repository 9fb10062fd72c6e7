//! ISO base media (MP4, MOV): the top-level boxes walked by hand, seeking past `mdat`, and only
//! `ftyp` + `moov` handed to `mp4parse` (which would otherwise read through `mdat`); no media data is read.

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
        mp4parse::Error::OutOfMemory => "the movie header needs more memory than there is".into(),
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
