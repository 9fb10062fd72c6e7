//! The control socket: newline-delimited JSON over a Unix socket, for the owner's uid only.
//!
//! An adapter: parse a line, call the service, write the reply. Holds no queue logic.

use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::{FuturesOrdered, StreamExt};
use interprocess::local_socket::tokio::{prelude::*, Listener, Stream};
use interprocess::local_socket::{GenericFilePath, ListenerOptions};
use interprocess::os::unix::local_socket::ListenerOptionsExt;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use upq_proto::{
    decode_line, encode_line, ErrorCode, Event, HelloReply, LineFramer, LineTooLong, Reply,
    Request, RequestEnvelope, Response, MAX_LINE_BYTES, PROTOCOL_VERSION,
};

use crate::service::{Service, ServiceError};

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("another upqd is already serving on {0}; stop it first (upqctl status shows its pid)")]
    InUse(PathBuf),
    #[error("{path}: {problem}")]
    Unsafe { path: PathBuf, problem: Unsafe },
    #[error("cannot listen on {path}: {source}")]
    Bind { path: PathBuf, source: io::Error },
}

/// Why the socket's place is not safe to serve from.
#[derive(Debug, thiserror::Error)]
pub enum Unsafe {
    #[error("cannot create the socket folder: {0}")]
    CreateFolder(io::Error),
    #[error("cannot inspect the socket folder: {0}")]
    InspectFolder(io::Error),
    #[error("the socket folder belongs to uid {0}, not to this user; refusing to serve from it")]
    ForeignOwner(u32),
    #[error(
        "the socket folder is writable by other users (mode {0:o}); refusing to serve from it. \
         Use a private folder (chmod 700) or the default socket path"
    )]
    OthersMayWrite(u32),
    #[error("cannot remove the stale socket: {0}")]
    RemoveStale(io::Error),
    #[error("exists and is not a socket; refusing to replace it")]
    NotASocket,
}

fn current_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// Creates the socket's missing folders (0700), checks the folder, removes a stale socket
/// and refuses a live one. Never changes the mode of a folder that already exists.
fn prepare(path: &Path) -> Result<(), SocketError> {
    let unsafe_path = |path: &Path, problem: Unsafe| SocketError::Unsafe {
        path: path.to_path_buf(),
        problem,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // Only the missing folders get created, each with mode 0700; existing ones are left as they are.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| unsafe_path(dir, Unsafe::CreateFolder(e)))?;
    let meta = std::fs::metadata(dir).map_err(|e| unsafe_path(dir, Unsafe::InspectFolder(e)))?;
    if meta.uid() != current_uid() {
        return Err(unsafe_path(dir, Unsafe::ForeignOwner(meta.uid())));
    }
    if meta.mode() & 0o022 != 0 {
        // Someone else could swap the socket for their own: never serve from there.
        return Err(unsafe_path(
            dir,
            Unsafe::OthersMayWrite(meta.mode() & 0o7777),
        ));
    }
    // A folder others may only read is used as it is: the socket is 0600 and peers are checked.
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            match std::os::unix::net::UnixStream::connect(path) {
                Ok(_) => return Err(SocketError::InUse(path.to_path_buf())),
                Err(_) => {
                    tracing::info!(socket = %path.display(), "removing a stale socket");
                    std::fs::remove_file(path)
                        .map_err(|e| unsafe_path(path, Unsafe::RemoveStale(e)))?;
                }
            }
        }
        Ok(_) => return Err(unsafe_path(path, Unsafe::NotASocket)),
        Err(_) => {}
    }
    Ok(())
}

/// Checks the path and binds the listener with mode 0600.
pub fn bind(path: &Path) -> Result<Listener, SocketError> {
    prepare(path)?;
    let bind_error = |source| SocketError::Bind {
        path: path.to_path_buf(),
        source,
    };
    let name = path.to_fs_name::<GenericFilePath>().map_err(bind_error)?;
    let listener = ListenerOptions::new()
        .name(name)
        .mode(0o600)
        .create_tokio()
        .map_err(bind_error)?;
    Ok(listener)
}

/// Connections served at once; more are told the daemon is busy and closed.
const MAX_CONNECTIONS: usize = 512;

/// A connection that sends no request for this long is closed (event streams excepted).
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Adds one connection may have waiting for their flush before it reads more.
const MAX_PIPELINED: usize = 1024;

/// At most this many adds pipelined together are checked and stored as one batch.
const MAX_GATHERED: usize = 256;

