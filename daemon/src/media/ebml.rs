//! WebM and Matroska headers: a small EBML reader for the EBML header, Info and Tracks that stops
//! at the first Cluster (see README Architecture for why not a crate); it never reads media data.

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
