//! The video preflight probe against real files made by ffmpeg: what it reads, what TikTok's
//! limits make of it, and exact reasons for every refusal.

use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use upq_daemon::media::{
    check, content_type, probe, Container, MediaInfo, ProbeError, VideoCodec, VideoLimits,
};
use upq_tests::video::{make_video, VideoSpec};

fn dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("upq-media-")
        .tempdir()
        .expect("temp dir")
}

fn make(dir: &TempDir, name: &str, spec: VideoSpec) -> PathBuf {
    make_video(dir.path(), name, &spec)
}

fn probed(path: &Path) -> MediaInfo {
    probe(path).unwrap_or_else(|e| panic!("probe {}: {e}", path.display()))
}

fn size_of(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

/// TikTok's errors for a file with no duration limit.
fn errors(path: &Path) -> Vec<String> {
    check(&probed(path), size_of(path), &VideoLimits::tiktok(None)).errors
}

fn assert_close(actual: Duration, expected: Duration, frame: Duration) {
    let diff = actual.abs_diff(expected);
    assert!(
        diff <= frame,
        "duration {actual:?} is not within a frame ({frame:?}) of {expected:?}"
    );
}

#[test]
fn h264_mp4_reads_exact_size_rate_and_duration() {
    let dir = dir();
    let path = make(&dir, "h264", VideoSpec::new("libx264", "mp4").seconds(2.0));
    let info = probed(&path);
    assert_eq!(info.container, Container::Mp4);
    assert_eq!(info.codec, VideoCodec::H264);
    assert_eq!((info.width, info.height), (360, 640));
    assert_eq!(info.fps, 30.0);
    assert_close(
        info.duration,
        Duration::from_secs(2),
        Duration::from_millis(34),
    );
    assert_eq!(content_type(info.container), Some("video/mp4"));

    let verdict = check(&info, size_of(&path), &VideoLimits::tiktok(None));
    assert!(verdict.errors.is_empty(), "{verdict:?}");
    assert_eq!(
        verdict.warnings,
        ["360x640 is below 1080p; TikTok may show it softer"]
    );
}

#[test]
fn ntsc_rate_stays_29_97() {
    let dir = dir();
    let spec = VideoSpec::new("libx264", "mp4")
        .fps("30000/1001")
        .with_audio();
    let info = probed(&make(&dir, "ntsc", spec));
    assert_eq!(info.fps, 29.97);
    assert_close(
        info.duration,
        Duration::from_secs(1),
        Duration::from_millis(34),
    );
}

#[test]
fn h265_mp4_in_both_sample_entries() {
    let dir = dir();
    for (name, extra) in [("hvc1", &["-tag:v", "hvc1"][..]), ("hev1", &[][..])] {
        let path = make(&dir, name, VideoSpec::new("libx265", "mp4").args(extra));
        let info = probed(&path);
        assert_eq!(info.codec, VideoCodec::H265, "{name}");
        assert_eq!(
            (info.width, info.height, info.fps),
            (360, 640, 30.0),
            "{name}"
        );
        assert_close(
            info.duration,
            Duration::from_secs(1),
            Duration::from_millis(34),
        );
        assert!(errors(&path).is_empty(), "{name}");
    }
}

#[test]
fn mov_with_audio_is_quicktime() {
    let dir = dir();
    let path = make(&dir, "clip", VideoSpec::new("libx264", "mov").with_audio());
    let info = probed(&path);
    assert_eq!(info.container, Container::Mov);
    assert_eq!(info.codec, VideoCodec::H264);
    assert_eq!((info.width, info.height, info.fps), (360, 640, 30.0));
    assert_eq!(content_type(info.container), Some("video/quicktime"));
    assert!(errors(&path).is_empty());

    // An old QuickTime file has no 'ftyp': rename the box to 'free' and it is still a MOV.
    let mut bytes = fs::read(&path).unwrap();
    assert_eq!(&bytes[4..8], b"ftyp");
    bytes[4..8].copy_from_slice(b"free");
    let old = dir.path().join("old.mov");
    fs::write(&old, &bytes).unwrap();
    let info = probed(&old);
    assert_eq!(
        (info.container, info.codec),
        (Container::Mov, VideoCodec::H264)
    );

    // And the brand decides, not the name.
    let renamed = dir.path().join("clip-as.mp4");
    fs::copy(&path, &renamed).unwrap();
    assert_eq!(probed(&renamed).container, Container::Mov);
}

#[test]
fn webm_vp8_and_vp9() {
    let dir = dir();
    let vp8 = make(&dir, "vp8", VideoSpec::new("libvpx", "webm"));
    let info = probed(&vp8);
    assert_eq!(
        (info.container, info.codec),
        (Container::WebM, VideoCodec::Vp8)
    );
    assert_eq!((info.width, info.height, info.fps), (360, 640, 30.0));
    assert_close(
        info.duration,
        Duration::from_secs(1),
        Duration::from_millis(34),
    );
    assert_eq!(content_type(info.container), Some("video/webm"));
    assert!(errors(&vp8).is_empty());

    let vp9 = make(
        &dir,
        "vp9",
        VideoSpec::new("libvpx-vp9", "webm").with_audio(),
    );
    let info = probed(&vp9);
    assert_eq!(
        (info.container, info.codec),
        (Container::WebM, VideoCodec::Vp9)
    );
    assert_eq!((info.width, info.height, info.fps), (360, 640, 30.0));
    assert!(errors(&vp9).is_empty());
}

#[test]
fn vp9_in_mp4_passes() {
    let dir = dir();
    let path = make(&dir, "vp9", VideoSpec::new("libvpx-vp9", "mp4"));
    let info = probed(&path);
    assert_eq!(
        (info.container, info.codec),
        (Container::Mp4, VideoCodec::Vp9)
    );
    assert!(errors(&path).is_empty());
}

#[test]
fn mpeg4_part2_is_refused_by_name() {
    let dir = dir();
    let path = make(&dir, "mp4v", VideoSpec::new("mpeg4", "mp4"));
    assert_eq!(probed(&path).codec, VideoCodec::Other("mp4v".into()));
    assert_eq!(
        errors(&path),
        ["H.264, H.265, VP8 or VP9 needed; the video is MPEG-4 Part 2 (mp4v)"]
    );
}

#[test]
fn frame_rates_below_and_above_the_limits() {
    let dir = dir();
    let slow = make(&dir, "fps15", VideoSpec::new("libx264", "mp4").fps(15));
    assert_eq!(probed(&slow).fps, 15.0);
    assert_eq!(
        errors(&slow),
        ["frame rate 15 fps is below TikTok's minimum of 23 fps"]
    );

    let sixty = make(
        &dir,
        "fps60",
        VideoSpec::new("libx264", "mp4").fps(60).seconds(0.5),
    );
    assert_eq!(probed(&sixty).fps, 60.0);
    assert!(errors(&sixty).is_empty());

    let fast = make(
        &dir,
        "fps61",
        VideoSpec::new("libx264", "mp4").fps(61).seconds(0.5),
    );
    assert_eq!(probed(&fast).fps, 61.0);
    assert_eq!(
        errors(&fast),
        ["frame rate 61 fps is above TikTok's maximum of 60 fps"]
    );
}

#[test]
fn picture_sizes_outside_the_limits() {
    let dir = dir();
    let small = make(
        &dir,
        "small",
        VideoSpec::new("libx264", "mp4").size(320, 640),
    );
    assert_eq!(
        errors(&small),
        ["width 320 px (320x640) is below TikTok's minimum of 360 px on each side"]
    );

    let wide = make(
        &dir,
        "wide",
        VideoSpec::new("libx264", "mp4")
            .size(4112, 360)
            .seconds(0.1),
    );
    let info = probed(&wide);
    assert_eq!((info.width, info.height), (4112, 360));
    assert_eq!(
        errors(&wide),
        ["width 4112 px (4112x360) is above TikTok's maximum of 4096 px on each side"]
    );

    let hd = make(
        &dir,
        "hd",
        VideoSpec::new("libx264", "mp4")
            .size(720, 1280)
            .seconds(0.2),
    );
    let verdict = check(&probed(&hd), size_of(&hd), &VideoLimits::tiktok(None));
    assert!(verdict.errors.is_empty());
    assert_eq!(
        verdict.warnings,
        ["720x1280 is below 1080p; TikTok may show it softer"]
    );
}

#[test]
fn rotated_track_reports_the_displayed_size() {
    let dir = dir();
    let path = make(
        &dir,
        "upright",
        VideoSpec::new("libx264", "mp4").size(640, 360),
    );
    // Set the video track header's matrix to a 90 degree rotation (0 1 0 / -1 0 0).
    let mut bytes = fs::read(&path).unwrap();
    let tkhd = bytes.windows(4).position(|w| w == b"tkhd").unwrap();
    assert_eq!(bytes[tkhd + 4], 0, "version 0 track header");
    let matrix = tkhd + 4 + 40;
    for (i, value) in [0i32, 0x1_0000, 0, -0x1_0000, 0].iter().enumerate() {
        bytes[matrix + 4 * i..matrix + 4 * i + 4].copy_from_slice(&value.to_be_bytes());
    }
    let rotated = dir.path().join("rotated.mp4");
    fs::write(&rotated, &bytes).unwrap();
    let info = probed(&rotated);
    assert_eq!((info.width, info.height), (360, 640));
}

#[test]
fn matroska_is_not_a_tiktok_container() {
    let dir = dir();
    let path = make(&dir, "clip", VideoSpec::new("libx264", "mkv"));
    let info = probed(&path);
    assert_eq!(
        (info.container, info.codec),
        (Container::Matroska, VideoCodec::H264)
    );
    assert_eq!((info.width, info.height, info.fps), (360, 640, 30.0));
    assert_eq!(content_type(info.container), None);
    assert_eq!(
        errors(&path),
        ["Matroska is not a container TikTok accepts; it takes MP4, MOV or WebM"]
    );
}

#[test]
fn duration_over_the_creator_maximum() {
    let dir = dir();
    let path = make(&dir, "long", VideoSpec::new("libx264", "mp4").seconds(3.0));
    let info = probed(&path);
    let limits = VideoLimits::tiktok(Some(Duration::from_secs(2)));
    assert_eq!(
        check(&info, size_of(&path), &limits).errors,
        ["duration 3s is longer than the 2s this creator may post"]
    );
    let limits = VideoLimits::tiktok(Some(Duration::from_secs(3)));
    assert!(check(&info, size_of(&path), &limits).errors.is_empty());
}

#[test]
fn files_that_are_not_videos() {
    let dir = dir();
    let text = dir.path().join("notes.mp4");
    fs::write(&text, "these are my notes, not a video\n").unwrap();
    let err = probe(&text).unwrap_err();
    assert!(matches!(err, ProbeError::UnknownFormat { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "{} is not a video container upq knows (MP4, MOV, WebM or Matroska): it looks like text",
            text.display()
        )
    );

    let empty = dir.path().join("empty.mp4");
    File::create(&empty).unwrap();
    let err = probe(&empty).unwrap_err();
    assert!(matches!(err, ProbeError::Empty { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("{} is empty (0 bytes), not a video", empty.display())
    );

    let missing = dir.path().join("missing.mp4");
    let err = probe(&missing).unwrap_err();
    assert!(matches!(err, ProbeError::Io { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("cannot read {}: ", missing.display())),
        "{err}"
    );

    let err = probe(dir.path()).unwrap_err();
    assert!(err.to_string().ends_with(": it is a directory"), "{err}");

    // A FIFO is refused without opening it (opening would wait for a writer).
    let fifo = dir.path().join("pipe.mp4");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    let err = probe(&fifo).unwrap_err();
    assert!(
        err.to_string().ends_with(": it is not a regular file"),
        "{err}"
    );

    let audio = make(
        &dir,
        "audio",
        VideoSpec::new("libx264", "mp4").with_audio().args(&["-vn"]),
    );
    let err = probe(&audio).unwrap_err();
    assert!(matches!(err, ProbeError::NoVideoTrack { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "{} has no video track (MP4 file with only 1 audio track)",
            audio.display()
        )
    );
}

#[test]
fn truncated_files_are_damaged() {
    let dir = dir();
    // ffmpeg's default layout: ftyp, free, mdat, then moov at the end.
    let path = make(&dir, "whole", VideoSpec::new("libx264", "mp4"));
    let bytes = fs::read(&path).unwrap();
    let head = dir.path().join("head.mp4");
    fs::write(&head, &bytes[..4096]).unwrap();
    let err = probe(&head).unwrap_err();
    assert!(matches!(err, ProbeError::Damaged { .. }), "{err:?}");
    let mdat = bytes.windows(4).position(|w| w == b"mdat").unwrap() - 4;
    let mdat_size = u32::from_be_bytes(bytes[mdat..mdat + 4].try_into().unwrap());
    assert_eq!(
        err.to_string(),
        format!(
            "{} is a damaged or truncated MP4 file: truncated: the 'mdat' box at offset {mdat} \
             needs {mdat_size} bytes but the file ends after 4096 bytes",
            head.display()
        )
    );

    // moov first, cut in its middle.
    let fast = make(
        &dir,
        "fast",
        VideoSpec::new("libx264", "mp4").args(&["-movflags", "+faststart"]),
    );
    let bytes = fs::read(&fast).unwrap();
    let moov = bytes.windows(4).position(|w| w == b"moov").unwrap() - 4;
    let moov_size = u32::from_be_bytes(bytes[moov..moov + 4].try_into().unwrap()) as usize;
    let cut = dir.path().join("cut.mp4");
    fs::write(&cut, &bytes[..moov + moov_size / 2]).unwrap();
    let err = probe(&cut).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{} is a damaged or truncated MP4 file: truncated: the 'moov' box at offset {moov} \
             needs {moov_size} bytes but the file ends after {} bytes",
            cut.display(),
            moov + moov_size / 2
        )
    );

    // A WebM cut short: its Segment claims more than is there.
    let webm = make(&dir, "vp8", VideoSpec::new("libvpx", "webm"));
    let bytes = fs::read(&webm).unwrap();
    let cut = dir.path().join("cut.webm");
    fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = probe(&cut).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "{} is a damaged or truncated WebM file: truncated: the Segment element",
            cut.display()
        )),
        "{text}"
    );
}

/// Bytes this thread has read through read(2) and friends so far.
fn thread_read_bytes() -> u64 {
    let io = fs::read_to_string("/proc/thread-self/io").expect("read /proc/thread-self/io");
    io.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("rchar in /proc/thread-self/io")
}

#[test]
fn a_300_mb_mdat_is_seeked_over_not_read() {
    let dir = dir();
    let path = make(&dir, "small", VideoSpec::new("libx264", "mp4"));
    let bytes = fs::read(&path).unwrap();
    // Rebuild it with 300 MB more mdat (a sparse hole), moov still at the end.
    let mdat = bytes.windows(4).position(|w| w == b"mdat").unwrap() - 4;
    let mdat_size = u32::from_be_bytes(bytes[mdat..mdat + 4].try_into().unwrap()) as u64;
    let extra: u64 = 300 * 1024 * 1024;
    let big = dir.path().join("big.mp4");
    let mut out = OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(&big)
        .unwrap();
    out.write_all(&bytes[..mdat]).unwrap();
    out.write_all(&1u32.to_be_bytes()).unwrap();
    out.write_all(b"mdat").unwrap();
    out.write_all(&(mdat_size + 8 + extra).to_be_bytes())
        .unwrap();
    out.write_all(&bytes[mdat + 8..mdat + mdat_size as usize])
        .unwrap();
    out.seek(SeekFrom::Current(extra as i64)).unwrap();
    out.write_all(&bytes[mdat + mdat_size as usize..]).unwrap();
    drop(out);
    assert!(size_of(&big) > extra);

    let before = thread_read_bytes();
    let started = Instant::now();
    let info = probed(&big);
    let took = started.elapsed();
    let read = thread_read_bytes() - before;
    assert_eq!(
        (info.codec, info.width, info.height),
        (VideoCodec::H264, 360, 640)
    );
    assert!(
        read < 256 * 1024,
        "probe read {read} bytes of a {} byte file",
        size_of(&big)
    );
    assert!(took < Duration::from_secs(1), "probe took {took:?}");
}
