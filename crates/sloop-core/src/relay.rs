//! SSH relays: a login host of the user's (their institute's) through which Sloop reaches a run's
//! machine when the site's worker nodes take no inbound connections. The run's VM job dials out
//! to the relay and holds a reverse forward there to the machine's SSH; Sloop logs in to the
//! relay as the user and opens a direct-tcpip channel to that forward (SSH inside SSH, with the
//! run's host key pinned as always). No `ssh` binary is needed on this computer.
//!
//! The job authenticates to the relay with a key made for the run alone, which Sloop installs in
//! the user's `~/.ssh/authorized_keys` there over the user's own login (their agent, or an
//! unencrypted key in `~/.ssh`), with options that allow nothing but one reverse forward to the
//! relay's loopback. Because `port-forwarding` also re-enables local forwards and Unix-socket
//! forwards that no key option can turn off again, Sloop tries each refused thing with the run's
//! key right after installing it and gives up on the relay (removing the key) if any works. The
//! key is removed when the run ends or is cleaned.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKey};
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::ssh::{self, CheckedHost, HostCheck, HostVerdict, fingerprint};

/// Each step (connect, handshake, login, one request) on the relay may take this long.
const STEP: Duration = Duration::from_secs(20);

/// `user@host[:port]`, as the user gives a relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayAddr {
    pub user: String,
    pub host: String,
    pub port: u16,
}

impl FromStr for RelayAddr {
    type Err = RelayError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| {
            RelayError::Invalid(format!(
                "SSH server {text:?} {why}; give it as USER@HOST or USER@HOST:PORT"
            ))
        };
        let (user, rest) = text.split_once('@').ok_or_else(|| bad("names no user"))?;
        let valid_user = !user.is_empty()
            && user.len() <= 32
            && !user.starts_with('-')
            && user
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c));
        if !valid_user {
            return Err(bad("has a user name SSH cannot take"));
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (
                host,
                port.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| bad("has a port that is not one"))?,
            ),
            _ => (rest, 22),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let valid_host = host.parse::<std::net::IpAddr>().is_ok()
            || (!host.is_empty()
                && host.len() <= 253
                && !host.starts_with('-')
                && host
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b".-".contains(&c)));
        if !valid_host {
            return Err(bad("has a host name that is not one"));
        }
        Ok(Self {
            user: user.to_string(),
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for RelayAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.port == 22 {
            write!(f, "{}@{}", self.user, self.host)
        } else {
            write!(f, "{}@{}:{}", self.user, self.host, self.port)
        }
    }
}

/// A run's relay, as its record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct RelayRef {
    pub user: String,
    pub host: String,
    pub port: u16,
    /// The relay's host key (OpenSSH public key line) as the user's known_hosts vouched for it
    /// when the run's key was installed: the only key the relay may present to Sloop, and the
    /// only one the VM job accepts.
    pub host_key: String,
    /// The comment that marks the run's line in the relay account's authorized_keys.
    pub key_comment: String,
    /// The run's key line was removed from the relay.
    #[serde(default)]
    pub removed: bool,
}

impl RelayRef {
    pub fn addr(&self) -> RelayAddr {
        RelayAddr {
            user: self.user.clone(),
            host: self.host.clone(),
            port: self.port,
        }
    }

    /// The relay's line for the job's known_hosts file.
    pub fn known_hosts_line(&self) -> String {
        let key = ssh::bare_key(&self.host_key);
        if self.port == 22 {
            format!("{} {key}\n", self.host)
        } else {
            format!("[{}]:{} {key}\n", self.host, self.port)
        }
    }
}

