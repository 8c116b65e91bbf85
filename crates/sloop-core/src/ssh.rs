//! SSH to machines (russh), always against a pinned host key.
//!
//! Sloop made every machine's host key itself, so a key other than the pinned one is never
//! "new": it is refused, whatever the user would answer.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use russh::client::{self, Handle};
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{ChannelMsg, Disconnect};

/// SHA-256 fingerprint as OpenSSH prints it (`SHA256:…`).
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(russh::keys::HashAlg::Sha256).to_string()
}

/// One TCP connect or SSH handshake may take this long before it is tried again. Generous: key
/// exchange on a guest under software emulation is slow.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the first attempt waits for the server's first bytes. User-mode networking accepts
/// the connection on the host at once, whether or not anything listens in the guest yet; a
/// booting guest then sends nothing, and waiting the whole handshake timeout for it would add
/// seconds to a start. Each attempt that saw no banner doubles the wait (up to
/// [`ATTEMPT_TIMEOUT`]): an SSH server that listens but is slow to answer (a busy guest under
/// software emulation takes seconds to fork its per-connection process) is then waited for,
/// instead of being abandoned and asked again, which only adds to its load.
const BANNER_WAIT: Duration = Duration::from_millis(700);
/// Pause between attempts while the guest is still booting.
const RETRY_PAUSE: Duration = Duration::from_millis(150);
const NO_BANNER: &str = "no SSH banner yet";

/// Where an SSH server answers, and as whom to log in. Local machines are
/// [`SshEndpoint::local`]: 127.0.0.1 and the port forwarded to the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshEndpoint {
    pub host: String,
    pub port: u16,
    pub user: String,
}

impl SshEndpoint {
    /// A machine on this host, reached through its port on 127.0.0.1.
    pub fn local(port: u16, user: &str) -> Self {
        Self {
            host: "127.0.0.1".into(),
            port,
            user: user.to_string(),
        }
    }

    /// `host:port`, as errors name it.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// How patiently [`connect`] tries: the caller picks it for where the server is (a guest
/// booting on this host; later, one at a grid site across the internet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectPolicy {
    /// Give up after this long.
    pub within: Duration,
    /// The first attempt's wait for the server's banner; doubled after each silent attempt.
    pub first_banner_wait: Duration,
    /// The longest any one step (TCP connect, banner, handshake) may take.
    pub step_timeout: Duration,
}

impl ConnectPolicy {
    /// A guest on this host behind user-mode networking: the port accepts at once whether or
    /// not the guest listens yet, so silence is asked again soon.
    pub fn local_vm(within: Duration) -> Self {
        Self {
            within,
            first_banner_wait: BANNER_WAIT,
            step_timeout: ATTEMPT_TIMEOUT,
        }
    }
}

impl ConnectPolicy {
    /// A machine at a grid site, across the network: its SSH server already answered the VM
    /// job, so a silent server is waited for longer before asking again.
    pub fn remote(within: Duration) -> Self {
        Self {
            within,
            first_banner_wait: Duration::from_secs(5),
            step_timeout: Duration::from_secs(20),
        }
    }
}

/// SSH failed.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error(
        "the machine at {addr} presented host key {presented}, not its own {expected}: refusing to connect. Something else answers on that port, or the machine's disk was replaced"
    )]
    HostKeyMismatch {
        /// `host:port`.
        addr: String,
        expected: String,
        presented: String,
    },
    #[error("no SSH login at {addr} within {seconds} s (last problem: {last})")]
    Timeout {
        /// `host:port`.
        addr: String,
        seconds: u64,
        last: String,
    },
    #[error("the machine refused the SSH login as {user}")]
    AuthRejected { user: String },
    #[error("SSH failed")]
    Protocol(#[from] russh::Error),
    #[error("cannot pass the command's output on")]
    Output(#[from] std::io::Error),
}

/// The handler that pins the host key and remembers what the server showed.
struct PinnedHost {
    expected: PublicKey,
    presented: Arc<Mutex<Option<String>>>,
}

impl client::Handler for PinnedHost {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        offered: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let shown = offered_key(offered);
        let same = shown.key_data() == self.expected.key_data();
        if !same {
            *self.presented.lock().unwrap_or_else(|e| e.into_inner()) = Some(fingerprint(&shown));
        }
        Ok(same)
    }
}

/// The key a server offered; a host certificate counts only through the key it certifies.
fn offered_key(offered: &PublicKeyOrCertificate) -> PublicKey {
    match offered {
        PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
        PublicKeyOrCertificate::Certificate(certificate) => {
            PublicKey::new(certificate.public_key().clone(), "")
        }
    }
}

