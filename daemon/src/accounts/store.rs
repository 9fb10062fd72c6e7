//! Where token sets live: the desktop's Secret Service when one answers on the session bus,
//! otherwise one file per destination under the data folder (mode 0600 in a 0700 folder,
//! written new then renamed over the old one, both synced).
//!
//! Either way a `save` has returned only once the new set is durable: the refresh relies on
//! that to keep a rotated refresh token from being lost.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::keyring::{KeyringError, SecretService};
use super::tokens::TokenSet;

/// How long the Secret Service may take to answer whether it is there.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the account file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the Secret Service: {0}")]
    Keyring(#[from] KeyringError),
    #[error("the stored account of '{destination}' cannot be read ({reason}); sign in again")]
    Damaged { destination: String, reason: String },
}

#[derive(Clone)]
enum Backend {
    Keyring(Arc<SecretService>),
    File(PathBuf),
}

/// The token store the daemon uses.
#[derive(Clone)]
pub struct TokenStore {
    backend: Backend,
}

impl std::fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl TokenStore {
    /// The Secret Service if it answers on the session bus, else files in `dir`.
    pub async fn open(dir: PathBuf) -> TokenStore {
        match tokio::time::timeout(CONNECT_TIMEOUT, Self::keyring()).await {
            Ok(Some(service)) => {
                tracing::info!("account tokens are kept in the Secret Service");
                TokenStore {
                    backend: Backend::Keyring(Arc::new(service)),
                }
            }
            Ok(None) | Err(_) => {
                tracing::info!(dir = %dir.display(), "no Secret Service answers: account tokens are kept in files");
                TokenStore::files(dir)
            }
        }
    }

    async fn keyring() -> Option<SecretService> {
        let connection = zbus::Connection::session().await.ok()?;
        match SecretService::connect(&connection).await {
            Ok(service) => service,
            Err(e) => {
                tracing::warn!(error = %e, "the Secret Service did not open a session");
                None
            }
        }
    }

    /// Files in `dir` only.
    pub fn files(dir: PathBuf) -> TokenStore {
        TokenStore {
            backend: Backend::File(dir),
        }
    }

    /// `secret_service` or `file`, as `accounts` shows it.
    pub fn name(&self) -> &'static str {
        match self.backend {
            Backend::Keyring(_) => "secret_service",
            Backend::File(_) => "file",
        }
    }

    pub async fn load(&self, destination: &str) -> Result<Option<TokenSet>, StoreError> {
        let bytes = match &self.backend {
            Backend::Keyring(service) => service.load(&attributes(destination)).await?,
            Backend::File(dir) => {
                let path = file_of(dir, destination);
                match tokio::fs::read(&path).await {
                    Ok(bytes) => Some(bytes),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    Err(source) => return Err(StoreError::File { path, source }),
                }
            }
        };
        let Some(bytes) = bytes else { return Ok(None) };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Damaged {
                destination: destination.to_string(),
                // serde's message names the field, never the value.
                reason: format!("line {} column {}", e.line(), e.column()),
            })
    }

    /// Stores `tokens` durably; returns once they would survive a crash.
    pub async fn save(&self, destination: &str, tokens: &TokenSet) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(tokens).map_err(|e| StoreError::Damaged {
            destination: destination.to_string(),
            reason: e.to_string(),
        })?;
        match &self.backend {
            Backend::Keyring(service) => {
                let label = format!("upq: account of destination '{destination}'");
                service
                    .store(&label, &attributes(destination), &bytes)
                    .await?;
                Ok(())
            }
            Backend::File(dir) => {
                let dir = dir.clone();
                let destination = destination.to_string();
                tokio::task::spawn_blocking(move || write_file(&dir, &destination, &bytes))
                    .await
                    .map_err(|e| StoreError::File {
                        path: PathBuf::new(),
                        source: std::io::Error::other(e.to_string()),
                    })?
            }
        }
    }

    pub async fn forget(&self, destination: &str) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Keyring(service) => {
                service.delete(&attributes(destination)).await?;
                Ok(())
            }
            Backend::File(dir) => {
                let path = file_of(dir, destination);
                match tokio::fs::remove_file(&path).await {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(source) => Err(StoreError::File { path, source }),
                }
            }
        }
    }
}

fn attributes(destination: &str) -> [(&str, &str); 2] {
    [("application", "upq"), ("destination", destination)]
}

/// `dir/<destination>.json`; destination names are config keys, but any `/` is replaced so a
/// name can never point outside the folder.
fn file_of(dir: &Path, destination: &str) -> PathBuf {
    let safe: String = destination
        .chars()
        .map(|c| if c == '/' || c == '\0' { '_' } else { c })
        .collect();
    dir.join(format!("{safe}.json"))
}

/// Writes `bytes` to a new file (0600), syncs it, renames it over the old one and syncs the
/// folder, so a crash leaves either the old set or the new one, whole.
fn write_file(dir: &Path, destination: &str, bytes: &[u8]) -> Result<(), StoreError> {
    let failed = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StoreError::File { path, source }
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(failed(dir))?;
    let path = file_of(dir, destination);
    let temp = path.with_extension("json.new");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .map_err(failed(&temp))?;
    file.write_all(bytes).map_err(failed(&temp))?;
    file.sync_all().map_err(failed(&temp))?;
    drop(file);
    std::fs::rename(&temp, &path).map_err(failed(&path))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(failed(dir))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::tokens::Secret;
    use std::os::unix::fs::PermissionsExt;

    fn tokens() -> TokenSet {
        TokenSet {
            access_token: Secret::new("act.1"),
            access_expires_at: None,
            refresh_token: Some(Secret::new("rft.1")),
            refresh_expires_at: None,
            scopes: vec![],
            account_id: None,
            display_name: None,
            obtained_at: chrono::Utc::now(),
        }
    }

    #[tokio::test]
    async fn the_file_store_keeps_a_private_file_and_replaces_it_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::files(dir.path().join("accounts"));
        assert_eq!(store.load("t").await.unwrap(), None);
        store.save("t", &tokens()).await.unwrap();
        let path = dir.path().join("accounts/t.json");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let folder = std::fs::metadata(dir.path().join("accounts")).unwrap();
        assert_eq!(folder.permissions().mode() & 0o777, 0o700);
        let mut second = tokens();
        second.refresh_token = Some(Secret::new("rft.2"));
        store.save("t", &second).await.unwrap();
        assert_eq!(store.load("t").await.unwrap(), Some(second));
        assert!(!dir.path().join("accounts/t.json.new").exists());
        store.forget("t").await.unwrap();
        assert_eq!(store.load("t").await.unwrap(), None);
        store.forget("t").await.unwrap();
    }

    #[tokio::test]
    async fn a_damaged_file_is_an_error_that_names_no_secret() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        std::fs::write(
            dir.path().join("a/t.json"),
            "{\"access_token\":\"act.secret\"",
        )
        .unwrap();
        let store = TokenStore::files(dir.path().join("a"));
        let err = store.load("t").await.unwrap_err().to_string();
        assert!(err.contains("sign in again"), "{err}");
        assert!(!err.contains("act.secret"), "{err}");
    }

    #[test]
    fn a_destination_name_cannot_leave_the_folder() {
        let path = file_of(Path::new("/d"), "../x/y");
        assert_eq!(path, Path::new("/d/.._x_y.json"));
    }
}
