//! A real HTTPS server for tests: TLS by OpenSSL (through `tokio-openssl`) with the certificate and
//! key the test gives, over a hand-written, minimal HTTP/1.1 so that a route can misbehave on
//! purpose and exactly: ignore ranges, drop the connection mid-body, redirect, fail with a status,
//! or stream a huge body.
//!
//! What it speaks: only `GET` (anything else answers 405), request headers up to 16 KiB (else
//! 431), one request per connection: every response says `Connection: close` and the server
//! closes the connection after it (no keep-alive). Each connection has its own task, so several
//! clients can be served at once; a connection whose TLS handshake fails is dropped and the server
//! goes on. Routing is by path without the query string; unknown paths answer 404. Dropping the
//! [`HttpsServer`] stops it, connections in progress included.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use openssl::pkey::PKey;
use openssl::ssl::{Ssl, SslAcceptor, SslMethod};
use openssl::x509::X509;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_openssl::SslStream;

/// The largest request head (request line and headers) the server reads.
const MAX_HEAD: usize = 16 * 1024;
/// Bodies are written in pieces of this size, sliced from the shared body (never copied whole).
const BODY_CHUNK: usize = 256 * 1024;
/// [`Behaviour::Huge`] writes its filler in pieces of this size.
const FILLER_CHUNK: usize = 64 * 1024;
static FILLER: [u8; FILLER_CHUNK] = [b' '; FILLER_CHUNK];

/// A real TLS server on 127.0.0.1 whose routes answer as the test says. Stops on drop.
pub struct HttpsServer {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

/// What a GET of a route answers.
#[derive(Clone)]
pub enum Behaviour {
    /// 200 with the body; honours a single `Range: bytes=N-` or `bytes=N-M` with 206 +
    /// Content-Range (M past the end is clamped); answers 416 when N >= len. Any other Range
    /// value (several ranges, suffix `bytes=-N`, M < N, garbage) is ignored: 200 with the body.
    Serve(Arc<Vec<u8>>),
    /// 200 with the whole body whatever the Range header says.
    IgnoreRange(Arc<Vec<u8>>),
    /// Like `Serve`, but the first `times` GET requests of the route (counted from when the route
    /// was set) send headers with the full Content-Length (of the ranged part), then only `after`
    /// bytes of the body, then close the connection abruptly (TCP FIN, no TLS close_notify). Later
    /// requests behave like `Serve`.
    ///
    /// Beware: clients on rust-openssl (tokio-openssl, native-tls on Linux, hence reqwest's
    /// `native-tls`) read a missing close_notify as a clean end of stream, not as an error
    /// (rust-openssl/rust-openssl#1803); only the body falling short of Content-Length shows it.
    DropAfter {
        /// The whole resource.
        body: Arc<Vec<u8>>,
        /// How many bytes of the (ranged) body a failing request gets.
        after: usize,
        /// How many requests fail.
        times: usize,
    },
    /// 302 to `location` (an absolute path like "/b" or a full URL).
    Redirect(String),
    /// Answers with this status code and an empty body (e.g. 404, 500).
    Status(u16),
    /// 200 with a Content-Length of `len` and `len` bytes of filler (b' '), streamed in 64 KiB
    /// chunks at full speed; Range is ignored.
    Huge(u64),
}

impl fmt::Debug for Behaviour {
    /// Bodies can be 1 GiB: shows their lengths, not their bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Behaviour::Serve(body) => write!(f, "Serve({} bytes)", body.len()),
            Behaviour::IgnoreRange(body) => write!(f, "IgnoreRange({} bytes)", body.len()),
            Behaviour::DropAfter { body, after, times } => write!(
                f,
                "DropAfter {{ body: {} bytes, after: {after}, times: {times} }}",
                body.len()
            ),
            Behaviour::Redirect(location) => write!(f, "Redirect({location:?})"),
            Behaviour::Status(code) => write!(f, "Status({code})"),
            Behaviour::Huge(len) => write!(f, "Huge({len})"),
        }
    }
}

impl fmt::Debug for HttpsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpsServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// What the server shares with its connections.
#[derive(Default)]
struct State {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    routes: HashMap<String, Route>,
    /// Per path, routed or not: the Range header of each GET, in order.
    seen: HashMap<String, Vec<Option<String>>>,
}