/// A relay could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("{0}")]
    Invalid(String),
    #[error("relay {addr} does not answer: {reason}")]
    Unreachable { addr: String, reason: String },
    #[error(
        "relay {addr}'s host key ({presented}) is not in {known_hosts}; log in to it once with ssh to check and accept its key, then try again"
    )]
    UnknownHostKey {
        addr: String,
        presented: String,
        known_hosts: String,
    },
    #[error(
        "relay {addr} presented host key {presented}, not the one {expected}: refusing to use it (a different server answers at that address)"
    )]
    HostKeyChanged {
        addr: String,
        expected: String,
        presented: String,
    },
    #[error(
        "relay {addr} refused the login as {user} with every key Sloop could use (your SSH agent, unencrypted keys in {ssh_dir}); check that `ssh {addr}` works without a password"
    )]
    LoginRefused {
        addr: String,
        user: String,
        ssh_dir: String,
    },
    #[error("relay {addr}: {what} failed: {reason}")]
    Command {
        addr: String,
        what: String,
        reason: String,
    },
    #[error(
        "relay {addr} lets a restricted key {what}; Sloop will not give a grid job such a key there. Use another relay, or ask its admins for `AllowStreamLocalForwarding no` (and no local forwarding) for key-restricted logins"
    )]
    NotRestricted { addr: String, what: String },
    #[error("relay {addr}: SSH failed: {source}")]
    Ssh {
        addr: String,
        #[source]
        source: russh::Error,
    },
}

/// Who logs in to the relay.
enum Login<'a> {
    /// The user, with their agent or unencrypted keys in `ssh_dir`.
    User { ssh_dir: &'a Path },
    /// The run's own key (to try what it may do).
    Key(&'a PrivateKey),
}

/// The user's `~/.ssh`.
pub fn user_ssh_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
        .join(".ssh")
}

/// Connects and logs in to `addr`; the connection and the relay's host key.
async fn open(
    addr: &RelayAddr,
    check: HostCheck,
    login: Login<'_>,
) -> Result<(Handle<CheckedHost>, PublicKey), RelayError> {
    let shown = addr.to_string();
    let unreachable = |reason: String| RelayError::Unreachable {
        addr: shown.clone(),
        reason,
    };
    let stream = tokio::time::timeout(
        STEP,
        tokio::net::TcpStream::connect((addr.host.as_str(), addr.port)),
    )
    .await
    .map_err(|_| unreachable(format!("no TCP connection within {} s", STEP.as_secs())))?
    .map_err(|e| unreachable(e.to_string()))?;
    let _ = stream.set_nodelay(true);
    let known_hosts = match &check {
        HostCheck::KnownHosts(path) => Some(path.clone()),
        HostCheck::Pinned(_) => None,
    };
    let expected = match &check {
        HostCheck::Pinned(key) => Some(fingerprint(key)),
        HostCheck::KnownHosts(_) => None,
    };
    let verdict = Arc::new(Mutex::new(None));
    let handler = CheckedHost {
        host: addr.host.clone(),
        port: addr.port,
        check,
        verdict: verdict.clone(),
    };
    let handshake = client::connect_stream(ssh::client_config(), stream, handler);
    let result = tokio::time::timeout(STEP, handshake).await;
    let seen = verdict.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let (mut handle, host_key) = match (result, seen) {
        (Ok(Ok(handle)), Some(HostVerdict::Accepted(key))) => (handle, key),
        (_, Some(HostVerdict::Unknown(key))) => {
            return Err(RelayError::UnknownHostKey {
                addr: shown,
                presented: fingerprint(&key),
                known_hosts: known_hosts
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            });
        }
        (_, Some(HostVerdict::Changed(key))) => {
            return Err(RelayError::HostKeyChanged {
                addr: shown,
                expected: expected.unwrap_or_else(|| "your known_hosts has for it".into()),
                presented: fingerprint(&key),
            });
        }
        (Err(_), _) => return Err(unreachable("the SSH handshake timed out".into())),
        (Ok(Err(e)), _) => return Err(unreachable(format!("SSH handshake: {e}"))),
        (Ok(Ok(_)), _) => return Err(unreachable("no host key was checked".into())),
    };
    let ssh_err = |source| RelayError::Ssh {
        addr: shown.clone(),
        source,
    };
    let hash = handle
        .best_supported_rsa_hash()
        .await
        .map_err(ssh_err)?
        .flatten();
    let refused = |ssh_dir: &Path| RelayError::LoginRefused {
        addr: shown.clone(),
        user: addr.user.clone(),
        ssh_dir: ssh_dir.display().to_string(),
    };
    match login {
        Login::Key(key) => {
            let auth = handle
                .authenticate_publickey(
                    &addr.user,
                    PrivateKeyWithHashAlg::new(Arc::new(key.clone()), hash),
                )
                .await
                .map_err(ssh_err)?;
            if !auth.success() {
                return Err(refused(Path::new("(the run's key)")));
            }
        }
        Login::User { ssh_dir } => {
            if !user_login(&mut handle, &addr.user, hash, ssh_dir).await {
                return Err(refused(ssh_dir));
            }
        }
    }
    Ok((handle, host_key))
}

