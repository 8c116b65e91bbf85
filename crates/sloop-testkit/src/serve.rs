//! A real HTTPS file server for the grid tests, as a grid site's data server would be: OpenSSL
//! TLS with the certificate the test gives, files by name, every request logged. It speaks what
//! ARC's data staging sends (it fetches a job's https input with `PROPFIND`, `HEAD` and a `GET`
//! whose target may be in absolute form), and, when asked to, accepts only clients that present
//! an X.509 certificate or an RFC 3820 proxy chaining to a given CA (grid client-certificate
//! authentication).
//!
//! Blocking, one thread per connection, one request per connection (`Connection: close`).
//! Dropping the server stops it.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod, SslVerifyMode};
use openssl::x509::verify::X509VerifyFlags;

/// One request the server answered.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The path, also when the request named an absolute URL.
    pub path: String,
    pub status: u16,
    /// The verified client's certificate subjects, leaf first (empty without client auth).
    pub client: Vec<String>,
}

#[derive(Debug)]
pub struct FileServer {
    pub port: u16,
    files: Arc<Mutex<HashMap<String, PathBuf>>>,
    log: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
}

impl FileServer {
    /// Serves `files` (URL path without the leading `/` → file) on 127.0.0.1 with `cert` and
    /// `key` (PEM). With `client_ca`, a client must present a certificate or proxy chain that
    /// verifies against that CA certificate; others fail the handshake.
    pub fn start(
        cert: &Path,
        key: &Path,
        client_ca: Option<&Path>,
        files: HashMap<String, PathBuf>,
    ) -> Self {
        let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
        builder.set_certificate_chain_file(cert).unwrap();
        builder.set_private_key_file(key, SslFiletype::PEM).unwrap();
        if let Some(ca) = client_ca {
            builder.set_ca_file(ca).unwrap();
            builder.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
            builder
                .verify_param_mut()
                .set_flags(X509VerifyFlags::ALLOW_PROXY_CERTS)
                .unwrap();
        }
        let acceptor = Arc::new(builder.build());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let files = Arc::new(Mutex::new(files));
        let (files2, log2, stop2) = (files.clone(), log.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (acceptor, files, log) = (acceptor.clone(), files2.clone(), log2.clone());
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(30)));
                    if let Ok(tls) = acceptor.accept(stream) {
                        serve(tls, &files, &log);
                    }
                });
            }
        });
        Self {
            port,
            files,
            log,
            stop,
        }
    }

    /// From now on, `name` serves `file` (a file that changed at its URL).
    pub fn set(&self, name: &str, file: &Path) {
        self.files
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_string(), file.to_path_buf());
    }

    /// The requests answered so far.
    pub fn requests(&self) -> Vec<Request> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many `GET`s of `path` were answered with the file.
    pub fn gets(&self, path: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path == path && r.status == 200)
            .count()
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(
    mut tls: openssl::ssl::SslStream<TcpStream>,
    files: &Mutex<HashMap<String, PathBuf>>,
    log: &Mutex<Vec<Request>>,
) {
    let client = tls
        .ssl()
        .peer_cert_chain()
        .map(|chain| {
            chain
                .iter()
                .map(|c| format!("{:?}", c.subject_name()))
                .collect()
        })
        .unwrap_or_default();
    let mut head = Vec::new();
    {
        let mut reader = BufReader::new(&mut tls);
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" || line == "\n" {
                break;
            }
            head.push(line);
            if head.len() > 100 {
                return;
            }
        }
    }
    let Some(first) = head.first() else { return };
    let mut words = first.split_whitespace();
    let (method, target) = (
        words.next().unwrap_or("").to_string(),
        words.next().unwrap_or("/").to_string(),
    );
    // An absolute-form target (`https://host:port/path`) names the same resource as `/path`.
    let path = match target.split_once("://") {
        Some((_, rest)) => rest
            .find('/')
            .map_or("/".to_string(), |i| rest[i..].to_string()),
        None => target,
    };
    let path = path.split('?').next().unwrap_or("/").to_string();
    let file = files
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(path.trim_start_matches('/'))
        .cloned();
    let status = match (method.as_str(), file.is_some()) {
        ("GET" | "HEAD", true) => 200,
        ("GET" | "HEAD", false) => 404,
        _ => 405,
    };
    log.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Request {
            method: method.clone(),
            path,
            status,
            client,
        });
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Method Not Allowed",
    };
    let length = match (status, &file) {
        (200, Some(file)) => std::fs::metadata(file).map(|m| m.len()).unwrap_or(0),
        _ => 0,
    };
    let header = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Length: {length}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
    );
    if tls.write_all(header.as_bytes()).is_err() {
        return;
    }
    if let (200, "GET", Some(file)) = (status, method.as_str(), file)
        && let Ok(mut f) = std::fs::File::open(file)
    {
        let mut buffer = vec![0u8; 256 * 1024];
        loop {
            match f.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tls.write_all(&buffer[..n]).is_err() {
                        return;
                    }
                }
            }
        }
    }
    let _ = tls.flush();
    let _ = tls.shutdown();
}
