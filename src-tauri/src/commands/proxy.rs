//! The grid proxy: its status, a new one, the passphrase in the keyring, attaching machines.
//! Renewals by any tool arrive as `proxy` events (see `events::watch_proxy`).
//!
//! Only metadata crosses to the window. The passphrase comes in once, in `proxy_init`'s request,
//! is wiped after use, and never goes back out.

use serde::Deserialize;
use sloop_core::machine::{self, MachineSummary};
use sloop_core::proxy::attach::{self, Sources};
use sloop_core::proxy::{self, MakeRequest, ProxyError, ProxyStatus, UserCredentials, VomsTool};
use tauri::State;
use ts_rs::TS;
use zeroize::Zeroizing;

use crate::ipc_error::{ErrorCode, IpcError};
use crate::state::AppState;

/// What the Renew form sends.
#[derive(Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct ProxyInit {
    pub lifetime_hours: u32,
    /// Needed only for a protected key whose passphrase is not remembered.
    pub passphrase: Option<String>,
    /// Remember the passphrase in the OS keyring.
    pub remember: bool,
    /// Ask this VO's VOMS server for attributes (needs voms-proxy-init or arcproxy).
    pub vo: Option<String>,
}

impl std::fmt::Debug for ProxyInit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyInit")
            .field("lifetime_hours", &self.lifetime_hours)
            .field("remember", &self.remember)
            .field("vo", &self.vo)
            .finish_non_exhaustive()
    }
}

impl Drop for ProxyInit {
    fn drop(&mut self) {
        if let Some(p) = self.passphrase.take() {
            drop(Zeroizing::new(p));
        }
    }
}

/// The proxy, the user's credentials and the keyring, as the panel shows them.
#[tauri::command]
pub async fn proxy_status(state: State<'_, AppState>) -> Result<ProxyStatus, IpcError> {
    let config = state.config()?.clone();
    let keyring = state.keyring.clone();
    Ok(tokio::task::spawn_blocking(move || proxy::status(&config, &keyring)).await?)
}

/// Makes a new proxy from the user's certificate. The proxy watch (`events::watch_proxy`) sees
/// the new file and places it in the running attached machines.
#[tauri::command]
pub async fn proxy_init(
    state: State<'_, AppState>,
    mut request: ProxyInit,
) -> Result<ProxyStatus, IpcError> {
    let config = state.config()?.clone();
    let credentials = UserCredentials::from_env();
    let mut make = MakeRequest::new(&credentials, proxy::default_path());
    make.lifetime = std::time::Duration::from_secs(u64::from(request.lifetime_hours) * 3600);
    let typed = request.passphrase.take().map(Zeroizing::new);
    let keyring = state.keyring.clone();
    let passphrase = match typed.clone() {
        Some(p) => Some(p),
        None => {
            let key = credentials.key.clone();
            let keyring = keyring.clone();
            tokio::task::spawn_blocking(move || keyring.recall(&key))
                .await?
                .unwrap_or_else(|e| {
                    tracing::warn!("{e}");
                    None
                })
        }
    };
    let anchors = config.ca_dir();
    match request.vo.as_deref().filter(|v| !v.trim().is_empty()) {
        None => {
            let make = make.clone();
            let owned = passphrase.clone();
            let anchors = anchors.clone();
            tokio::task::spawn_blocking(move || {
                proxy::make(
                    &make,
                    owned.as_ref().map(|p| p.as_str()),
                    &anchors,
                    time::OffsetDateTime::now_utc(),
                )
            })
            .await?
        }
        Some(vo) => {
            let tool = VomsTool::find().ok_or_else(|| IpcError {
                code: ErrorCode::Proxy,
                message: "VOMS attributes need voms-proxy-init or arcproxy; install voms-clients or nordugrid-arc-client".into(),
            })?;
            let passphrase = passphrase.as_ref().map(|p| p.as_str());
            proxy::make_with_voms(tool, &make, vo.trim(), passphrase, &anchors).await
        }
    }?;
    if request.remember
        && let Some(p) = typed
    {
        let key = credentials.key.clone();
        let keyring = keyring.clone();
        // The proxy is made: a keyring that refuses is worth a log line, not a failure.
        match tokio::task::spawn_blocking(move || keyring.remember(&key, &p)).await? {
            Ok(()) => {}
            Err(e) => tracing::warn!("the passphrase was not remembered: {e}"),
        }
    }
    let keyring = state.keyring.clone();
    let status = tokio::task::spawn_blocking(move || proxy::status(&config, &keyring)).await?;
    Ok(status)
}

/// Forgets the passphrase remembered for the user's key; false when none was.
#[tauri::command]
pub async fn proxy_forget(state: State<'_, AppState>) -> Result<bool, IpcError> {
    let keyring = state.keyring.clone();
    let key = UserCredentials::from_env().key;
    Ok(tokio::task::spawn_blocking(move || keyring.forget(&key)).await??)
}

/// Places the proxy in machine `name` at every start and renewal, and now if it runs.
#[tauri::command]
pub async fn machine_proxy_attach(
    state: State<'_, AppState>,
    name: String,
) -> Result<MachineSummary, IpcError> {
    let config = state.config()?;
    let conn = state.connection().await?;
    attach::attach(&state.paths, &conn, &name, &Sources::from_env(config)).await?;
    summary(&state, &name).await
}

/// Stops placing the proxy in machine `name`, and removes it from the machine if it runs.
#[tauri::command]
pub async fn machine_proxy_detach(
    state: State<'_, AppState>,
    name: String,
) -> Result<MachineSummary, IpcError> {
    let conn = state.connection().await?;
    attach::detach(&state.paths, &conn, &name).await?;
    summary(&state, &name).await
}

async fn summary(state: &AppState, name: &str) -> Result<MachineSummary, IpcError> {
    let config = state.config()?;
    let conn = state.connection().await?;
    let manifest = machine::load(
        &state.paths,
        &name.parse().map_err(machine::MachineError::from)?,
    )?;
    Ok(machine::summary(&state.paths, config, &conn, &manifest).await?)
}

impl From<ProxyError> for IpcError {
    fn from(error: ProxyError) -> Self {
        let code = match error {
            ProxyError::PassphraseNeeded { .. } | ProxyError::WrongPassphrase { .. } => {
                ErrorCode::Passphrase
            }
            _ => ErrorCode::Proxy,
        };
        Self::new(code, &error)
    }
}

impl From<attach::AttachError> for IpcError {
    fn from(error: attach::AttachError) -> Self {
        match error {
            attach::AttachError::Machine(e) => e.into(),
            other => Self::new(ErrorCode::Proxy, &other),
        }
    }
}

impl From<proxy::passphrase::PassphraseError> for IpcError {
    fn from(error: proxy::passphrase::PassphraseError) -> Self {
        Self::new(ErrorCode::Proxy, &error)
    }
}