/// How a server's host key is checked when no key of Sloop's own is pinned for it.
#[derive(Debug)]
pub(crate) enum HostCheck {
    /// Against the user's known_hosts (the first contact for a run).
    KnownHosts(PathBuf),
    /// Against the key recorded for the run.
    Pinned(PublicKey),
}

/// The client handler of connections to servers of the user's (an SSH relay): checks the
/// server's host key as [`HostCheck`] says and keeps the verdict.
#[derive(Debug)]
pub struct CheckedHost {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) check: HostCheck,
    /// What the server presented, and whether it was accepted.
    pub(crate) verdict: Arc<Mutex<Option<HostVerdict>>>,
}

#[derive(Debug, Clone)]
pub(crate) enum HostVerdict {
    Accepted(PublicKey),
    Unknown(PublicKey),
    Changed(PublicKey),
}

impl client::Handler for CheckedHost {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        offered: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = offered_key(offered);
        let verdict = match &self.check {
            HostCheck::Pinned(expected) => {
                if expected.key_data() == key.key_data() {
                    HostVerdict::Accepted(key)
                } else {
                    HostVerdict::Changed(key)
                }
            }
            HostCheck::KnownHosts(path) => {
                match russh::keys::check_known_hosts_path(&self.host, self.port, &key, path) {
                    Ok(true) => HostVerdict::Accepted(key),
                    Ok(false) => HostVerdict::Unknown(key),
                    Err(russh::keys::Error::KeyChanged { .. }) => HostVerdict::Changed(key),
                    Err(_) => HostVerdict::Unknown(key),
                }
            }
        };
        let ok = matches!(verdict, HostVerdict::Accepted(_));
        *self.verdict.lock().unwrap_or_else(|e| e.into_inner()) = Some(verdict);
        Ok(ok)
    }
}

/// `ssh-ed25519 AAAA… comment`, as authorized_keys and known_hosts hold it.
pub fn public_openssh(key: &PublicKey) -> String {
    key.to_openssh().unwrap_or_default()
}

/// An OpenSSH public key line without its comment (`ssh-ed25519 AAAA…`), as a known_hosts or
/// authorized_keys line takes it after its own first field.
pub fn bare_key(line: &str) -> String {
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `text` as one single-quoted POSIX shell word.
pub fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// An authenticated SSH session to a machine.
pub struct Session {
    handle: Handle<PinnedHost>,
    /// The relay's connection this session runs through, kept open as long as it is.
    via: Option<Handle<CheckedHost>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ssh::Session")
    }
}

/// A terminal's size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct TerminalSize {
    pub cols: u32,
    pub rows: u32,
}

/// What a terminal's shell sends back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TerminalOutput {
    Data(Vec<u8>),
    /// The shell ended (`status` is its exit status) or the connection dropped.
    Closed {
        status: Option<u32>,
    },
}

enum TerminalInput {
    Data(Vec<u8>),
    Resize(TerminalSize),
    Close,
}

/// An open interactive terminal in a machine. Cheap to clone; dropping every clone closes it.
#[derive(Debug, Clone)]
pub struct Terminal {
    input: tokio::sync::mpsc::Sender<TerminalInput>,
}

impl Terminal {
    /// Sends keystrokes or pasted text. False once the terminal has closed.
    pub async fn write(&self, bytes: Vec<u8>) -> bool {
        self.input.send(TerminalInput::Data(bytes)).await.is_ok()
    }

    /// Tells the shell its window has a new size.
    pub async fn resize(&self, size: TerminalSize) -> bool {
        self.input.send(TerminalInput::Resize(size)).await.is_ok()
    }

    /// Ends the shell's session.
    pub async fn close(&self) {
        let _ = self.input.send(TerminalInput::Close).await;
    }
}

impl std::fmt::Debug for TerminalInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keystrokes may be passwords: never printed.
        match self {
            Self::Data(bytes) => write!(f, "Data({} bytes)", bytes.len()),
            Self::Resize(size) => write!(f, "Resize({size:?})"),
            Self::Close => f.write_str("Close"),
        }
    }
}

/// A command's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// The exit status; `None` when the command was killed by a signal.
    pub status: Option<u32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Everything a command prints, and its exit status.