/// Tries the user's agent's keys, then their unencrypted key files; true once one is accepted.
async fn user_login(
    handle: &mut Handle<CheckedHost>,
    user: &str,
    hash: Option<russh::keys::HashAlg>,
    ssh_dir: &Path,
) -> bool {
    if let Ok(mut agent) = russh::keys::agent::client::AgentClient::connect_env().await
        && let Ok(identities) = agent.request_identities().await
    {
        for identity in identities {
            let russh::keys::agent::AgentIdentity::PublicKey { key, .. } = identity else {
                continue;
            };
            if let Ok(auth) = handle
                .authenticate_publickey_with(user, key, hash, &mut agent)
                .await
                && auth.success()
            {
                return true;
            }
        }
    }
    for name in ["id_ed25519", "id_ecdsa", "id_rsa"] {
        let Ok(text) = std::fs::read_to_string(ssh_dir.join(name)) else {
            continue;
        };
        let text = zeroize::Zeroizing::new(text);
        let Ok(key) = PrivateKey::from_openssh(text.as_bytes()) else {
            continue;
        };
        if key.is_encrypted() {
            tracing::info!(
                key = name,
                "encrypted SSH key skipped; load it into your agent"
            );
            continue;
        }
        if let Ok(auth) = handle
            .authenticate_publickey(user, PrivateKeyWithHashAlg::new(Arc::new(key), hash))
            .await
            && auth.success()
        {
            return true;
        }
    }
    false
}

/// Runs `command` on the relay; its output when it exits 0.
async fn run(
    handle: &Handle<CheckedHost>,
    addr: &RelayAddr,
    what: &str,
    command: &str,
) -> Result<String, RelayError> {
    let failed = |reason: String| RelayError::Command {
        addr: addr.to_string(),
        what: what.to_string(),
        reason,
    };
    let mut channel = tokio::time::timeout(STEP, handle.channel_open_session())
        .await
        .map_err(|_| failed("no answer".into()))?
        .map_err(|e| failed(e.to_string()))?;
    channel
        .exec(true, command)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let output = tokio::time::timeout(STEP, ssh::collect(&mut channel))
        .await
        .map_err(|_| failed("it did not end".into()))?;
    match output.status {
        Some(0) => Ok(String::from_utf8_lossy(&output.stdout).into_owned()),
        other => Err(failed(format!(
            "exit status {}: {}",
            other.map_or_else(|| "none".into(), |s| s.to_string()),
            String::from_utf8_lossy(&output.stderr)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        ))),
    }
}

/// The options of the run's line: one reverse forward on the relay's loopback, nothing else.
/// (`permitopen` names a port nothing listens on: "none" is not accepted in a key line.)
const KEY_OPTIONS: &str = "restrict,port-forwarding,permitlisten=\"localhost:*\",permitopen=\"127.0.0.1:1\",command=\"/bin/false\"";

/// The run's authorized_keys line.
pub fn key_line(public: &PublicKey, comment: &str) -> String {
    format!(
        "{KEY_OPTIONS} {} {comment}",
        ssh::bare_key(&ssh::public_openssh(public))
    )
}