struct Route {
    behaviour: Behaviour,
    /// GET requests of this route since it was set (for `DropAfter`).
    requests: usize,
}

impl State {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking test thread must not make the server panic too.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl HttpsServer {
    /// Starts serving on 127.0.0.1 with a random free port.
    ///
    /// `certificate_pem` holds the server's certificate, optionally followed by the rest of its
    /// chain; `key_pem` its private key. Panics when they are unusable (it is a test helper).
    pub async fn start(certificate_pem: &[u8], key_pem: &[u8]) -> HttpsServer {
        let acceptor = Arc::new(acceptor(certificate_pem, key_pem));
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local address");
        let state = Arc::new(State::default());
        let task = tokio::spawn(serve(listener, acceptor, Arc::clone(&state)));
        HttpsServer { addr, state, task }
    }

    /// "https://127.0.0.1:PORT"  (no trailing slash)
    pub fn base_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Sets (or replaces) what GET `path` answers. Can be called while serving.
    ///
    /// Replacing a route restarts the request count that `DropAfter` goes by (not `hits`).
    pub fn route(&self, path: &str, behaviour: Behaviour) {
        self.state.lock().routes.insert(
            path.to_owned(),
            Route {
                behaviour,
                requests: 0,
            },
        );
    }

    /// How many GET requests reached `path` so far.
    pub fn hits(&self, path: &str) -> usize {
        self.state.lock().seen.get(path).map_or(0, Vec::len)
    }

    /// The Range header values seen for `path`, in order (None when a request had none).
    pub fn ranges(&self, path: &str) -> Vec<Option<String>> {
        self.state
            .lock()
            .seen
            .get(path)
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for HttpsServer {
    /// Aborts the accept loop; its connection tasks go with it.
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn acceptor(certificate_pem: &[u8], key_pem: &[u8]) -> SslAcceptor {
    let mut chain = X509::stack_from_pem(certificate_pem)
        .expect("certificate PEM")
        .into_iter();
    let leaf = chain.next().expect("a certificate in the PEM");
    let key = PKey::private_key_from_pem(key_pem).expect("private key PEM");
    let mut builder =
        SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).expect("OpenSSL acceptor");
    builder.set_certificate(&leaf).expect("set certificate");
    for extra in chain {
        builder
            .add_extra_chain_cert(extra)
            .expect("add chain certificate");
    }
    builder.set_private_key(&key).expect("set private key");
    builder
        .check_private_key()
        .expect("the key matches the certificate");
    builder.build()
}

/// Accepts connections until aborted. Connection tasks live in a `JoinSet` owned here, so that
/// aborting this task aborts them too.
async fn serve(listener: TcpListener, acceptor: Arc<SslAcceptor>, state: Arc<State>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, _peer)) = accepted else { continue };
                let acceptor = Arc::clone(&acceptor);
                let state = Arc::clone(&state);
                connections.spawn(async move {
                    // The client going away mid-way is no business of the server's.
                    let _ = connection(tcp, &acceptor, &state).await;
                });
            }
            Some(_) = connections.join_next() => {}
        }
    }
}