pub(crate) async fn collect(channel: &mut russh::Channel<russh::client::Msg>) -> Output {
    let mut output = Output {
        status: None,
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    while let Some(message) = channel.wait().await {
        match message {
            ChannelMsg::Data { data } => output.stdout.extend_from_slice(&data),
            ChannelMsg::ExtendedData { data, ext: 1 } => output.stderr.extend_from_slice(&data),
            ChannelMsg::ExitStatus { exit_status } => output.status = Some(exit_status),
            _ => {}
        }
    }
    output
}

enum Attempt {
    Done(Session),
    /// Worth trying again while the guest boots.
    Retry(String),
    /// The connection was accepted but the server said nothing within the banner wait.
    NoBanner,
    Fatal(SshError),
}

/// Logs in to `addr` as `user` with `client_key`, accepting only `host_key`. Keeps trying until
/// `within` has passed, because the port may accept connections before the guest's SSH server
/// listens. A wrong host key ends the attempts at once.
#[tracing::instrument(skip(client_key, host_key))]
pub async fn connect(
    endpoint: &SshEndpoint,
    client_key: &PrivateKey,
    host_key: &PublicKey,
    policy: ConnectPolicy,
) -> Result<Session, SshError> {
    let started = Instant::now();
    let within = policy.within;
    let key = Arc::new(client_key.clone());
    let mut tries = 0u32;
    let mut banner_wait = policy.first_banner_wait;
    loop {
        tries += 1;
        let this_try = Instant::now();
        let left = within.saturating_sub(started.elapsed());
        let timings = Timings {
            banner: banner_wait.min(left),
            step: policy.step_timeout.min(left),
        };
        let last = match attempt(endpoint, &key, host_key, timings).await {
            Attempt::Done(session) => {
                tracing::debug!(
                    tries,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "SSH login"
                );
                return Ok(session);
            }
            Attempt::Fatal(e) => return Err(e),
            Attempt::NoBanner => {
                banner_wait = (banner_wait * 2).min(policy.step_timeout);
                NO_BANNER.to_string()
            }
            Attempt::Retry(why) => why,
        };
        if started.elapsed() + RETRY_PAUSE >= within {
            return Err(SshError::Timeout {
                addr: endpoint.address(),
                seconds: within.as_secs(),
                last,
            });
        }
        // An attempt that already waited (for a banner) is pause enough.
        tokio::time::sleep(RETRY_PAUSE.saturating_sub(this_try.elapsed())).await;
    }
}

/// How long one attempt waits, for the banner and for each other step; never past the time
/// the caller gave [`connect`].
#[derive(Debug, Clone, Copy)]
struct Timings {
    banner: Duration,
    step: Duration,
}

async fn attempt(
    endpoint: &SshEndpoint,
    key: &Arc<PrivateKey>,
    host_key: &PublicKey,
    timings: Timings,
) -> Attempt {
    let stream = match tokio::time::timeout(
        timings.step,
        tokio::net::TcpStream::connect((endpoint.host.as_str(), endpoint.port)),
    )
    .await
    {
        Err(_) => return Attempt::Retry("TCP connect timed out".into()),
        Ok(Err(e)) => return Attempt::Retry(format!("TCP connect: {e}")),
        Ok(Ok(stream)) => stream,
    };
    let _ = stream.set_nodelay(true);
    let mut first = [0u8; 1];
    match tokio::time::timeout(timings.banner, stream.peek(&mut first)).await {
        Err(_) => return Attempt::NoBanner,
        Ok(Ok(0)) => return Attempt::Retry("connection closed before the SSH banner".into()),
        Ok(Err(e)) => return Attempt::Retry(format!("waiting for the SSH banner: {e}")),
        Ok(Ok(_)) => {}
    }
    login(stream, endpoint, key, host_key, timings.step).await
}

/// The config of every client connection Sloop makes.
pub(crate) fn client_config() -> Arc<client::Config> {
    Arc::new(client::Config {
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(15)),
        ..Default::default()
    })
}

