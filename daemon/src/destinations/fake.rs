//! An in-memory destination for the core's tests: scriptable faults per call, gates that
//! hold any call so a test can act at each await point, and a record of calls and bytes.
//!
//! Test-only; it touches no file, network or clock of its own.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use tokio::sync::{mpsc, Semaphore};

use super::{Chunk, Committed, DestError, Destination, ErrorClass, Processing, UploadInfo};
use crate::job::RemoteSession;
use crate::pacer::Pacer;

/// Each call a destination gets, as a step a test can gate or fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    Open,
    ConfirmedOffset,
    SendChunk,
    Commit,
    PollProcessing,
    Publish,
    Discard,
    /// `doctor`'s check.
    Check,
}

/// One call as the fake received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub step: Step,
    pub job_id: Option<u64>,
    /// The chunk's offset, for `SendChunk`.
    pub offset: Option<u64>,
    /// When it came, by tokio's clock.
    pub at: tokio::time::Instant,
}

/// A test's handle on a gated step: it sees each call arrive and lets it go on.
pub struct Gate {
    arrivals: mpsc::UnboundedReceiver<Call>,
    open: Arc<Semaphore>,
}

impl Gate {
    /// Waits for the next call to reach the gate.
    pub async fn arrived(&mut self) -> Call {
        self.arrivals
            .recv()
            .await
            .expect("the fake destination outlives its gates")
    }

    /// Lets one waiting (or the next) call through.
    pub fn pass_one(&self) {
        self.open.add_permits(1);
    }
}

#[derive(Default)]
struct Script {
    faults: HashMap<Step, VecDeque<DestError>>,
    gates: HashMap<Step, (mpsc::UnboundedSender<Call>, Arc<Semaphore>)>,
    processing: VecDeque<Processing>,
    calls: Vec<Call>,
    /// Bytes received per remote upload, by session number.
    uploads: HashMap<u64, Vec<u8>>,
    sessions: u64,
    discarded: Vec<u64>,
}

/// The fake itself; `separate_commit` chooses a `dir`-like or a tus-like destination.
#[derive(Debug)]
pub struct FakeDestination {
    chunk_size: u64,
    separate_commit: bool,
    needs_publish: bool,
    upload_lifetime: Option<std::time::Duration>,
    script: Mutex<Script>,
}

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Script")
            .field("calls", &self.calls.len())
            .finish()
    }
}

impl FakeDestination {
    pub fn new(chunk_size: u64, separate_commit: bool) -> FakeDestination {
        FakeDestination {
            chunk_size,
            separate_commit,
            needs_publish: false,
            upload_lifetime: None,
            script: Mutex::new(Script::default()),
        }
    }

    /// Processing ends with an explicit publish step.
    pub fn with_publish_step(mut self) -> FakeDestination {
        self.needs_publish = true;
        self
    }

    /// Remote uploads expire this long after they start (as TikTok's do).
    pub fn with_upload_lifetime(mut self, lifetime: std::time::Duration) -> FakeDestination {
        self.upload_lifetime = Some(lifetime);
        self
    }

    fn script(&self) -> MutexGuard<'_, Script> {
        self.script.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next call to `step` fails with `error` (faults queue up in order).
    pub fn fail_next(&self, step: Step, error: DestError) {
        self.script()
            .faults
            .entry(step)
            .or_default()
            .push_back(error);
    }

    /// Answers the next processing polls with these, then with done.
    pub fn process_with(&self, answers: impl IntoIterator<Item = Processing>) {
        self.script().processing.extend(answers);
    }

    /// Holds every call to `step` at its start until the test lets it through.
    pub fn gate(&self, step: Step) -> Gate {
        let (tx, arrivals) = mpsc::unbounded_channel();
        let open = Arc::new(Semaphore::new(0));
        self.script().gates.insert(step, (tx, open.clone()));
        Gate { arrivals, open }
    }

    /// Lets every call to `step` through from now on.
    pub fn ungate(&self, step: Step) {
        if let Some((_, open)) = self.script().gates.remove(&step) {
            open.add_permits(Semaphore::MAX_PERMITS / 2);
        }
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.script().calls.clone()
    }