/// Installs the run's key (`public`, marked with `comment`) for `addr`'s account over the user's
/// login (host key checked against `ssh_dir/known_hosts`), then checks with `run_key` that it can
/// hold a reverse forward and do nothing else. On any failure the line is removed again.
pub async fn install(
    addr: &RelayAddr,
    ssh_dir: &Path,
    run_key: &PrivateKey,
    comment: &str,
) -> Result<RelayRef, RelayError> {
    let (handle, host_key) = open(
        addr,
        HostCheck::KnownHosts(ssh_dir.join("known_hosts")),
        Login::User { ssh_dir },
    )
    .await?;
    let line = key_line(run_key.public_key(), comment);
    let command = format!(
        "umask 077 && mkdir -p \"$HOME/.ssh\" && printf '%s\\n' {} >>\"$HOME/.ssh/authorized_keys\"",
        ssh::sh_quote(&line)
    );
    run(&handle, addr, "adding the run's key", &command).await?;
    let relay = RelayRef {
        user: addr.user.clone(),
        host: addr.host.clone(),
        port: addr.port,
        host_key: ssh::public_openssh(&host_key),
        key_comment: comment.to_string(),
        removed: false,
    };
    let checked = check_restricted(addr, &host_key, run_key).await;
    let _ = handle
        .disconnect(russh::Disconnect::ByApplication, "", "en")
        .await;
    if let Err(error) = checked {
        if let Err(e) = remove(&relay, ssh_dir).await {
            tracing::warn!(error = %crate::error_chain(&e), "the run's key could not be removed from the relay");
        }
        return Err(error);
    }
    tracing::info!(relay = %addr, "run key installed on the relay");
    Ok(relay)
}

/// Logs in with the run's key and tries what it must not do (a command; a local forward to the
/// relay's own SSH port; a Unix-socket forward) and what it must (a reverse forward).
pub async fn check_restricted(
    addr: &RelayAddr,
    host_key: &PublicKey,
    run_key: &PrivateKey,
) -> Result<(), RelayError> {
    let (handle, _) = open(
        addr,
        HostCheck::Pinned(host_key.clone()),
        Login::Key(run_key),
    )
    .await?;
    let not_restricted = |what: &str| RelayError::NotRestricted {
        addr: addr.to_string(),
        what: what.to_string(),
    };
    let probe = "sloop-relay-probe";
    if let Ok(out) = run(&handle, addr, "a command", &format!("echo {probe}")).await
        && out.contains(probe)
    {
        return Err(not_restricted("run commands"));
    }
    if let Ok(Ok(channel)) = tokio::time::timeout(
        STEP,
        handle.channel_open_direct_tcpip("127.0.0.1", u32::from(addr.port), "127.0.0.1", 0),
    )
    .await
    {
        let _ = channel.close().await;
        return Err(not_restricted(
            "open connections to other ports (local forwarding)",
        ));
    }
    let socket = format!("/tmp/sloop-relay-probe-{}.sock", std::process::id());
    if let Ok(Ok(())) = tokio::time::timeout(STEP, handle.streamlocal_forward(socket.clone())).await
    {
        let _ = handle.cancel_streamlocal_forward(socket).await;
        return Err(not_restricted("forward Unix sockets"));
    }
    let port = tokio::time::timeout(STEP, handle.tcpip_forward("localhost", 0))
        .await
        .map_err(|_| RelayError::Command {
            addr: addr.to_string(),
            what: "a reverse forward with the run's key".into(),
            reason: "no answer".into(),
        })?
        .map_err(|e| RelayError::Command {
            addr: addr.to_string(),
            what: "a reverse forward with the run's key".into(),
            reason: e.to_string(),
        })?;
    let _ = handle.cancel_tcpip_forward("localhost", port).await;
    let _ = handle
        .disconnect(russh::Disconnect::ByApplication, "", "en")
        .await;
    Ok(())
}

