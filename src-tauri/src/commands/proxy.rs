//! The grid proxy: its status, a new one, the passphrase in the keyring, attaching machines.
//! Renewals by any tool arrive as `proxy` events (see `Core::watch_proxy`).
//!
//! Only metadata crosses to the window. The passphrase comes in once, in `proxy_init`'s request,
//! is wiped after use, and never goes back out.

use serde::Deserialize;
use sloop_core::facade::Renewal;
use sloop_core::machine::MachineSummary;
use sloop_core::proxy::attach::{self, Sources};
use sloop_core::proxy::{self, MakeRequest, ProxyError, ProxyStatus, UserCredentials};
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

impl ProxyInit {
    /// The Core's renewal for this form: the user's credentials, the default proxy path. The
    /// passphrase moves into a wiped-on-drop string.
    fn renewal(&mut self) -> Renewal {
        let credentials = UserCredentials::from_env();
        let mut make = MakeRequest::new(&credentials, proxy::default_path());
        make.lifetime = std::time::Duration::from_secs(u64::from(self.lifetime_hours) * 3600);
        Renewal {
            request: make,
            vo: self.vo.take(),
            passphrase: self.passphrase.take().map(Zeroizing::new),
            remember: self.remember,
            place: false,
        }
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
    Ok(state.core.proxy_status().await?)
}

/// Makes a new proxy from the user's certificate. The proxy watch (`Core::watch_proxy`) sees
/// the new file and places it in the running attached machines.
#[tauri::command]
pub async fn proxy_init(
    state: State<'_, AppState>,
    mut request: ProxyInit,
) -> Result<ProxyStatus, IpcError> {
    state.core.renew_proxy(request.renewal()).await?;
    proxy_status(state).await
}

/// Forgets the passphrase remembered for the user's key; false when none was.
#[tauri::command]
pub async fn proxy_forget(state: State<'_, AppState>) -> Result<bool, IpcError> {
    let keyring = state.core.keyring().clone();
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
    attach::attach(state.paths(), &conn, &name, &Sources::from_env(config)).await?;
    summary(&state, &name).await
}

/// Stops placing the proxy in machine `name`, and removes it from the machine if it runs.
#[tauri::command]
pub async fn machine_proxy_detach(
    state: State<'_, AppState>,
    name: String,
) -> Result<MachineSummary, IpcError> {
    let conn = state.connection().await?;
    attach::detach(state.paths(), &conn, &name).await?;
    summary(&state, &name).await
}

async fn summary(state: &AppState, name: &str) -> Result<MachineSummary, IpcError> {
    Ok(state.core.machine(name).await?)
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