    pub fn calls_to(&self, step: Step) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.step == step)
            .collect()
    }

    /// The bytes of the remote upload `session`.
    pub fn received(&self, session: &RemoteSession) -> Option<Vec<u8>> {
        let number = session_number(session).ok()?;
        self.script().uploads.get(&number).cloned()
    }

    /// The sessions thrown away, in order.
    pub fn discarded(&self) -> Vec<u64> {
        self.script().discarded.clone()
    }

    /// Records the call, waits at its gate if any, then answers its scripted fault if any.
    async fn enter(
        &self,
        step: Step,
        job_id: Option<u64>,
        offset: Option<u64>,
    ) -> Result<(), DestError> {
        let call = Call {
            step,
            job_id,
            offset,
            at: tokio::time::Instant::now(),
        };
        let gate = {
            let mut script = self.script();
            script.calls.push(call.clone());
            script.gates.get(&step).cloned()
        };
        if let Some((arrivals, open)) = gate {
            let _ = arrivals.send(call);
            open.acquire()
                .await
                .map_err(|_| DestError::transient("fake", "gate closed"))?
                .forget();
        }
        match self
            .script()
            .faults
            .get_mut(&step)
            .and_then(VecDeque::pop_front)
        {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

fn session_number(session: &RemoteSession) -> Result<u64, DestError> {
    session
        .0
        .get("fake")
        .and_then(|n| n.as_u64())
        .ok_or_else(|| DestError::permanent("protocol", "not a fake session"))
}

fn gone() -> DestError {
    DestError::transient("gone", "no such upload").with_class(ErrorClass::SessionGone)
}

#[async_trait]
impl Destination for FakeDestination {
    fn kind(&self) -> &'static str {
        "fake"
    }

    fn chunk_size(&self, _size: u64) -> u64 {
        self.chunk_size
    }

    fn piece_size(&self) -> usize {
        self.chunk_size as usize
    }

    fn commits_with_final_chunk(&self) -> bool {
        !self.separate_commit
    }

    fn upload_lifetime(&self) -> Option<std::time::Duration> {
        self.upload_lifetime
    }

    async fn preflight(&self, _upload: &UploadInfo) -> Result<Vec<String>, DestError> {
        Ok(Vec::new())
    }

    async fn open(
        &self,
        upload: &UploadInfo,
        existing: Option<&RemoteSession>,
    ) -> Result<RemoteSession, DestError> {
        self.enter(Step::Open, Some(upload.job_id), None).await?;
        let mut script = self.script();
        if let Some(existing) = existing {
            let number = session_number(existing)?;
            if script.uploads.contains_key(&number) {
                return Ok(existing.clone());
            }
        }
        script.sessions += 1;
        let number = script.sessions;
        script.uploads.insert(number, Vec::new());
        Ok(RemoteSession(serde_json::json!({ "fake": number })))
    }

    async fn confirmed_offset(
        &self,
        session: &RemoteSession,
        upload: &UploadInfo,
        _recorded: u64,
    ) -> Result<u64, DestError> {
        self.enter(Step::ConfirmedOffset, Some(upload.job_id), None)
            .await?;
        let number = session_number(session)?;
        let script = self.script();
        let held = script.uploads.get(&number).ok_or_else(gone)?;
        Ok(held.len() as u64)
    }

    async fn send_chunk(
        &self,
        session: &RemoteSession,
        upload: &UploadInfo,
        mut chunk: Chunk,
        pacer: &Pacer,
    ) -> Result<u64, DestError> {
        self.enter(Step::SendChunk, Some(upload.job_id), Some(chunk.offset))
            .await?;
        let number = session_number(session)?;
        let mut bytes = Vec::new();
        while let Some(piece) = chunk.body.next_piece().await? {
            pacer.admit(piece.len()).await;
            pacer.sent(piece.len());
            bytes.extend_from_slice(&piece);
        }
        let mut script = self.script();
        let held = script.uploads.get_mut(&number).ok_or_else(gone)?;
        if held.len() as u64 != chunk.offset {
            return Err(DestError::transient(
                "offset_mismatch",
                format!(
                    "holds {} bytes, chunk starts at {}",
                    held.len(),
                    chunk.offset
                ),
            )
            .with_class(ErrorClass::OffsetMismatch));
        }
        held.extend_from_slice(&bytes);
        Ok(held.len() as u64)
    }

    async fn commit(
        &self,
        session: &RemoteSession,
        upload: &UploadInfo,
        _content_hash: &str,
    ) -> Result<Committed, DestError> {
        self.enter(Step::Commit, Some(upload.job_id), None).await?;
        Ok(Committed {
            location: format!("fake:{}", session_number(session)?),
            note: None,
        })
    }

    async fn poll_processing(
        &self,
        session: &RemoteSession,
        upload: &UploadInfo,
    ) -> Result<Processing, DestError> {
        self.enter(Step::PollProcessing, Some(upload.job_id), None)
            .await?;
        let scripted = self.script().processing.pop_front();
        Ok(scripted.unwrap_or(Processing::Done {
            location: (!self.separate_commit)
                .then(|| session_number(session).map(|n| format!("fake:{n}")))
                .transpose()?,
            needs_publish: self.needs_publish,
            note: None,
        }))
    }

    async fn publish(
        &self,
        session: &RemoteSession,
        upload: &UploadInfo,
    ) -> Result<Option<String>, DestError> {
        self.enter(Step::Publish, Some(upload.job_id), None).await?;
        Ok(Some(format!("fake:{}/public", session_number(session)?)))
    }

    async fn check(&self) -> Vec<upq_proto::CheckView> {
        vec![match self.enter(Step::Check, None, None).await {
            Ok(()) => upq_proto::CheckView::ok("destination", "the fake answers"),
            Err(e) => upq_proto::CheckView::problem("destination", e.message, "script no fault"),
        }]
    }

    async fn discard(&self, session: &RemoteSession) -> Result<(), DestError> {
        self.enter(Step::Discard, None, None).await?;
        let number = session_number(session)?;
        let mut script = self.script();
        script.uploads.remove(&number);
        script.discarded.push(number);
        Ok(())
    }
}