/// Accepts connections until shutdown.
pub async fn serve(listener: Listener, service: Service, shutdown: CancellationToken) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let conn = tokio::select! {
            conn = listener.accept() => conn,
            _ = shutdown.cancelled() => break,
        };
        match conn {
            Ok(conn) => {
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    tracing::warn!("too many control connections; refusing one");
                    let busy = Response::error(
                        0,
                        ErrorCode::Refused,
                        format!("upqd already serves {MAX_CONNECTIONS} connections; try again"),
                    );
                    let _ = (&conn).write_all(&encode_line(&busy)).await;
                    continue;
                };
                let (service, shutdown) = (service.clone(), shutdown.clone());
                let tasks = service.inner.tasks.clone();
                tasks.spawn(async move {
                    if let Err(e) = handle(conn, &service, shutdown).await {
                        tracing::debug!(error = %e, "control connection ended with an error");
                    }
                    drop(slot);
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accepting a control connection failed");
                // Out of descriptors: give other connections a moment to close.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// One line read with the size cap.
enum Line {
    Complete(Vec<u8>),
    TooLong,
    Closed,
}

/// Reads one line through the shared capped framer (`upq_proto::LineFramer`).
async fn read_line(
    reader: &mut (impl AsyncBufRead + Unpin),
    framer: &mut LineFramer,
) -> io::Result<Line> {
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            // A connection closed mid-line drops the partial line.
            return Ok(Line::Closed);
        }
        let (taken, line) = framer.feed(available);
        reader.consume(taken);
        match line {
            Some(Ok(line)) => return Ok(Line::Complete(line)),
            Some(Err(LineTooLong)) => return Ok(Line::TooLong),
            None => {}
        }
    }
}

/// The next line if the connection's buffer already holds all of it, without waiting
/// for the socket. Safe to give up on: what it read stays in `reader` and `framer`.
fn buffered_line(
    reader: &mut (impl AsyncBufRead + Unpin),
    framer: &mut LineFramer,
) -> io::Result<Option<Line>> {
    use futures::FutureExt;
    read_line(reader, framer).now_or_never().transpose()
}

async fn send(writer: &mut &Stream, response: &Response) -> io::Result<()> {
    writer.write_all(&encode_line(response)).await
}

async fn handle(conn: Stream, service: &Service, shutdown: CancellationToken) -> io::Result<()> {
    let mut writer = &conn;
    let peer_uid = conn.peer_creds().ok().and_then(|creds| creds.euid());
    if peer_uid != Some(current_uid()) {
        tracing::warn!(?peer_uid, "refused a control connection from another user");
        let refusal = Response::error(
            0,
            ErrorCode::PermissionDenied,
            "upqd serves only the user it runs as",
        );
        return send(&mut writer, &refusal).await;
    }
    send(
        &mut writer,
        &Response::ok(
            0,
            Reply::Hello(HelloReply {
                protocol: PROTOCOL_VERSION,
                version: env!("CARGO_PKG_VERSION").into(),
            }),
        ),
    )
    .await?;
    let mut reader = BufReader::new(&conn);
    let mut framer = LineFramer::new();
    // Adds whose job is stored, each waiting to be durable before its reply goes out, in
    // the order they came: a client that pipelines adds has them share flushes.
    let mut pending: FuturesOrdered<BoxFuture<'_, Response>> = FuturesOrdered::new();
    // A line read ahead while gathering adds, and not an add: the next to handle.
    let mut carried: Option<Line> = None;
    loop {
        let line = match carried.take() {
            Some(line) => line,
            None => tokio::select! {
                Some(response) = pending.next(), if !pending.is_empty() => {
                    send(&mut writer, &response).await?;
                    continue;
                }
                line = read_line(&mut reader, &mut framer), if pending.len() < MAX_PIPELINED => line?,
                _ = tokio::time::sleep(IDLE_TIMEOUT), if pending.is_empty() => {
                    tracing::debug!("closing an idle control connection");
                    return Ok(());
                }
                _ = shutdown.cancelled() => return Ok(()),
            },
        };
        let line = match line {
            Line::Complete(line) => line,
            Line::Closed => {
                // A client that stopped writing still gets the answers it is owed.
                while let Some(response) = pending.next().await {
                    send(&mut writer, &response).await?;
                }
                return Ok(());
            }
            Line::TooLong => {
                while let Some(response) = pending.next().await {
                    send(&mut writer, &response).await?;
                }
                let error = Response::error(
                    0,
                    ErrorCode::LineTooLong,
                    format!("request line longer than {MAX_LINE_BYTES} bytes; closing"),
                );
                return send(&mut writer, &error).await;
            }
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let envelope = match decode_line(&line) {
            Ok(envelope) => envelope,
            Err(e) => {
                send(
                    &mut writer,
                    &Response::error(e.request_id(), e.code(), e.to_string()),
                )
                .await?;
                continue;
            }
        };
        let id = envelope.id;
        if let Request::Add(add) = envelope.request {
            // Adds already waiting in the buffer behind this one are stored with it.
            let mut adds = vec![(id, add)];
            while adds.len() < MAX_GATHERED && pending.len() + adds.len() < MAX_PIPELINED {
                match buffered_line(&mut reader, &mut framer)? {
                    Some(Line::Complete(line)) => match decode_line(&line) {
                        Ok(RequestEnvelope {
                            id,
                            request: Request::Add(add),
                        }) => adds.push((id, add)),
                        _ => {
                            carried = Some(Line::Complete(line));
                            break;
                        }
                    },
                    Some(line) => {
                        carried = Some(line);
                        break;
                    }
                    None => break,
                }
            }
            let (ids, requests): (Vec<u64>, Vec<_>) = adds.into_iter().unzip();
            match service.stage_adds(requests).await {
                Ok(staged) => {
                    for (id, staged) in ids.into_iter().zip(staged) {
                        pending.push_back(match staged {
                            Ok(job) => Box::pin(async move {
                                match service.finish_add(job).await {
                                    Ok(view) => Response::ok(id, Reply::Job(Box::new(view))),
                                    Err(e) => Response::error(id, e.code, e.message),
                                }
                            }),
                            Err(e) => {
                                Box::pin(std::future::ready(Response::error(id, e.code, e.message)))
                            }
                        });
                    }
                }
                Err(e) => {
                    for id in ids {
                        let refused = Response::error(id, e.code, e.message.clone());
                        pending.push_back(Box::pin(std::future::ready(refused)));
                    }
                }
            }
            continue;
        }
        // Anything else is answered after the adds before it, and sees them.
        while let Some(response) = pending.next().await {
            send(&mut writer, &response).await?;
        }
        if let Request::Subscribe(subscribe) = envelope.request {
            // Subscribe before acknowledging, so no event falls between the two.
            let events = service.subscribe();
            send(&mut writer, &Response::ok(id, Reply::Subscribed)).await?;
            return stream_events(
                &mut writer,
                &mut reader,
                &mut framer,
                events,
                id,
                subscribe.ids,
                shutdown,
            )
            .await;
        }
        let response = match dispatch(service, envelope.request).await {
            Ok(reply) => Response::ok(id, reply),
            Err(e) => Response::error(id, e.code, e.message),
        };
        send(&mut writer, &response).await?;
    }
}

async fn stream_events(
    writer: &mut &Stream,
    reader: &mut (impl AsyncBufRead + Unpin),
    framer: &mut LineFramer,
    mut events: tokio::sync::broadcast::Receiver<Event>,
    id: u64,
    ids: Vec<u64>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    loop {
        tokio::select! {
            event = events.recv() => {
                let event = match event {
                    Ok(event) => event,
                    Err(RecvError::Lagged(missed)) => Event::Lagged { missed },
                    Err(RecvError::Closed) => return Ok(()),
                };
                let wanted = ids.is_empty() || event.job_id().is_none_or(|job| ids.contains(&job));
                if wanted {
                    send(writer, &Response::ok(id, Reply::Event(event))).await?;
                }
            }
            // A subscriber sends nothing more; any input or EOF ends the stream.
            line = read_line(reader, framer) => {
                if !matches!(line?, Line::Complete(_)) {
                    return Ok(());
                }
            }
            _ = shutdown.cancelled() => return Ok(()),
        }
    }
}

/// Calls the service for one request. Shared by every door.
pub async fn dispatch(service: &Service, request: Request) -> Result<Reply, ServiceError> {
    Ok(match request {
        Request::Hello(hello) => {
            if hello.protocol != PROTOCOL_VERSION {
                return Err(ServiceError::new(
                    ErrorCode::UnsupportedVersion,
                    format!(
                        "this upqd speaks protocol {PROTOCOL_VERSION}, the client speaks {}",
                        hello.protocol
                    ),
                ));
            }
            Reply::Hello(HelloReply {
                protocol: PROTOCOL_VERSION,
                version: env!("CARGO_PKG_VERSION").into(),
            })
        }
        Request::Add(add) => Reply::Job(Box::new(service.add(add).await?)),
        Request::AddMany(many) => Reply::Added(service.add_many(many, false).await?),
        Request::List { all, after, limit } => Reply::Jobs(service.list_page(all, after, limit)?),
        Request::AddPost(post) => Reply::Post(Box::new(service.add_post(post).await?)),
        Request::Show { id } => Reply::Job(Box::new(service.show(id)?)),
        Request::Edit(edit) => Reply::Job(Box::new(service.edit(edit).await?)),
        Request::ShowPost { id } => Reply::Post(Box::new(service.show_post(id)?)),
        Request::ListPosts { all, after, limit } => {
            Reply::Posts(service.list_posts(all, after, limit)?)
        }
        Request::Pause(mut selection) => {
            selection.ids = service.expand(&selection.ids, &selection.posts)?;
            Reply::Batch(service.pause(selection).await?)
        }
        Request::Resume(mut selection) => {
            selection.ids = service.expand(&selection.ids, &selection.posts)?;
            Reply::Batch(service.resume(selection).await?)
        }
        Request::Cancel(ids) => Reply::Batch(
            service
                .cancel(service.expand(&ids.ids, &ids.posts)?)
                .await?,
        ),
        Request::Retry(ids) => {
            Reply::Batch(service.retry(service.expand(&ids.ids, &ids.posts)?).await?)
        }
        Request::Publish(ids) => Reply::Batch(service.publish_targets(&ids.ids, &ids.posts).await?),
        Request::Drafts { after, limit } => Reply::Jobs(service.drafts_page(after, limit)?),
        Request::Recover(ids) => Reply::Batch(
            service
                .recover(service.expand(&ids.ids, &ids.posts)?)
                .await?,
        ),
        Request::Discard(ids) => Reply::Batch(
            service
                .discard(service.expand(&ids.ids, &ids.posts)?)
                .await?,
        ),
        Request::Status => Reply::Status(Box::new(service.status())),
        Request::Limit { rate, until_ms } => Reply::Limit(
            service
                .set_rate_limit(rate, until_ms.map(std::time::Duration::from_millis))
                .0,
        ),
        Request::Login {
            destination,
            timeout_ms,
        } => {
            let started = service
                .login(
                    &destination,
                    timeout_ms.map(std::time::Duration::from_millis),
                )
                .await?;
            Reply::Login {
                url: started.url,
                attempt: started.attempt,
            }
        }
        Request::LoginWait {
            destination,
            attempt,
        } => Reply::LoginFinished(service.login_wait(&destination, attempt).await?),
        Request::Accounts => Reply::Accounts(service.accounts().await),
        Request::Logout { destination } => Reply::LoggedOut {
            message: service.logout(&destination).await?,
        },
        Request::Open => Reply::Desk {
            url: service.open_desk()?,
        },
        Request::Doctor { timeout_ms } => Reply::Checks(
            service
                .doctor(timeout_ms.map_or(
                    crate::service::DEFAULT_CHECK_TIMEOUT,
                    std::time::Duration::from_millis,
                ))
                .await,
        ),
        Request::Subscribe(_) => {
            return Err(ServiceError::new(
                ErrorCode::BadRequest,
                "subscribe turns a connection into an event stream; it is not a single call",
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(input: &[u8], split: usize) -> Vec<Line> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            // Deliver the input in pieces of `split` bytes, as a socket might.
            let mut source = piecewise_reader(input, split);
            let mut reader = BufReader::with_capacity(64 * 1024, &mut source);
            let mut framer = LineFramer::new();
            let mut lines = Vec::new();
            loop {
                match read_line(&mut reader, &mut framer).await.unwrap() {
                    Line::Closed => break,
                    Line::TooLong => {
                        lines.push(Line::TooLong);
                        break;
                    }
                    line => lines.push(line),
                }
            }
            lines
        })
    }

    fn piecewise_reader(input: &[u8], split: usize) -> impl tokio::io::AsyncRead + Unpin {
        let pieces: Vec<Vec<u8>> = input.chunks(split.max(1)).map(<[u8]>::to_vec).collect();
        let stream = futures::stream::iter(
            pieces
                .into_iter()
                .map(|p| Ok::<_, io::Error>(bytes::Bytes::from(p))),
        );
        tokio_util::io::StreamReader::new(stream)
    }

    #[test]
    fn lines_are_split_and_capped() {
        let lines = read_all(b"{\"a\":1}\n\n{\"b\":2}\npartial", 3);
        let complete: Vec<Vec<u8>> = lines
            .into_iter()
            .filter_map(|l| match l {
                Line::Complete(l) => Some(l),
                _ => None,
            })
            .collect();
        assert_eq!(
            complete,
            vec![b"{\"a\":1}".to_vec(), Vec::new(), b"{\"b\":2}".to_vec()]
        );

        let mut long = vec![b'x'; MAX_LINE_BYTES + 10];
        long.push(b'\n');
        assert!(matches!(
            read_all(&long, 70_000).last(),
            Some(Line::TooLong)
        ));
    }
}
