//! Turning replies into text: sizes, rates, times, aligned tables and JSON documents.
//! Pure formatting (except the two `print_json` helpers); never talks to the daemon.

mod bars;
mod jobs;
mod paint;
mod status;

use std::io::Write;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;

pub use bars::Bars;
pub use jobs::{batch_line, drafts_table, job_details, jobs_table, outcome_line};
pub use paint::{ColorChoice, Paint, Style};
pub use status::{limit_line, status_text};
pub use upq_proto::text::{
    compact_duration, file_name, human_rate_limit, human_size, human_speed, job_name, moved,
    percent, processing_text, progress_text,
};

/// A time in `now`'s zone, short: "14:03:12" today, "2026-12-01 18:00" otherwise.
pub fn short_time<Tz: TimeZone>(at: &DateTime<Utc>, now: &DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let local = at.with_timezone(&now.timezone());
    if local.date_naive() == now.date_naive() {
        local.format("%H:%M:%S").to_string()
    } else {
        local.format("%Y-%m-%d %H:%M").to_string()
    }
}

/// How far `at` is from `now`: "in 12s", "3m ago", "now".
pub fn relative<Tz: TimeZone>(at: &DateTime<Utc>, now: &DateTime<Tz>) -> String {
    let seconds = at.signed_duration_since(now).num_seconds();
    match seconds {
        0 => "now".to_owned(),
        s if s > 0 => format!("in {}", compact_duration(s.unsigned_abs())),
        s => format!("{} ago", compact_duration(s.unsigned_abs())),
    }
}

