//! The probe and the limits on hand-built and mutated files: EBML, ISO boxes, verdicts.
//! Unit tests only; they write no file outside memory.

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

// --- measuring the reader against matroska-demuxer on a large WebM ---

/// A file that counts the bytes read from it and the seeks made on it.
struct Counted {
    file: std::fs::File,
    read: std::sync::Arc<std::sync::atomic::AtomicU64>,
    seeks: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Counted {
    fn open(path: &Path) -> Counted {
        Counted {
            file: std::fs::File::open(path).expect("the WebM opens"),
            read: Default::default(),
            seeks: Default::default(),
        }
    }
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        self.read
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

impl Seek for Counted {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.seeks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.file.seek(pos)
    }
}

/// Bytes read and time taken by upq's EBML reader and by `matroska-demuxer` to reach the
/// headers (Info, Tracks) of the WebM named by `UPQ_BENCH_WEBM`; `bench/webm_headers.sh`
/// makes a 2 GB one and runs this.
#[test]
#[ignore = "needs a large WebM: run bench/webm_headers.sh"]
fn webm_headers_cost_for_each_reader() {
    use std::sync::atomic::Ordering::Relaxed;
    let path =
        PathBuf::from(std::env::var_os("UPQ_BENCH_WEBM").expect("UPQ_BENCH_WEBM names a WebM"));
    let len = std::fs::metadata(&path).unwrap().len();

    let counted = Counted::open(&path);
    let (read, seeks) = (counted.read.clone(), counted.seeks.clone());
    let started = std::time::Instant::now();
    let ours = probe_reader(&mut BufReader::new(counted), len).expect("upq reads the headers");
    let ours_time = started.elapsed();
    let (ours_read, ours_seeks) = (read.load(Relaxed), seeks.load(Relaxed));

    let counted = Counted::open(&path);
    let (read, seeks) = (counted.read.clone(), counted.seeks.clone());
    let started = std::time::Instant::now();
    let theirs = matroska_demuxer::MatroskaFile::open(BufReader::new(counted))
        .expect("matroska-demuxer reads the headers");
    let theirs_time = started.elapsed();
    let (theirs_read, theirs_seeks) = (read.load(Relaxed), seeks.load(Relaxed));

    let video = theirs
        .tracks()
        .iter()
        .find_map(|track| track.video().map(|video| (track.codec_id(), video)))
        .expect("a video track");
    println!("file: {len} bytes");
    println!(
        "upq ebml:          {ours_read} bytes read, {ours_seeks} seeks, {ours_time:?} ({} {}x{}, {:?})",
        ours.codec, ours.width, ours.height, ours.duration
    );
    println!(
        "matroska-demuxer:  {theirs_read} bytes read, {theirs_seeks} seeks, {theirs_time:?} ({} {}x{}, {:?} ms)",
        video.0,
        video.1.pixel_width(),
        video.1.pixel_height(),
        theirs.info().duration()
    );
    // Both found the same picture; upq's reader stays off the clusters.
    assert_eq!(u64::from(ours.width), video.1.pixel_width().get());
    assert_eq!(u64::from(ours.height), video.1.pixel_height().get());
    assert!(ours_read < 4 * 1024 * 1024, "upq read {ours_read} bytes");
}
