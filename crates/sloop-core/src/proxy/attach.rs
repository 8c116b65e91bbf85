//! Placing the user's proxy in a machine, as grid tools inside expect it: the proxy at
//! `/run/sloop/secrets/x509up_u<uid>` (0600, the user's, in a ramfs the machine mounts at every
//! boot, so its bytes never reach the disk, the overlay or a bundle) with a link to it at
//! `/tmp/x509up_u<uid>`, the host's trust anchors and VOMS descriptions under
//! `~/.sloop/grid/`, and `X509_USER_PROXY`, `X509_CERT_DIR`, `X509_VOMS_DIR` set in login shells
//! by `~/.sloop/grid/env.sh`, which `~/.profile` sources.
//!
//! Everything goes over the machine's SSH connection as its user: nothing needs root in the
//! guest, and the proxy never touches the guest's disk. The anchors are sent again
//! only when they changed, so a renewal moves one small file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use ts_rs::TS;

use super::{ProxyError, inspect::read};
use crate::config::Config;
use crate::libvirt::Connection;
use crate::machine::{MachineError, MachineName, MachineState, Manifest};
use crate::paths::Paths;
use crate::ssh::Session;

/// How long to wait for a running machine's SSH server.
const CONNECT_WITHIN: Duration = Duration::from_secs(30);
/// More than any real trust store (IGTF's is a few MiB): a wrong `X509_CERT_DIR` is refused,
/// not copied.
const MAX_ANCHOR_BYTES: u64 = 64 << 20;
/// The line `~/.profile` gets, found again by its marker when detaching.
const PROFILE_MARKER: &str = "# sloop: grid proxy";