/// One connection: TLS handshake, one request, one response, close.
async fn connection(tcp: TcpStream, acceptor: &SslAcceptor, state: &State) -> anyhow::Result<()> {
    let _ = tcp.set_nodelay(true);
    let ssl = Ssl::new(acceptor.context())?;
    let mut tls = SslStream::new(ssl, tcp)?;
    // A failed handshake ends this connection only.
    Pin::new(&mut tls).accept().await?;

    let Some(head) = read_head(&mut tls).await? else {
        respond_empty(&mut tls, 431, &[]).await?;
        return Ok(());
    };
    let Some(request) = Request::parse(&head) else {
        respond_empty(&mut tls, 400, &[]).await?;
        return Ok(());
    };
    if request.method != "GET" {
        respond_empty(&mut tls, 405, &[("Allow", "GET")]).await?;
        return Ok(());
    }

    let answer = {
        let mut inner = state.lock();
        inner
            .seen
            .entry(request.path.clone())
            .or_default()
            .push(request.range.clone());
        match inner.routes.get_mut(&request.path) {
            None => Answer::Status(404),
            Some(route) => {
                route.requests += 1;
                Answer::of(&route.behaviour, route.requests)
            }
        }
    };

    match answer {
        Answer::Status(code) => respond_empty(&mut tls, code, &[]).await,
        Answer::Redirect(location) => {
            respond_empty(&mut tls, 302, &[("Location", &location)]).await
        }
        Answer::Huge(len) => {
            write_head(&mut tls, 200, len, &[]).await?;
            let mut left = len;
            while left > 0 {
                let n = usize::try_from(left).map_or(FILLER_CHUNK, |l| l.min(FILLER_CHUNK));
                tls.write_all(&FILLER[..n]).await?;
                left -= n as u64;
            }
            finish(&mut tls).await
        }
        Answer::Body {
            body,
            honour_range,
            drop_after,
        } => {
            let len = body.len();
            let range = if honour_range {
                request.range.as_deref().and_then(parse_range)
            } else {
                None
            };
            let (status, start, end, content_range) = match range {
                Some((first, _)) if first >= len as u64 => {
                    let unsatisfied = format!("bytes */{len}");
                    return respond_empty(&mut tls, 416, &[("Content-Range", &unsatisfied)]).await;
                }
                Some((first, last)) => {
                    // first < len, so both fit in usize.
                    let start = first as usize;
                    let end = last.map_or(len, |l| (l.min(len as u64 - 1) as usize) + 1);
                    (
                        206,
                        start,
                        end,
                        Some(format!("bytes {start}-{}/{len}", end - 1)),
                    )
                }
                None => (200, 0, len, None),
            };
            let mut extra: Vec<(&str, &str)> = Vec::new();
            if honour_range {
                extra.push(("Accept-Ranges", "bytes"));
            }
            if let Some(content_range) = &content_range {
                extra.push(("Content-Range", content_range));
            }
            write_head(&mut tls, status, (end - start) as u64, &extra).await?;
            let stop = drop_after.map_or(end, |after| end.min(start.saturating_add(after)));
            for chunk in body[start..stop].chunks(BODY_CHUNK) {
                tls.write_all(chunk).await?;
            }
            if drop_after.is_some() {
                // Abrupt: no close_notify, the TCP connection just goes.
                tls.flush().await?;
                drop(tls);
                return Ok(());
            }
            finish(&mut tls).await
        }
    }
}

/// What to send, decided under the lock, sent without it.
enum Answer {
    Status(u16),
    Redirect(String),
    Huge(u64),
    Body {
        body: Arc<Vec<u8>>,
        honour_range: bool,
        /// Send only this many body bytes, then close abruptly.
        drop_after: Option<usize>,
    },
}

impl Answer {
    /// `nth` is 1 for the first request of the route.
    fn of(behaviour: &Behaviour, nth: usize) -> Answer {
        match behaviour {
            Behaviour::Serve(body) => Answer::Body {
                body: Arc::clone(body),
                honour_range: true,
                drop_after: None,
            },
            Behaviour::IgnoreRange(body) => Answer::Body {
                body: Arc::clone(body),
                honour_range: false,
                drop_after: None,
            },
            Behaviour::DropAfter { body, after, times } => Answer::Body {
                body: Arc::clone(body),
                honour_range: true,
                drop_after: (nth <= *times).then_some(*after),
            },
            Behaviour::Redirect(location) => Answer::Redirect(location.clone()),
            Behaviour::Status(code) => Answer::Status(*code),
            Behaviour::Huge(len) => Answer::Huge(*len),
        }
    }
}

/// Reads up to the blank line ending the request head. `None` when the head exceeds 16 KiB (it is
/// still read to its end, up to 1 MiB, so that closing does not reset the connection before the
/// client reads the 431); an error when the client closes before.
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<Option<Vec<u8>>> {
    const MAX_DRAIN: usize = 1024 * 1024;
    let mut head = Vec::with_capacity(1024);
    let mut total = 0;
    let mut too_big = false;
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        total += n;
        // Look again from a little before the new bytes: the terminator may straddle reads.
        let from = head.len().saturating_sub(3);
        head.extend_from_slice(&buf[..n]);
        if let Some(at) = head[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            let end = from + at;
            if too_big || end > MAX_HEAD {
                return Ok(None);
            }
            head.truncate(end);
            return Ok(Some(head));
        }
        if head.len() > MAX_HEAD {
            if total > MAX_DRAIN {
                return Ok(None);
            }
            // Keep only what a straddling terminator needs.
            too_big = true;
            head.drain(..head.len() - 3);
        }
    }
}

