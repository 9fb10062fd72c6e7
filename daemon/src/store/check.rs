//! `upqd --check`: verifies every record, the id counter, history counts and the catalogue
//! of a data folder, and says what it found.
//!
//! Writes nothing: sled's recovery writes as it opens, so the check opens a private copy.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::manifest::{self, Manifest};
use super::open::{be_u64, open_db, record_problem};
use super::{hex, Job, DB_DIR, NEXT_ID_KEY, RECORD_TREES};
use super::{QUARANTINE_TREE, SCHEMA_KEY, SCHEMA_VERSION};

/// What `--check` found: one line per fact, and how many of them are problems.
#[derive(Debug, Default)]
pub struct CheckReport {
    pub lines: Vec<String>,
    pub problems: usize,
}

impl CheckReport {
    fn note(&mut self, line: String) {
        self.lines.push(line);
    }

    fn problem(&mut self, line: String) {
        self.problems += 1;
        self.lines.push(format!("PROBLEM: {line}"));
    }

    pub fn is_clean(&self) -> bool {
        self.problems == 0
    }
}

/// A copy of the database in the system's temp folder, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Whether another process (a running upqd) holds the database's lock; probed without
/// waiting and released at once, so a starting upqd is never kept out.
fn held_by_upqd(db_file: &Path) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(file) = std::fs::File::open(db_file) else {
        return false;
    };
    // SAFETY: flock on a descriptor we own; the lock goes with the file when it is closed.
    let result = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
    result != 0
}