/// A proxy could not be placed in or removed from a machine.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("no proxy at {0}; make one with `sloop proxy init`")]
    NoProxy(PathBuf),
    #[error("the proxy at {path} expired at {at}; renew it with `sloop proxy init`")]
    Expired { path: PathBuf, at: String },
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    #[error(transparent)]
    Machine(#[from] MachineError),
    #[error("cannot read the trust anchors in {0}")]
    Anchors(PathBuf, #[source] std::io::Error),
    #[error("the trust anchors in {dir} are more than {mib} MiB; is X509_CERT_DIR right?")]
    TooManyAnchors { dir: PathBuf, mib: u64 },
    #[error("machine {machine} could not {step}")]
    Remote {
        machine: String,
        step: &'static str,
        #[source]
        failure: Box<RemoteFailure>,
    },
}

/// Why a command Sloop ran in a machine failed.
#[derive(Debug, thiserror::Error)]
pub enum RemoteFailure {
    #[error("no answer within {0} s")]
    NoAnswer(u64),
    #[error(transparent)]
    Ssh(#[from] crate::ssh::SshError),
    /// The last line the command wrote to its standard error.
    #[error("{0}")]
    Said(String),
    #[error("exit status {0}")]
    Status(u32),
    #[error("killed by a signal")]
    Signal,
    #[error("the work stopped unexpectedly ({0})")]
    Internal(String),
}

/// What a machine received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct Placed {
    pub machine: String,
    /// Where the proxy is in the machine.
    pub path: String,
    /// RFC 3339: the placed proxy's end.
    pub not_after: String,
    /// Whether the anchors were sent (they are sent only when they changed).
    pub anchors_sent: bool,
}

/// Grid files on the host to place in machines.
#[derive(Debug, Clone)]
pub struct Sources {
    pub proxy: PathBuf,
    pub anchors: PathBuf,
    pub voms_dir: PathBuf,
    /// The VOMS servers' addresses (a `vomses` file or folder), so VOMS proxies can be renewed
    /// inside the machine too.
    pub vomses: PathBuf,
}

impl Sources {
    /// Where grid tools find them on this host.
    pub fn from_env(config: &Config) -> Self {
        Self {
            proxy: super::default_path(),
            anchors: config.ca_dir(),
            voms_dir: super::voms_dir(),
            vomses: super::vomses(),
        }
    }
}

/// Marks machine `name` attached and, when it runs, places the proxy in it now. Attached
/// machines get the proxy at every start ([`crate::machine::start`]) and renewal ([`push_all`]).
pub async fn attach(
    paths: &Paths,
    conn: &Connection,
    name: &str,
    sources: &Sources,
) -> Result<Option<Placed>, AttachError> {
    let name: MachineName = name.parse().map_err(MachineError::from)?;
    let mut manifest = crate::machine::load(paths, &name)?;
    // Check the proxy before recording anything: attaching a broken proxy is refused.
    let now = OffsetDateTime::now_utc();
    usable_proxy(&sources.proxy, now)?;
    if !manifest.proxy_attached {
        manifest.proxy_attached = true;
        manifest
            .save(&paths.machine_dir(name.as_str()))
            .map_err(MachineError::from)?;
    }
    if crate::machine::domain_state(conn, &manifest.domain_name())
        .await
        .map_err(MachineError::from)?
        != MachineState::Running
    {
        return Ok(None);
    }
    place_in(paths, &manifest, sources, now).await.map(Some)
}

/// Logs in to the running machine, places the proxy, and leaves.
async fn place_in(
    paths: &Paths,
    manifest: &Manifest,
    sources: &Sources,
    now: OffsetDateTime,
) -> Result<Placed, AttachError> {
    let session = crate::machine::power::connect(paths, manifest, CONNECT_WITHIN).await?;
    let placed = place(&session, manifest, sources, now).await;
    let _ = session.close().await;
    placed
}

/// Marks machine `name` detached and, when it runs, removes the proxy, anchors and profile line
/// from it.
pub async fn detach(paths: &Paths, conn: &Connection, name: &str) -> Result<(), AttachError> {
    let name: MachineName = name.parse().map_err(MachineError::from)?;
    let mut manifest = crate::machine::load(paths, &name)?;
    manifest.proxy_attached = false;
    manifest
        .save(&paths.machine_dir(name.as_str()))
        .map_err(MachineError::from)?;
    if crate::machine::domain_state(conn, &manifest.domain_name())
        .await
        .map_err(MachineError::from)?
        != MachineState::Running
    {
        return Ok(());
    }
    let session = crate::machine::power::connect(paths, &manifest, CONNECT_WITHIN).await?;
    let removed = remove(&session, &manifest).await;
    let _ = session.close().await;
    removed
}

/// What a renewal did: where the proxy was placed, and `machine: reason` where it could not be
/// (`the machines folder: reason` when the machines could not be listed).
#[derive(Debug, Default)]
pub struct Pushed {
    pub placed: Vec<Placed>,
    pub failed: Vec<String>,
}

/// Places the current proxy in every running attached machine: what a renewal calls. One
/// machine's failure does not stop the others.
pub async fn push_all(paths: &Paths, conn: &Connection, sources: &Sources) -> Pushed {
    let mut pushed = Pushed::default();
    let manifests = match crate::machine::manifest::load_all(&paths.machines_dir()) {
        Ok(manifests) => manifests,
        Err(e) => {
            pushed
                .failed
                .push(format!("the machines folder: {}", crate::error_chain(&e)));
            return pushed;
        }
    };
    for manifest in manifests.into_iter().filter(|m| m.proxy_attached) {
        let outcome = match crate::machine::domain_state(conn, &manifest.domain_name()).await {
            Ok(MachineState::Running) => {
                place_in(paths, &manifest, sources, OffsetDateTime::now_utc()).await
            }
            Ok(_) => continue,
            Err(e) => Err(MachineError::from(e).into()),
        };
        match outcome {
            Ok(p) => {
                tracing::info!(machine = %manifest.name, until = %p.not_after, "proxy placed");
                pushed.placed.push(p);
            }
            Err(e) => {
                let reason = crate::error_chain(&e);
                tracing::warn!(machine = %manifest.name, "proxy not placed: {reason}");
                pushed.failed.push(format!("{}: {reason}", manifest.name));
            }
        }
    }
    pushed
}

/// Places the proxy, and the anchors when they changed, over an open session.
pub async fn place(
    session: &Session,
    manifest: &Manifest,
    sources: &Sources,
    now: OffsetDateTime,
) -> Result<Placed, AttachError> {
    let machine = manifest.name.to_string();
    let remote_failed = |step: &'static str, failure: RemoteFailure| AttachError::Remote {
        machine: machine.clone(),
        step,
        failure: Box::new(failure),
    };
    // Files are read, parsed and hashed off the async threads (the anchors can be megabytes).
    let prepared = {
        let sources = sources.clone();
        tokio::task::spawn_blocking(move || {
            let proxy = usable_proxy(&sources.proxy, now)?;
            let bundle = grid_folder(&sources)?;
            Ok::<_, AttachError>((proxy, bundle))
        })
        .await
        .map_err(|e| remote_failed("be prepared for", RemoteFailure::Internal(e.to_string())))??
    };
    let ((proxy_bytes, not_after), bundle) = prepared;

    // One command for a renewal: the proxy (a private temporary file in the memory-only
    // secrets folder, renamed over the old one at once) and the link in /tmp to it for tools
    // that ignore X509_USER_PROXY (a directory or another's file there is refused, not
    // followed); the profile lines (every time, so a line the user removed or a new
    // ~/.bash_profile is taken care of); then the digest of the grid folder the machine has.
    let script = format!(
        r#"set -e
umask 077
d={secrets}
if ! awk -v d="$d" '$2 == d && ($3 == "ramfs" || $3 == "tmpfs") {{ found = 1 }} END {{ exit !found }}' /proc/mounts; then
  echo "$d is not a memory-only folder; restart the machine so that Sloop sets it up" >&2
  exit 1
fi
f="$d/x509up_u$(id -u)"
l="/tmp/x509up_u$(id -u)"
t=$(mktemp "$d/.x509up.XXXXXX")
trap 'rm -f "$t"' EXIT
cat > "$t"
chmod 600 "$t"
mv -f "$t" "$f"
trap - EXIT
if [ -L "$l" ] || [ -f "$l" ]; then rm -f "$l"; elif [ -e "$l" ]; then
  echo "$l is not a plain file or link; remove it" >&2
  exit 1
fi
ln -s "$f" "$l"
umask 022
{profile}
printf '%s\n' "$f"
cat "$HOME/.sloop/grid/.digest" 2>/dev/null || true"#,
        secrets = crate::machine::seed::SECRETS_DIR,
        profile = profile_script()
    );
    let output = run(session, &script, &proxy_bytes)
        .await
        .map_err(|m| remote_failed("receive the proxy", m))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let mut lines = stdout.lines();
    let path = lines.next().unwrap_or_default().trim().to_string();
    let current = lines.next().unwrap_or_default().trim();

    // The grid folder (anchors, VOMS descriptions, env.sh), only when the machine's differs.
    let digest = hex::encode(Sha256::digest(&bundle.tar));
    let anchors_sent = current != digest;
    if anchors_sent {
        // Under a lock: a start and a renewal may place at the same time.
        let script = format!(
            r#"set -e
umask 022
d="$HOME/.sloop/grid"
mkdir -p "$d"
exec 9>"$d/.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi
t=$(mktemp -d "$d/.new.XXXXXX")
trap 'rm -rf "$t"' EXIT
tar -x -C "$t" -f -
rm -rf "$d/certificates" "$d/vomsdir" "$d/vomses"
for f in certificates vomsdir vomses; do if [ -e "$t/$f" ]; then mv "$t/$f" "$d/$f"; fi; done
mv -f "$t/env.sh" "$d/env.sh"
printf '%s\n' {digest} > "$d/.digest""#
        );
        run(session, &script, &bundle.tar)
            .await
            .map_err(|m| remote_failed("receive the trust anchors", m))?;
    }
    Ok(Placed {
        machine: machine.clone(),
        path,
        not_after,
        anchors_sent,
    })
}