struct Request {
    method: String,
    /// The target without its query string.
    path: String,
    /// The first Range header, if any.
    range: Option<String>,
}

impl Request {
    fn parse(head: &[u8]) -> Option<Request> {
        let head = std::str::from_utf8(head).ok()?;
        let mut lines = head.split("\r\n");
        let mut parts = lines.next()?.split(' ');
        let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || !version.starts_with("HTTP/1.") || !target.starts_with('/') {
            return None;
        }
        let path = target.split_once('?').map_or(target, |(path, _)| path);
        let mut range = None;
        for line in lines {
            let (name, value) = line.split_once(':')?;
            if range.is_none() && name.trim().eq_ignore_ascii_case("range") {
                range = Some(value.trim().to_owned());
            }
        }
        Some(Request {
            method: method.to_owned(),
            path: path.to_owned(),
            range,
        })
    }
}

/// `bytes=N-` or `bytes=N-M` → (N, M). Anything else (several ranges, suffix ranges, M < N) is
/// `None`: the header is then ignored, as RFC 9110 allows.
fn parse_range(value: &str) -> Option<(u64, Option<u64>)> {
    let spec = value.trim().strip_prefix("bytes=")?;
    let (first, last) = spec.split_once('-')?;
    let first: u64 = first.trim().parse().ok()?;
    let last = last.trim();
    if last.is_empty() {
        return Some((first, None));
    }
    let last: u64 = last.parse().ok()?;
    (last >= first).then_some((first, Some(last)))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Whatever",
    }
}

async fn write_head<S: AsyncWrite + Unpin>(
    stream: &mut S,
    status: u16,
    content_length: u64,
    extra: &[(&str, &str)],
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Length: {content_length}\r\n\
         Content-Type: application/octet-stream\r\nConnection: close\r\n",
        reason(status)
    );
    for (name, value) in extra {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await
}

async fn respond_empty<S: AsyncWrite + Unpin>(
    stream: &mut S,
    status: u16,
    extra: &[(&str, &str)],
) -> anyhow::Result<()> {
    write_head(stream, status, 0, extra).await?;
    finish(stream).await
}

/// A clean end: TLS close_notify, then the TCP write side shut.
async fn finish<S: AsyncWrite + Unpin>(stream: &mut S) -> anyhow::Result<()> {
    stream.flush().await?;
    stream.shutdown().await?;
    Ok(())
}