/// Checks the store in `dir` without writing to it.
pub fn check(dir: &Path) -> CheckReport {
    let mut report = CheckReport::default();
    let db_path = dir.join(DB_DIR);
    if !db_path.exists() {
        report.note(format!(
            "no queue database in {} yet; nothing to check",
            dir.display()
        ));
        return report;
    }
    report.note(format!("database: {}", db_path.display()));
    if held_by_upqd(&db_path.join("db")) {
        report.note(
            "upqd is running: checked the files as they are on disk now (it flushes within 200 ms)"
                .into(),
        );
    }
    // Read before the copy: every id the catalogue lists was on disk before it was listed.
    let known = match Manifest::read(dir) {
        Ok(known) => known,
        Err(e) => {
            report.problem(format!("the job catalogue cannot be used: {e}"));
            None
        }
    };
    let scratch = Scratch(std::env::temp_dir().join(format!(
        "upqd-check-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    )));
    let copy = scratch.0.join(DB_DIR);
    if let Err(e) = copy_dir(&db_path, &copy) {
        report.problem(format!("cannot copy the database to check it: {e}"));
        return report;
    }
    let db = match open_db(&copy) {
        Ok(db) => db,
        Err(e) => {
            report.problem(format!("sled cannot open it: {e}"));
            return report;
        }
    };
    if let Err(e) = check_db(&db, known.as_ref(), &mut report) {
        report.problem(format!("reading it failed: {e}"));
    }
    match manifest::read_lost(dir) {
        Ok(lost) if !lost.is_empty() => {
            report.problem(format!(
                "{} jobs were found lost at an earlier start (listed in {}):",
                lost.len(),
                dir.join(manifest::LOST_FILE).display()
            ));
            for job in lost {
                report.note(format!(
                    "  lost job {}: {}{}",
                    job.id,
                    job.file,
                    title(&job.title)
                ));
            }
        }
        Ok(_) => {}
        Err(e) => report.problem(e.to_string()),
    }
    drop(db);
    report
}

fn title(title: &Option<String>) -> String {
    title
        .as_ref()
        .map(|t| format!(" \"{t}\""))
        .unwrap_or_default()
}

fn check_db(
    db: &sled::Db,
    known: Option<&Manifest>,
    report: &mut CheckReport,
) -> Result<(), sled::Error> {
    let meta = db.open_tree("meta")?;
    match meta.get(SCHEMA_KEY)? {
        Some(raw) => match be_u64(&raw) {
            Some(v) if v <= SCHEMA_VERSION => report.note(format!("schema version {v}")),
            Some(v) => report.problem(format!(
                "schema version {v} is newer than this upqd ({SCHEMA_VERSION})"
            )),
            None => report.problem(format!("the schema version is {} bytes long", raw.len())),
        },
        None => report.problem("no schema version".into()),
    }
    let next_id = match meta.get(NEXT_ID_KEY)? {
        Some(raw) => {
            let next = be_u64(&raw);
            if next.is_none() {
                report.problem(format!("the id counter is {} bytes long", raw.len()));
            }
            next
        }
        None => Some(1),
    };
    let mut jobs: BTreeMap<u64, Job> = BTreeMap::new();
    for name in RECORD_TREES {
        let tree = db.open_tree(name)?;
        let mut count = 0;
        for item in tree.iter() {
            let (key, value) = item?;
            count += 1;
            if let Some(problem) = record_problem(name, &key, &value) {
                report.problem(format!(
                    "{name} record {} does not decode: {problem}",
                    hex(&key)
                ));
            } else if name == "jobs" {
                if let Ok(job) = Job::decode(&value) {
                    jobs.insert(job.id(), job);
                }
            }
        }
        report.note(format!("{name}: {count} records"));
    }
    let history = db.open_tree("history")?;
    let mut histories: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    for key in history.iter().keys() {
        let key = key?;
        if let (Some(id), Some(seq)) = (
            be_u64(&key[..8.min(key.len())]),
            key.get(8..).and_then(be_u64),
        ) {
            histories.entry(id).or_default().insert(seq);
        }
    }
    for (id, job) in &jobs {
        let seqs = histories.remove(id).unwrap_or_default();
        let expected: BTreeSet<u64> = (0..job.history_len()).collect();
        if seqs != expected {
            report.problem(format!(
                "job {id} should have {} history entries and has {}",
                job.history_len(),
                seqs.len()
            ));
        }
    }
    for (id, seqs) in histories {
        report.problem(format!(
            "{} history entries of job {id}, which has no record",
            seqs.len()
        ));
    }
    let quarantine = db.open_tree(QUARANTINE_TREE)?;
    let mut quarantined_jobs = BTreeSet::new();
    if !quarantine.is_empty() {
        report.problem(format!(
            "{} records were set aside as undecodable (tree `{QUARANTINE_TREE}`):",
            quarantine.len()
        ));
        for key in quarantine.iter().keys() {
            let key = key?;
            if let Some(id) = key.strip_prefix(b"jobs/").and_then(be_u64) {
                quarantined_jobs.insert(id);
            }
            let split = key.iter().position(|&b| b == b'/').unwrap_or(key.len());
            report.note(format!(
                "  quarantined {} {}",
                String::from_utf8_lossy(&key[..split]),
                hex(key.get(split + 1..).unwrap_or_default())
            ));
        }
    }
    let highest = jobs.keys().chain(&quarantined_jobs).next_back().copied();
    if let (Some(next), Some(highest)) = (next_id, highest) {
        if next <= highest {
            report.problem(format!(
                "the id counter ({next}) is not above the highest job id ({highest})"
            ));
        }
    }
    if let Some(next) = next_id {
        report.note(format!("{} jobs, next id {next}", jobs.len()));
    }
    match known {
        None => {
            report.note("no job catalogue to compare with (written from the next start)".into())
        }
        Some(known) => {
            let missing: Vec<_> = known
                .jobs
                .iter()
                .filter(|(id, _)| !jobs.contains_key(id) && !quarantined_jobs.contains(id))
                .collect();
            if let Some(next) = next_id.filter(|&next| next < known.next_id) {
                report.problem(format!(
                    "the id counter went back: {next}, the catalogue says {}",
                    known.next_id
                ));
            }
            if missing.is_empty() {
                report.note(format!(
                    "catalogue: all {} jobs it lists are present",
                    known.jobs.len()
                ));
            } else {
                report.problem(format!(
                    "{} of the {} jobs in the catalogue are missing from the database:",
                    missing.len(),
                    known.jobs.len()
                ));
                for (id, entry) in missing {
                    report.note(format!(
                        "  missing job {id}: {}{}",
                        entry.file,
                        title(&entry.title)
                    ));
                }
            }
        }
    }
    Ok(())
}