/// The SSH handshake and login over `stream`, each step within `step`.
async fn login<S>(
    stream: S,
    endpoint: &SshEndpoint,
    key: &Arc<PrivateKey>,
    host_key: &PublicKey,
    step: Duration,
) -> Attempt
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let presented = Arc::new(Mutex::new(None));
    let handler = PinnedHost {
        expected: host_key.clone(),
        presented: presented.clone(),
    };
    let handshake = client::connect_stream(client_config(), stream, handler);
    let mut handle = match tokio::time::timeout(step, handshake).await {
        Err(_) => return Attempt::Retry("SSH handshake timed out".into()),
        Ok(Err(e)) => {
            if let Some(presented) = presented.lock().unwrap_or_else(|e| e.into_inner()).take() {
                return Attempt::Fatal(SshError::HostKeyMismatch {
                    addr: endpoint.address(),
                    expected: fingerprint(host_key),
                    presented,
                });
            }
            return Attempt::Retry(format!("SSH handshake: {e}"));
        }
        Ok(Ok(handle)) => handle,
    };
    let hash = match handle.best_supported_rsa_hash().await {
        Ok(hash) => hash.flatten(),
        Err(e) => return Attempt::Retry(format!("SSH: {e}")),
    };
    let auth = handle
        .authenticate_publickey(
            &endpoint.user,
            PrivateKeyWithHashAlg::new(key.clone(), hash),
        )
        .await;
    match auth {
        Ok(result) if result.success() => Attempt::Done(Session { handle, via: None }),
        // While a guest boots, its SSH server may run before the user's key is in place.
        Ok(_) => Attempt::Retry(
            SshError::AuthRejected {
                user: endpoint.user.clone(),
            }
            .to_string(),
        ),
        Err(e) => Attempt::Retry(format!("SSH authentication: {e}")),
    }
}

/// Logs in to the machine behind port `endpoint.port` of `relay`'s loopback (a reverse forward
/// the machine's VM job holds there), through a direct-tcpip channel of the relay connection:
/// SSH inside SSH, the inner one pinned to `host_key` like any other. `within` bounds the whole.
#[tracing::instrument(skip(relay, client_key, host_key))]
pub async fn connect_via(
    relay: Handle<CheckedHost>,
    endpoint: &SshEndpoint,
    client_key: &PrivateKey,
    host_key: &PublicKey,
    within: Duration,
) -> Result<Session, SshError> {
    let channel = tokio::time::timeout(
        within,
        relay.channel_open_direct_tcpip(
            endpoint.host.clone(),
            u32::from(endpoint.port),
            "127.0.0.1",
            0,
        ),
    )
    .await
    .map_err(|_| SshError::Timeout {
        addr: endpoint.address(),
        seconds: within.as_secs(),
        last: "the relay did not open a channel".into(),
    })??;
    let key = Arc::new(client_key.clone());
    match login(channel.into_stream(), endpoint, &key, host_key, within).await {
        Attempt::Done(mut session) => {
            session.via = Some(relay);
            Ok(session)
        }
        Attempt::Fatal(e) => Err(e),
        Attempt::Retry(last) => Err(SshError::Timeout {
            addr: endpoint.address(),
            seconds: within.as_secs(),
            last,
        }),
        Attempt::NoBanner => Err(SshError::Timeout {
            addr: endpoint.address(),
            seconds: within.as_secs(),
            last: NO_BANNER.into(),
        }),
    }
}

impl Session {
    /// Runs `command` (through the login shell of the remote user) and collects its output.
    #[tracing::instrument(skip(self))]
    pub async fn exec(&self, command: &str) -> Result<Output, SshError> {
        let mut channel = self.handle.channel_open_session().await?;
        channel.exec(true, command).await?;
        Ok(collect(&mut channel).await)
    }

    /// Runs `command` with `input` as its standard input (then end of file) and collects its
    /// output. For files placed in the machine; `input` is never logged.
    #[tracing::instrument(skip(self, input), fields(input_bytes = input.len()))]
    pub async fn exec_with_input(&self, command: &str, input: &[u8]) -> Result<Output, SshError> {
        let mut channel = self.handle.channel_open_session().await?;
        channel.exec(true, command).await?;
        channel.data(input).await?;
        channel.eof().await?;
        Ok(collect(&mut channel).await)
    }

    /// Runs `command` and copies its output to `stdout` and `stderr` as it arrives, and the
    /// chunks of `stdin` to it as they come (its end of file when the sender is dropped), as
    /// `ssh HOST COMMAND` does; returns its exit status (`None` when killed by a signal).
    pub async fn exec_streaming(
        &self,
        command: &str,
        mut stdin: tokio::sync::mpsc::Receiver<Vec<u8>>,
        stdout: &mut (dyn tokio::io::AsyncWrite + Unpin + Send),
        stderr: &mut (dyn tokio::io::AsyncWrite + Unpin + Send),
    ) -> Result<Option<u32>, SshError> {
        use tokio::io::AsyncWriteExt as _;
        let channel = self.handle.channel_open_session().await?;
        channel.exec(true, command).await?;
        let (mut read, write) = channel.split();
        let input = tokio::spawn(async move {
            while let Some(chunk) = stdin.recv().await {
                if write.data_bytes(chunk).await.is_err() {
                    return;
                }
            }
            let _ = write.eof().await;
        });
        let mut status = None;
        while let Some(message) = read.wait().await {
            match message {
                ChannelMsg::Data { data } => {
                    stdout.write_all(&data).await?;
                    stdout.flush().await?;
                }
                ChannelMsg::ExtendedData { data, ext: 1 } => {
                    stderr.write_all(&data).await?;
                    stderr.flush().await?;
                }
                ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                _ => {}
            }
        }
        // The command ended: what it did not read of the input is not waited for.
        input.abort();
        Ok(status)
    }