/// A fresh self-signed certificate for 127.0.0.1 and localhost (made by `sloop_core::pki`, one day),
/// as PEM: `(certificate, key)`. Give both to [`HttpsServer::start`] and the certificate to the
/// client as its only trusted root.
pub fn self_signed_certificate() -> (Vec<u8>, Vec<u8>) {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let identity = sloop_core::pki::issue(
        &sloop_core::pki::CertificateSpec {
            subject: "/CN=localhost",
            not_before: now - 60,
            not_after: now + 86_400,
            ca: false,
            server_names: &["IP:127.0.0.1", "DNS:localhost"],
        },
        None,
    )
    .unwrap();
    (
        identity.certificate.to_pem().unwrap(),
        identity.key.private_key_to_pem_pkcs8().unwrap(),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use openssl::ssl::SslConnector;
    use openssl::x509::store::X509StoreBuilder;

    use super::*;

    /// What a raw client got back.
    #[derive(Debug)]
    struct Response {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Response {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }

        fn content_length(&self) -> usize {
            self.header("content-length").unwrap().parse().unwrap()
        }
    }

    /// A TLS connection that trusts only `trusted_pem` and checks the server is 127.0.0.1.
    async fn connect(
        server: &HttpsServer,
        trusted_pem: &[u8],
    ) -> anyhow::Result<SslStream<TcpStream>> {
        let authority = server.base_url();
        let authority = authority.strip_prefix("https://").unwrap();
        let mut store = X509StoreBuilder::new()?;
        store.add_cert(X509::from_pem(trusted_pem)?)?;
        let mut builder = SslConnector::builder(SslMethod::tls_client())?;
        builder.set_cert_store(store.build());
        let ssl = builder.build().configure()?.into_ssl("127.0.0.1")?;
        let tcp = TcpStream::connect(authority).await?;
        let mut tls = SslStream::new(ssl, tcp)?;
        Pin::new(&mut tls).connect().await?;
        Ok(tls)
    }

    /// Sends `head` (the request line and headers, without the final blank line) and reads the
    /// response to its end, clean or not.
    async fn exchange(server: &HttpsServer, trusted_pem: &[u8], head: &str) -> Response {
        let mut tls = connect(server, trusted_pem).await.unwrap();
        tls.write_all(format!("{head}\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut raw = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        // A cut without close_notify reads as Ok(0) here, not as an error (see `DropAfter`).
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a response head");
        let head = std::str::from_utf8(&raw[..split]).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers = lines
            .map(|line| {
                let (n, v) = line.split_once(':').unwrap();
                (n.trim().to_owned(), v.trim().to_owned())
            })
            .collect();
        Response {
            status,
            headers,
            body: raw[split + 4..].to_vec(),
        }
    }

    async fn get(
        server: &HttpsServer,
        trusted_pem: &[u8],
        path: &str,
        range: Option<&str>,
    ) -> Response {
        let range = range.map_or(String::new(), |r| format!("\r\nRange: {r}"));
        exchange(
            server,
            trusted_pem,
            &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1{range}"),
        )
        .await
    }

    fn numbered(len: usize) -> Arc<Vec<u8>> {
        Arc::new((0..len).map(|i| (i % 251) as u8).collect())
    }

    #[tokio::test]
    async fn https_server_serves_ranges_and_counts() {
        let (cert, key) = self_signed_certificate();
        let server = HttpsServer::start(&cert, &key).await;
        assert!(server.base_url().starts_with("https://127.0.0.1:"));
        let body = numbered(600_000);
        server.route("/a", Behaviour::Serve(Arc::clone(&body)));

        let whole = get(&server, &cert, "/a", None).await;
        assert_eq!(whole.status, 200);
        assert_eq!(whole.content_length(), body.len());
        assert_eq!(whole.header("accept-ranges"), Some("bytes"));
        assert_eq!(
            whole.header("content-type"),
            Some("application/octet-stream")
        );
        assert_eq!(whole.header("connection"), Some("close"));
        assert_eq!(whole.body, *body);

        let tail = get(&server, &cert, "/a?x=1", Some("bytes=5-")).await;
        assert_eq!(tail.status, 206);
        assert_eq!(tail.header("content-range"), Some("bytes 5-599999/600000"));
        assert_eq!(tail.body, body[5..]);

        let middle = get(&server, &cert, "/a", Some("bytes=10-19")).await;
        assert_eq!(middle.status, 206);
        assert_eq!(middle.header("content-range"), Some("bytes 10-19/600000"));
        assert_eq!(middle.body, body[10..20]);

        let past = get(&server, &cert, "/a", Some("bytes=600000-")).await;
        assert_eq!(past.status, 416);
        assert_eq!(past.header("content-range"), Some("bytes */600000"));
        assert!(past.body.is_empty());

        server.route("/ignore", Behaviour::IgnoreRange(Arc::clone(&body)));
        let ignored = get(&server, &cert, "/ignore", Some("bytes=5-")).await;
        assert_eq!(ignored.status, 200);
        assert_eq!(ignored.header("content-range"), None);
        assert_eq!(ignored.body, *body);

        assert_eq!(server.hits("/a"), 4);
        assert_eq!(
            server.ranges("/a"),
            vec![
                None,
                Some("bytes=5-".to_owned()),
                Some("bytes=10-19".to_owned()),
                Some("bytes=600000-".to_owned()),
            ]
        );
        assert_eq!(server.hits("/ignore"), 1);
        assert_eq!(server.hits("/never"), 0);
        assert!(server.ranges("/never").is_empty());
    }

    #[tokio::test]
    async fn https_server_drops_after_then_serves() {
        let (cert, key) = self_signed_certificate();
        let server = HttpsServer::start(&cert, &key).await;
        let body = numbered(1_000_000);
        server.route(
            "/flaky",
            Behaviour::DropAfter {
                body: Arc::clone(&body),
                after: 300_000,
                times: 1,
            },
        );

        let first = get(&server, &cert, "/flaky", None).await;
        assert_eq!(first.status, 200);
        assert_eq!(first.content_length(), body.len());
        assert_eq!(first.body, body[..300_000]);
        assert!(
            first.body.len() < first.content_length(),
            "the first answer is cut short"
        );

        let second = get(&server, &cert, "/flaky", Some("bytes=300000-")).await;
        assert_eq!(second.status, 206);
        assert_eq!(second.body, body[300_000..]);

        // Replacing the route starts the count again; the drop also applies to a ranged part.
        server.route(
            "/flaky",
            Behaviour::DropAfter {
                body: Arc::clone(&body),
                after: 10,
                times: 1,
            },
        );
        let ranged = get(&server, &cert, "/flaky", Some("bytes=100-")).await;
        assert_eq!(ranged.status, 206);
        assert_eq!(ranged.content_length(), body.len() - 100);
        assert_eq!(ranged.body, body[100..110]);
        assert!(ranged.body.len() < ranged.content_length());
        assert_eq!(server.hits("/flaky"), 3);
    }

    #[tokio::test]
    async fn https_server_redirects_fails_and_streams_huge() {
        let (cert, key) = self_signed_certificate();
        let server = HttpsServer::start(&cert, &key).await;
        server.route("/moved", Behaviour::Redirect("/b".to_owned()));
        server.route("/broken", Behaviour::Status(500));
        server.route("/huge", Behaviour::Huge(3 * 1024 * 1024 + 7));

        let moved = get(&server, &cert, "/moved", None).await;
        assert_eq!(moved.status, 302);
        assert_eq!(moved.header("location"), Some("/b"));
        assert!(moved.body.is_empty());

        let broken = get(&server, &cert, "/broken", None).await;
        assert_eq!(broken.status, 500);
        assert_eq!(broken.content_length(), 0);

        assert_eq!(get(&server, &cert, "/nothing", None).await.status, 404);
        assert_eq!(server.hits("/nothing"), 1);

        let post = exchange(&server, &cert, "POST /moved HTTP/1.1\r\nHost: 127.0.0.1").await;
        assert_eq!(post.status, 405);
        assert_eq!(server.hits("/moved"), 1, "only GETs count");

        let huge = get(&server, &cert, "/huge", Some("bytes=5-")).await;
        assert_eq!(huge.status, 200);
        assert_eq!(huge.content_length(), 3 * 1024 * 1024 + 7);
        assert_eq!(huge.body.len(), 3 * 1024 * 1024 + 7);
        assert!(huge.body.iter().all(|&b| b == b' '));

        let oversized = format!("GET /moved HTTP/1.1\r\nX-Filler: {}", "a".repeat(20_000));
        assert_eq!(exchange(&server, &cert, &oversized).await.status, 431);
    }

    #[tokio::test]
    async fn https_server_survives_bad_clients_and_stops_on_drop() {
        let (cert, key) = self_signed_certificate();
        let server = HttpsServer::start(&cert, &key).await;
        server.route("/a", Behaviour::Serve(Arc::new(b"hello".to_vec())));
        let authority = server
            .base_url()
            .strip_prefix("https://")
            .unwrap()
            .to_owned();

        // Plain HTTP on the TLS port: the handshake fails, the server drops that connection.
        let mut plain = TcpStream::connect(&authority).await.unwrap();
        plain.write_all(b"GET /a HTTP/1.1\r\n\r\n").await.unwrap();
        let mut ignored = Vec::new();
        let _ = plain.read_to_end(&mut ignored).await;

        // A client that trusts another certificate refuses this one.
        let (other, _) = self_signed_certificate();
        assert!(connect(&server, &other).await.is_err());

        // A connection that sits idle after its handshake does not hold up the others.
        let idle = connect(&server, &cert).await.unwrap();
        let served = get(&server, &cert, "/a", None).await;
        assert_eq!(served.status, 200);
        assert_eq!(served.body, b"hello");
        drop(idle);
        assert_eq!(server.hits("/a"), 1);

        let debug = format!("{server:?} {:?}", Behaviour::Serve(Arc::new(vec![0; 3])));
        assert!(debug.contains("Serve(3 bytes)"), "{debug}");

        drop(server);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while TcpStream::connect(&authority).await.is_ok() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "still listening after drop"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