/// `text` cut to at most `max` characters, ending in "…" when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A plain-text table with a header row and columns two spaces apart; a cell may have a
/// style, painted after the column is padded so that colour never moves a column.
#[derive(Debug)]
pub struct Table {
    columns: Vec<(&'static str, Align)>,
    rows: Vec<Vec<(String, Style)>>,
}

impl Table {
    pub fn new(columns: &[(&'static str, Align)]) -> Self {
        Table {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row of cells with their styles; missing cells are empty, extra cells dropped.
    pub fn styled_row(&mut self, mut cells: Vec<(String, Style)>) {
        cells.resize(self.columns.len(), (String::new(), Style::Plain));
        self.rows.push(cells);
    }

    /// The table, one line per row, each ending in a newline, without trailing spaces;
    /// each styled cell painted when `paint` is on.
    pub fn render(&self, paint: Paint) -> String {
        let mut widths: Vec<usize> = self
            .columns
            .iter()
            .map(|(name, _)| name.chars().count())
            .collect();
        for row in &self.rows {
            for (width, (cell, _)) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let header: Vec<(String, Style)> = self
            .columns
            .iter()
            .map(|(name, _)| (name.to_string(), Style::Plain))
            .collect();
        let mut out = String::new();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (index, (cell, style)) in row.iter().enumerate() {
                let width = widths[index];
                let pad = " ".repeat(width - cell.chars().count());
                if index > 0 {
                    line.push_str("  ");
                }
                let cell = paint.style(*style, cell);
                match self.columns[index].1 {
                    Align::Left => {
                        line.push_str(&cell);
                        line.push_str(&pad);
                    }
                    Align::Right => {
                        line.push_str(&pad);
                        line.push_str(&cell);
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Prints one JSON document (pretty) on stdout.
pub fn print_json(value: &Value) -> anyhow::Result<()> {
    // Buffered: standard output flushes at every newline, and pretty JSON has one a field.
    let mut stdout = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    serde_json::to_writer_pretty(&mut stdout, value)?;
    writeln!(stdout)?;
    stdout.flush()?;
    Ok(())
}

/// Prints a JSON array an item at a time, byte for byte as `print_json` prints it whole,
/// so a long list never has to be held in memory.
pub struct JsonArray<W: Write> {
    out: W,
    empty: bool,
}

impl JsonArray<std::io::BufWriter<std::io::StdoutLock<'static>>> {
    pub fn stdout() -> std::io::Result<Self> {
        JsonArray::new(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stdout().lock(),
        ))
    }
}

impl<W: Write> JsonArray<W> {
    pub fn new(mut out: W) -> std::io::Result<Self> {
        out.write_all(b"[")?;
        Ok(JsonArray { out, empty: true })
    }

    pub fn extend(&mut self, items: &[Value]) -> std::io::Result<()> {
        let mut item = Vec::new();
        for value in items {
            item.clear();
            serde_json::to_writer_pretty(&mut item, value)?;
            self.out
                .write_all(if self.empty { b"\n  " } else { b",\n  " })?;
            self.empty = false;
            // One level deeper: JSON strings hold no raw newline, so every newline is
            // the printer's own.
            for (n, line) in item.split(|&b| b == b'\n').enumerate() {
                if n > 0 {
                    self.out.write_all(b"\n  ")?;
                }
                self.out.write_all(line)?;
            }
        }
        Ok(())
    }

    pub fn finish(mut self) -> std::io::Result<W> {
        self.out
            .write_all(if self.empty { b"]\n" } else { b"\n]\n" })?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Prints one JSON document as a single line (NDJSON) and flushes it.
pub fn print_json_line(value: &Value) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer(&mut stdout, value)?;
    writeln!(stdout)?;
    stdout.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;

    #[test]
    fn processing_reads_as_parts_and_time_left() {
        let mut progress = upq_proto::ProcessingProgress {
            parts_processed: 37,
            parts_total: 1000,
            time_left_ms: Some(12_001),
        };
        assert_eq!(
            processing_text(&progress),
            format!("37 of 1000 parts ({}), about 13s left", percent(37, 1000))
        );
        progress.time_left_ms = None;
        assert!(!processing_text(&progress).contains("left"));
    }

    #[test]
    fn an_array_printed_item_by_item_is_the_array_printed_whole() {
        let items: Vec<Value> = vec![
            serde_json::json!({"id": 1, "tags": ["a", "b"], "meta": {"title": "x\ny"}}),
            serde_json::json!({"id": 2, "empty": {}, "none": []}),
            serde_json::json!(3),
        ];
        for split in 0..=items.len() {
            let mut array = JsonArray::new(Vec::new()).unwrap();
            array.extend(&items[..split]).unwrap();
            array.extend(&items[split..]).unwrap();
            let printed = array.finish().unwrap();
            let mut whole = serde_json::to_vec_pretty(&Value::Array(items.clone())).unwrap();
            whole.push(b'\n');
            assert_eq!(
                String::from_utf8(printed).unwrap(),
                String::from_utf8(whole).unwrap()
            );
        }
        let empty = JsonArray::new(Vec::new()).unwrap().finish().unwrap();
        assert_eq!(empty, b"[]\n");
    }

    #[test]
    fn sizes_and_rates() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(4 * 1024 * 1024), "4 MiB");
        assert_eq!(human_size(50_541_363), "48.2 MiB");
        assert_eq!(human_rate_limit(0), "none");
        assert_eq!(human_rate_limit(4 * 1024 * 1024), "4 MiB/s");
        assert_eq!(human_rate_limit(500 * 1024), "500 KiB/s");
    }

    #[test]
    fn percentages() {
        assert_eq!(percent(0, 100), "0%");
        assert_eq!(percent(999, 1000), "99%");
        assert_eq!(percent(1000, 1000), "100%");
        assert_eq!(percent(2000, 1000), "100%");
        assert_eq!(percent(5, 0), "-");
        assert_eq!(percent(u64::MAX, u64::MAX), "100%");
    }

    #[test]
    fn durations() {
        assert_eq!(compact_duration(0), "0s");
        assert_eq!(compact_duration(45), "45s");
        assert_eq!(compact_duration(60), "1m");
        assert_eq!(compact_duration(725), "12m 5s");
        assert_eq!(compact_duration(3 * 3600 + 4 * 60 + 59), "3h 4m");
        assert_eq!(compact_duration(2 * 86400 + 5 * 3600), "2d 5h");
    }

    #[test]
    fn times_are_shown_in_the_local_zone() {
        let zone = FixedOffset::east_opt(3600).unwrap();
        let now = zone.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
        let today = Utc.with_ymd_and_hms(2026, 12, 1, 17, 3, 12).unwrap();
        assert_eq!(short_time(&today, &now), "18:03:12");
        let other_day = Utc.with_ymd_and_hms(2026, 11, 30, 9, 30, 0).unwrap();
        assert_eq!(short_time(&other_day, &now), "2026-11-30 10:30");
        // 23:30 UTC is already tomorrow at UTC+1.
        let late = Utc.with_ymd_and_hms(2026, 12, 1, 23, 30, 0).unwrap();
        assert_eq!(short_time(&late, &now), "2026-12-02 00:30");
        let soon = Utc.with_ymd_and_hms(2026, 12, 1, 11, 0, 12).unwrap();
        assert_eq!(relative(&soon, &now), "in 12s");
        let before = Utc.with_ymd_and_hms(2026, 12, 1, 10, 57, 0).unwrap();
        assert_eq!(relative(&before, &now), "3m ago");
    }

    #[test]
    fn truncation_and_names() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("a long title here", 8), "a long …");
        assert_eq!(truncate("ééééé", 3), "éé…");
        assert_eq!(file_name("/home/me/Videos/trip.mp4"), "trip.mp4");
        assert_eq!(file_name("trip.mp4"), "trip.mp4");
        assert_eq!(file_name("/a/dir/"), "dir");
    }

    #[test]
    fn painted_cells_keep_their_columns() {
        let mut table = Table::new(&[("ID", Align::Right), ("STATE", Align::Left)]);
        table.styled_row(vec![
            ("7".into(), Style::Plain),
            ("failed".into(), Style::Problem),
        ]);
        table.styled_row(vec![
            ("12".into(), Style::Plain),
            ("uploading".into(), Style::Plain),
        ]);
        let plain = table.render(Paint::OFF);
        assert_eq!(plain, "ID  STATE\n 7  failed\n12  uploading\n");
        let painted = table.render(Paint::ON);
        assert_eq!(
            painted,
            "ID  STATE\n 7  \x1b[31mfailed\x1b[0m\n12  uploading\n"
        );
        // Without its escape sequences, the painted table is the plain one.
        assert_eq!(
            painted.replace("\x1b[31m", "").replace("\x1b[0m", ""),
            plain
        );
    }

    #[test]
    fn tables_align_without_trailing_spaces() {
        let mut table = Table::new(&[
            ("ID", Align::Right),
            ("NAME", Align::Left),
            ("NOTE", Align::Left),
        ]);
        let plain = |cells: [&str; 3]| {
            cells
                .iter()
                .map(|cell| (cell.to_string(), Style::Plain))
                .collect()
        };
        table.styled_row(plain(["7", "trip.mp4", ""]));
        table.styled_row(plain(["12", "é", "stalled"]));
        assert_eq!(
            table.render(Paint::OFF),
            "ID  NAME      NOTE\n 7  trip.mp4\n12  é         stalled\n"
        );
    }
}