/// The line that sources `env.sh`, exactly as it is added and, on detach, removed.
fn profile_line() -> String {
    format!(r#"[ -r "$HOME/.sloop/grid/env.sh" ] && . "$HOME/.sloop/grid/env.sh" {PROFILE_MARKER}"#)
}

/// Adds the line to `~/.profile` (POSIX login shells), and to `~/.bash_profile` and
/// `~/.bashrc` where they exist (bash reads `~/.profile` only without a `~/.bash_profile`).
fn profile_script() -> String {
    let line = crate::ssh::sh_quote(&profile_line());
    format!(
        r#"set -e
for p in "$HOME/.profile" "$HOME/.bash_profile" "$HOME/.bashrc"; do
  if [ "$p" != "$HOME/.profile" ] && [ ! -f "$p" ]; then continue; fi
  grep -qxF {line} "$p" 2>/dev/null || printf '%s\n' {line} >> "$p"
done"#
    )
}

/// Removes the proxy, the grid folder and the profile lines from the machine. A profile is
/// rewritten only when it held the line, through a temporary file, and only once that file is
/// whole: a full disk leaves the user's profile as it was.
async fn remove(session: &Session, manifest: &Manifest) -> Result<(), AttachError> {
    run(session, &remove_script(), b"")
        .await
        .map(|_| ())
        .map_err(|failure| AttachError::Remote {
            machine: manifest.name.to_string(),
            step: "remove the proxy",
            failure: Box::new(failure),
        })
}

fn remove_script() -> String {
    let line = crate::ssh::sh_quote(&profile_line());
    format!(
        r#"set -e
f="{secrets}/x509up_u$(id -u)"
l="/tmp/x509up_u$(id -u)"
rm -f "$f"
if [ -L "$l" ] || [ -f "$l" ]; then rm -f "$l"; fi
rm -rf "$HOME/.sloop/grid"
for p in "$HOME/.profile" "$HOME/.bash_profile" "$HOME/.bashrc"; do
  [ -f "$p" ] || continue
  grep -qxF {line} "$p" || continue
  t=$(mktemp "$p.sloop.XXXXXX")
  rc=0
  grep -vxF {line} "$p" > "$t" || rc=$?
  if [ "$rc" -gt 1 ]; then rm -f "$t"; exit 1; fi
  cat "$t" > "$p"
  rm -f "$t"
done"#,
        secrets = crate::machine::seed::SECRETS_DIR,
    )
}

/// Removes what an earlier attach left in a machine detached while it was stopped; does nothing
/// in a machine Sloop never placed a proxy in (a proxy the user made inside stays).
pub async fn clean_up_detached(session: &Session, manifest: &Manifest) -> Result<(), AttachError> {
    let placed_before = run(
        session,
        "[ -f \"$HOME/.sloop/grid/.digest\" ] && echo yes || true",
        b"",
    )
    .await
    .map_err(|failure| AttachError::Remote {
        machine: manifest.name.to_string(),
        step: "be reached",
        failure: Box::new(failure),
    })?;
    if String::from_utf8_lossy(&placed_before.stdout).trim() == "yes" {
        remove(session, manifest).await?;
    }
    Ok(())
}

/// The proxy's bytes, once they are known to be a valid, unexpired proxy with its own key: the
/// very bytes that were checked.
fn usable_proxy(
    path: &Path,
    now: OffsetDateTime,
) -> Result<(zeroize::Zeroizing<Vec<u8>>, String), AttachError> {
    let file = read(path)?.ok_or_else(|| AttachError::NoProxy(path.to_path_buf()))?;
    let not_after = crate::time_util::asn1_to_offset(file.certificates[0].not_after());
    if not_after <= now {
        return Err(AttachError::Expired {
            path: path.to_path_buf(),
            at: crate::time_util::rfc3339(not_after),
        });
    }
    Ok((file.bytes, crate::time_util::rfc3339(not_after)))
}

/// How long one command in the machine may take: placing files is quick, so a command that
/// takes longer is stuck (a hung guest, a full disk).
const COMMAND_WITHIN: Duration = Duration::from_secs(60);

/// Runs `script` with `sh` whatever the user's login shell is, `input` on its standard input;
/// its output when it succeeds, else the last line it wrote to stderr.
async fn run(
    session: &Session,
    script: &str,
    input: &[u8],
) -> Result<crate::ssh::Output, RemoteFailure> {
    let command = format!("sh -c {}", crate::ssh::sh_quote(script));
    let output = tokio::time::timeout(COMMAND_WITHIN, session.exec_with_input(&command, input))
        .await
        .map_err(|_| RemoteFailure::NoAnswer(COMMAND_WITHIN.as_secs()))??;
    if output.status == Some(0) {
        return Ok(output);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let said = stderr.lines().rev().map(str::trim).find(|l| !l.is_empty());
    Err(match (said, output.status) {
        (Some(line), _) => RemoteFailure::Said(line.to_string()),
        (None, Some(code)) => RemoteFailure::Status(code),
        (None, None) => RemoteFailure::Signal,
    })
}

struct GridFolder {
    tar: Vec<u8>,
}

/// `certificates/` (the anchors, links resolved), `vomsdir/` and `env.sh`, as one tar stream.
/// Files are sorted and stamped with time 0, so the same host files give the same digest.
fn grid_folder(sources: &Sources) -> Result<GridFolder, AttachError> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut total = 0u64;
    let has_anchors = add_tree(
        &mut builder,
        &sources.anchors,
        "certificates",
        0,
        &mut total,
    )?;
    let has_voms = add_tree(&mut builder, &sources.voms_dir, "vomsdir", 0, &mut total)?;
    // voms-proxy-init and arcproxy take a vomses file or a folder of them alike.
    let has_vomses = if sources.vomses.is_file() {
        let bytes = std::fs::read(&sources.vomses)
            .map_err(|e| AttachError::Anchors(sources.vomses.clone(), e))?;
        append(&mut builder, "vomses", &bytes, 0o644)
            .map_err(|e| AttachError::Anchors(sources.vomses.clone(), e))?;
        true
    } else {
        add_tree(&mut builder, &sources.vomses, "vomses", 1, &mut total)?
    };
    let mut env = String::from(
        "# Written by Sloop (`sloop proxy attach`): the grid proxy and trust anchors.\n\
         export X509_USER_PROXY=\"/run/sloop/secrets/x509up_u$(id -u)\"\n",
    );
    if has_anchors {
        env.push_str("export X509_CERT_DIR=\"$HOME/.sloop/grid/certificates\"\n");
    }
    if has_voms {
        env.push_str("export X509_VOMS_DIR=\"$HOME/.sloop/grid/vomsdir\"\n");
    }
    if has_vomses {
        env.push_str(
            "export VOMS_USERCONF=\"$HOME/.sloop/grid/vomses\"\nexport X509_VOMSES=\"$HOME/.sloop/grid/vomses\"\n",
        );
    }
    append(&mut builder, "env.sh", env.as_bytes(), 0o644)
        .map_err(|e| AttachError::Anchors(sources.anchors.clone(), e))?;
    let tar = builder
        .into_inner()
        .map_err(|e| AttachError::Anchors(sources.anchors.clone(), e))?;
    Ok(GridFolder { tar })
}

/// Adds the regular files under `dir` (following links, two levels deep for `vomsdir/<vo>/`)
/// as `prefix/…`; false when `dir` does not exist or holds nothing.
fn add_tree(
    builder: &mut tar::Builder<Vec<u8>>,
    dir: &Path,
    prefix: &str,
    depth: u8,
    total: &mut u64,
) -> Result<bool, AttachError> {
    let failed = |e: std::io::Error| AttachError::Anchors(dir.to_path_buf(), e);
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(failed(e)),
    };
    let mut names: Vec<_> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    let mut any = false;
    for name in names {
        let path = dir.join(&name);
        // Links are followed: IGTF folders link `<hash>.0` to the CA's file.
        let Ok(metadata) = std::fs::metadata(&path) else {
            continue;
        };
        let inner = format!("{prefix}/{name}");
        if metadata.is_dir() {
            if depth < 1 {
                any |= add_tree(builder, &path, &inner, depth + 1, total)?;
            }
            continue;
        }
        if !metadata.is_file() {
            continue;
        }
        *total += metadata.len();
        if *total > MAX_ANCHOR_BYTES {
            return Err(AttachError::TooManyAnchors {
                dir: dir.to_path_buf(),
                mib: MAX_ANCHOR_BYTES >> 20,
            });
        }
        let bytes = fs_err::read(&path).map_err(failed)?;
        append(builder, &inner, &bytes, 0o644).map_err(failed)?;
        any = true;
    }
    Ok(any)
}