/// Removes the run's line from the relay account (over the user's login, the relay's host key
/// pinned). Lines of other runs and of the user stay as they were.
pub async fn remove(relay: &RelayRef, ssh_dir: &Path) -> Result<(), RelayError> {
    let addr = relay.addr();
    let host_key = pinned_key(relay)?;
    let (handle, _) = open(&addr, HostCheck::Pinned(host_key), Login::User { ssh_dir }).await?;
    // The file is rewritten in place (cat >), keeping its owner and mode.
    let command = format!(
        "f=\"$HOME/.ssh/authorized_keys\"; [ -f \"$f\" ] || exit 0; umask 077; t=$(mktemp \"$HOME/.ssh/.sloop-keys.XXXXXX\") || exit 1; \
         grep -v -e {} \"$f\" >\"$t\"; [ $? -le 1 ] && cat \"$t\" >\"$f\"; s=$?; rm -f \"$t\"; exit $s",
        // The comment ends the line: another run's whose id starts with this one's stays.
        ssh::sh_quote(&format!(" {}$", relay.key_comment))
    );
    let done = run(&handle, &addr, "removing the run's key", &command).await;
    let _ = handle
        .disconnect(russh::Disconnect::ByApplication, "", "en")
        .await;
    done?;
    tracing::info!(relay = %addr, "run key removed from the relay");
    Ok(())
}

/// A connection to the relay as the user, its host key pinned to the one recorded for the run.
pub async fn connect(relay: &RelayRef, ssh_dir: &Path) -> Result<Handle<CheckedHost>, RelayError> {
    let host_key = pinned_key(relay)?;
    Ok(open(
        &relay.addr(),
        HostCheck::Pinned(host_key),
        Login::User { ssh_dir },
    )
    .await?
    .0)
}

/// A connection to a jump host (`--via USER@BASTION`) as the user, its host key checked
/// against the user's known_hosts: for sites whose worker nodes a bastion can reach.
pub async fn connect_jump(
    addr: &RelayAddr,
    ssh_dir: &Path,
) -> Result<Handle<CheckedHost>, RelayError> {
    Ok(open(
        addr,
        HostCheck::KnownHosts(ssh_dir.join("known_hosts")),
        Login::User { ssh_dir },
    )
    .await?
    .0)
}

fn pinned_key(relay: &RelayRef) -> Result<PublicKey, RelayError> {
    PublicKey::from_openssh(&relay.host_key).map_err(|_| {
        RelayError::Invalid(format!(
            "the run's record holds no valid host key for relay {}",
            relay.addr()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relays_are_read_as_ssh_takes_them() {
        let relay: RelayAddr = "ada@login.example.org".parse().unwrap();
        assert_eq!(
            (relay.port, relay.to_string().as_str()),
            (22, "ada@login.example.org")
        );
        let relay: RelayAddr = "sloop-relay@127.0.0.1:2222".parse().unwrap();
        assert_eq!((relay.host.as_str(), relay.port), ("127.0.0.1", 2222));
        assert_eq!(relay.to_string(), "sloop-relay@127.0.0.1:2222");
        for bad in [
            "login.example.org",
            "@host",
            "-oProxyCommand=x@host",
            "ada@-oProxyCommand=x",
            "ada@host:0",
            "ada@host:ssh",
            "ada@ho st",
        ] {
            let error = bad.parse::<RelayAddr>().unwrap_err().to_string();
            assert!(error.contains("USER@HOST"), "{bad}: {error}");
        }
    }

    #[test]
    fn the_key_line_allows_one_reverse_forward_only() {
        let key = PrivateKey::random(&mut rand::rng(), russh::keys::Algorithm::Ed25519).unwrap();
        let line = key_line(key.public_key(), "sloop-run:m-1a2b3c4d");
        assert!(line.starts_with("restrict,port-forwarding,permitlisten=\"localhost:*\","));
        assert!(line.contains("permitopen=\"127.0.0.1:1\""));
        assert!(line.contains("command=\"/bin/false\" ssh-ed25519 "));
        assert!(line.ends_with(" sloop-run:m-1a2b3c4d"));
        let relay = RelayRef {
            user: "u".into(),
            host: "relay.example".into(),
            port: 2222,
            host_key: ssh::public_openssh(key.public_key()),
            key_comment: "c".into(),
            removed: false,
        };
        assert!(
            relay
                .known_hosts_line()
                .starts_with("[relay.example]:2222 ssh-ed25519 ")
        );
    }
}