    /// Opens an interactive login shell on a pseudo-terminal of `size`. What the shell prints
    /// goes to `on_output`, which gets [`TerminalOutput::Closed`] last. The session stays
    /// alive as long as the returned [`Terminal`] (or a clone) does.
    pub async fn open_terminal(
        self,
        size: TerminalSize,
        on_output: impl Fn(TerminalOutput) + Send + Sync + 'static,
    ) -> Result<Terminal, SshError> {
        let channel = self.handle.channel_open_session().await?;
        channel
            .request_pty(true, "xterm-256color", size.cols, size.rows, 0, 0, &[])
            .await?;
        channel.request_shell(true).await?;
        let (mut read, write) = channel.split();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<TerminalInput>(256);
        let handle = self.handle;
        let via = self.via;
        tokio::spawn(async move {
            let mut status = None;
            loop {
                tokio::select! {
                    input = rx.recv() => match input {
                        Some(TerminalInput::Data(bytes)) => {
                            if write.data_bytes(bytes).await.is_err() {
                                break;
                            }
                        }
                        Some(TerminalInput::Resize(size)) => {
                            let _ = write.window_change(size.cols, size.rows, 0, 0).await;
                        }
                        // Closed by the front end, or every Terminal handle dropped.
                        Some(TerminalInput::Close) | None => {
                            let _ = write.eof().await;
                            let _ = write.close().await;
                            break;
                        }
                    },
                    message = read.wait() => match message {
                        Some(ChannelMsg::Data { data }) | Some(ChannelMsg::ExtendedData { data, .. }) => {
                            on_output(TerminalOutput::Data(data.to_vec()));
                        }
                        Some(ChannelMsg::ExitStatus { exit_status }) => status = Some(exit_status),
                        Some(_) => {}
                        None => break,
                    },
                }
            }
            let _ = handle.disconnect(Disconnect::ByApplication, "", "en").await;
            if let Some(via) = via {
                let _ = via.disconnect(Disconnect::ByApplication, "", "en").await;
            }
            on_output(TerminalOutput::Closed { status });
        });
        Ok(Terminal { input: tx })
    }

    /// Ends the session politely.
    pub async fn close(self) -> Result<(), SshError> {
        self.handle
            .disconnect(Disconnect::ByApplication, "", "en")
            .await?;
        if let Some(via) = self.via {
            via.disconnect(Disconnect::ByApplication, "", "en").await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// A server that listens but needs 1.5 s before its first bytes (a busy guest under
    /// emulation forking its per-connection process) is waited for, not abandoned and asked
    /// again and again.
    #[tokio::test]
    async fn a_slow_banner_is_waited_for() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicU32::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    use tokio::io::AsyncWriteExt;
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    let _ = stream.write_all(b"SSH-2.0-slow\r\n").await;
                    // Then no key exchange: the handshake waits until the time is up.
                    tokio::time::sleep(Duration::from_secs(30)).await;
                });
            }
        });
        let key = PrivateKey::random(&mut rand::rng(), russh::keys::Algorithm::Ed25519).unwrap();
        let host = key.public_key().clone();
        let endpoint = SshEndpoint::local(addr.port(), "sloop");
        let policy = ConnectPolicy::local_vm(Duration::from_secs(5));
        let err = match connect(&endpoint, &key, &host, policy).await {
            Err(e) => e,
            Ok(_) => panic!("a server without key exchange let us log in"),
        };
        match err {
            SshError::Timeout { last, .. } => assert_ne!(last, NO_BANNER, "the banner was seen"),
            other => panic!("expected a timeout after the banner, got {other:?}"),
        }
        let tries = accepted.load(Ordering::SeqCst);
        assert!(tries <= 4, "{tries} connections in 5 s to a slow server");
    }
}