fn append(
    builder: &mut tar::Builder<Vec<u8>>,
    path: &str,
    bytes: &[u8],
    mode: u32,
) -> std::io::Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_size(bytes.len() as u64);
    header.set_mode(mode);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    builder.append_data(&mut header, path, bytes)
}

/// Places the user's proxy in an attached machine that has just started, or clears what an
/// earlier attach left in a machine detached while it was stopped. A missing or expired proxy
/// does not stop the start: the machine runs, and the next renewal places it.
pub async fn after_start(paths: &Paths, config: &Config, manifest: &Manifest, within: Duration) {
    let sources = Sources::from_env(config);
    let outcome = match crate::machine::power::connect(paths, manifest, within).await {
        Ok(session) => {
            let outcome = if manifest.proxy_attached {
                place(
                    &session,
                    manifest,
                    &sources,
                    time::OffsetDateTime::now_utc(),
                )
                .await
                .map(|p| Some(p.not_after))
            } else {
                clean_up_detached(&session, manifest).await.map(|()| None)
            };
            let _ = session.close().await;
            outcome.map_err(|e| crate::error_chain(&e))
        }
        Err(e) => Err(crate::error_chain(&e)),
    };
    match outcome {
        Ok(Some(until)) => tracing::info!(machine = %manifest.name, %until, "proxy placed"),
        Ok(None) => {}
        Err(e) => tracing::warn!(machine = %manifest.name, "proxy not placed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a guest script with the host's `sh` in a fake home.
    fn sh(script: &str, home: &Path) -> std::process::Output {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .env("HOME", home)
            .output()
            .unwrap()
    }

    #[test]
    fn profile_lines_are_added_once_and_removed_exactly() {
        let home = tempfile::tempdir().unwrap();
        let profile = home.path().join(".profile");
        let bashrc = home.path().join(".bashrc");
        let mine = "export MINE=1\n# a line of mine mentioning sloop: grid proxy in prose\n";
        std::fs::write(&profile, mine).unwrap();
        std::fs::write(&bashrc, "alias ll='ls -l'\n").unwrap();
        for _ in 0..2 {
            assert!(sh(&profile_script(), home.path()).status.success());
        }
        let line = profile_line();
        for path in [&profile, &bashrc] {
            let text = std::fs::read_to_string(path).unwrap();
            assert_eq!(text.matches(&line).count(), 1, "{text}");
        }
        assert!(
            !home.path().join(".bash_profile").exists(),
            "no new bash_profile"
        );

        // What `remove` runs, minus the SSH: the user's lines stay, byte for byte.
        let script = format!("sh -c {}", crate::ssh::sh_quote(&remove_script()));
        assert!(sh(&script, home.path()).status.success());
        assert_eq!(std::fs::read_to_string(&profile).unwrap(), mine);
        assert_eq!(
            std::fs::read_to_string(&bashrc).unwrap(),
            "alias ll='ls -l'\n"
        );
    }

    #[test]
    fn grid_folder_is_reproducible_and_follows_links() {
        let dir = tempfile::tempdir().unwrap();
        let anchors = dir.path().join("certificates");
        std::fs::create_dir(&anchors).unwrap();
        std::fs::write(anchors.join("TestCA.pem"), "ca").unwrap();
        std::os::unix::fs::symlink("TestCA.pem", anchors.join("0123abcd.0")).unwrap();
        std::fs::write(anchors.join("0123abcd.signing_policy"), "policy").unwrap();
        let sources = Sources {
            proxy: dir.path().join("proxy"),
            anchors: anchors.clone(),
            voms_dir: dir.path().join("none"),
            vomses: dir.path().join("none"),
        };
        let one = grid_folder(&sources).unwrap().tar;
        let two = grid_folder(&sources).unwrap().tar;
        assert_eq!(one, two, "same files, same stream");
        let mut archive = tar::Archive::new(one.as_slice());
        let mut names = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().display().to_string();
            let mut body = String::new();
            std::io::Read::read_to_string(&mut entry, &mut body).unwrap();
            if name == "certificates/0123abcd.0" {
                assert_eq!(body, "ca", "the link's target travels");
            }
            if name == "env.sh" {
                assert!(body.contains("X509_CERT_DIR"));
                assert!(!body.contains("X509_VOMS_DIR"), "no vomsdir on the host");
            }
            names.push(name);
        }
        assert_eq!(
            names,
            [
                "certificates/0123abcd.0",
                "certificates/0123abcd.signing_policy",
                "certificates/TestCA.pem",
                "env.sh"
            ]
        );
    }

    /// Regression (issue 10, bug 5): the host's vomses travel with the vomsdir, so
    /// `voms-proxy-init --voms VO` inside the machine finds the VO's server.
    #[test]
    fn vomses_travel_as_a_file_or_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        let line = "\"testvo\" \"voms.example.org\" \"15000\" \"/DC=invalid/CN=voms.example.org\" \"testvo\"\n";
        let folder = dir.path().join("vomses.d");
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(folder.join("testvo-voms.example.org"), line).unwrap();
        let file = dir.path().join("vomses");
        std::fs::write(&file, line).unwrap();
        for (vomses, member) in [(folder, "vomses/testvo-voms.example.org"), (file, "vomses")] {
            let sources = Sources {
                proxy: dir.path().join("proxy"),
                anchors: dir.path().join("none"),
                voms_dir: dir.path().join("none"),
                vomses,
            };
            let tar = grid_folder(&sources).unwrap().tar;
            let mut archive = tar::Archive::new(tar.as_slice());
            let mut seen = std::collections::BTreeMap::new();
            for entry in archive.entries().unwrap() {
                let mut entry = entry.unwrap();
                let name = entry.path().unwrap().display().to_string();
                let mut body = String::new();
                std::io::Read::read_to_string(&mut entry, &mut body).unwrap();
                seen.insert(name, body);
            }
            assert_eq!(seen.get(member).map(String::as_str), Some(line), "{seen:?}");
            assert!(seen["env.sh"].contains("export VOMS_USERCONF=\"$HOME/.sloop/grid/vomses\""));
        }
    }
}
