//! A real OpenSSH server on 127.0.0.1 for the relay tests: its own config, host key and port,
//! letting in only the test account `sloop-relay` (made on first use; needs root) by public key.
//! The account's `~/.ssh/authorized_keys` is emptied when the first relay of a test process
//! starts; after that, relays running at once (tests in parallel) only add lines to it, and each
//! test looks for its own.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The test account on this computer.
pub const ACCOUNT: &str = "sloop-relay";
const HOME: &str = "/var/lib/sloop-relay";

/// A running sshd; stopped when dropped.
#[derive(Debug)]
pub struct TestRelay {
    pub port: u16,
    /// The server's host key, as an OpenSSH public key line.
    pub host_key: String,
    child: Child,
    dir: tempfile::TempDir,
}

/// The account is set up (and its keys emptied) once per test process.
static ACCOUNT_SETUP: std::sync::Once = std::sync::Once::new();

fn run(command: &mut Command) -> String {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Makes the test account once: a system user with a home and a shell (Sloop runs commands
/// there to add and remove keys), no password and not locked (sshd without PAM refuses locked
/// accounts).
fn ensure_account() {
    let exists = Command::new("id")
        .arg(ACCOUNT)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    if !exists {
        run(Command::new("useradd").args([
            "--system",
            "--create-home",
            "--home-dir",
            HOME,
            "--shell",
            "/bin/sh",
            ACCOUNT,
        ]));
    }
    run(Command::new("usermod").args(["-p", "*", ACCOUNT]));
}

impl TestRelay {
    /// Starts the relay. `allow_unix_sockets`: leave `AllowStreamLocalForwarding` at OpenSSH's
    /// default (yes), as a relay whose admins did not set it.
    pub fn start(allow_unix_sockets: bool) -> Self {
        ACCOUNT_SETUP.call_once(|| {
            ensure_account();
            let ssh = Path::new(HOME).join(".ssh");
            std::fs::create_dir_all(&ssh).unwrap();
            std::fs::write(ssh.join("authorized_keys"), "").unwrap();
            run(Command::new("chown").args(["-R", &format!("{ACCOUNT}:"), ssh.to_str().unwrap()]));
            run(Command::new("chmod").args(["700", ssh.to_str().unwrap()]));
        });
        // sshd's privilege separation folder (made by the init system elsewhere).
        std::fs::create_dir_all("/run/sshd").unwrap();

        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("host_ed25519");
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "relay", "-f"])
            .arg(&key));
        let host_key = std::fs::read_to_string(key.with_extension("pub"))
            .unwrap()
            .trim()
            .to_string();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.path().join("sshd_config");
        let sockets = if allow_unix_sockets { "yes" } else { "no" };
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\n\
                 AuthorizedKeysFile .ssh/authorized_keys\nPubkeyAuthentication yes\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
                 PermitRootLogin no\nAllowUsers {ACCOUNT}\nStrictModes yes\n\
                 AllowTcpForwarding yes\nAllowStreamLocalForwarding {sockets}\nX11Forwarding no\n\
                 PrintMotd no\nLogLevel DEBUG1\n",
                key.display(),
                dir.path().join("sshd.pid").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("sshd.log")).unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let relay = Self {
            port,
            host_key,
            child,
            dir,
        };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "sshd did not listen: {}",
                relay.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        relay
    }

    /// `sloop-relay@127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("{ACCOUNT}@127.0.0.1:{}", self.port)
    }

    /// The relay's line for a known_hosts file.
    pub fn known_hosts_line(&self) -> String {
        let key: Vec<&str> = self.host_key.split_whitespace().take(2).collect();
        format!("[127.0.0.1]:{} {}\n", self.port, key.join(" "))
    }

    /// Lets `public_key` (an OpenSSH public key line) log in to the account without limits.
    pub fn authorize(&self, public_key: &str) {
        use std::io::Write as _;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(self.authorized_keys_path())
            .unwrap();
        writeln!(file, "{}", public_key.trim()).unwrap();
    }

    pub fn authorized_keys_path(&self) -> PathBuf {
        Path::new(HOME).join(".ssh/authorized_keys")
    }

    /// The account's authorized_keys now.
    pub fn authorized_keys(&self) -> String {
        std::fs::read_to_string(self.authorized_keys_path()).unwrap_or_default()
    }

    /// What sshd logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for TestRelay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A user's `~/.ssh` in `home` with a fresh unencrypted ed25519 key and `known_hosts` holding
/// `known_hosts` (may be empty); the public key line.
pub fn user_ssh_dir(home: &Path, known_hosts: &str) -> String {
    let ssh = home.join(".ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    let key = ssh.join("id_ed25519");
    let _ = std::fs::remove_file(&key);
    let _ = std::fs::remove_file(key.with_extension("pub"));
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "user", "-f"])
        .arg(&key));
    std::fs::write(ssh.join("known_hosts"), known_hosts).unwrap();
    std::fs::read_to_string(key.with_extension("pub")).unwrap()
}
