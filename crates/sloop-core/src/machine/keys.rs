//! A machine's SSH keys, all made by Sloop: the client key Sloop logs in with, and the machine's
//! own host key, handed to the guest in its seed. Because Sloop made the host key, the very first
//! connection is already verified: no trust-on-first-use.

use std::fmt;
use std::path::{Path, PathBuf};

use russh::keys::ssh_key::LineEnding;
use russh::keys::{Algorithm, PrivateKey};

use crate::fsutil::write_atomic;
use crate::paths::ensure_private_dir;

/// A machine's key pair set. Its `Debug` shows fingerprints only.
#[derive(Clone)]
pub struct MachineKeys {
    pub client: PrivateKey,
    pub host: PrivateKey,
}

impl fmt::Debug for MachineKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MachineKeys")
            .field("client", &fingerprint(self.client.public_key()))
            .field("host", &fingerprint(self.host.public_key()))
            .finish()
    }
}

/// Keys could not be made, read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot make an SSH key")]
    Generate(#[source] russh::keys::ssh_key::Error),
    #[error("cannot read or write the machine's SSH keys")]
    Io(#[from] std::io::Error),
    #[error("SSH key {path} is damaged; the machine cannot be reached without it")]
    Damaged {
        path: PathBuf,
        #[source]
        source: russh::keys::ssh_key::Error,
    },
}

pub use crate::ssh::fingerprint;

pub use crate::ssh::public_openssh;

const CLIENT: &str = "client_ed25519";
const HOST: &str = "host_ed25519";

impl MachineKeys {
    /// Fresh ed25519 keys for machine `name`.
    pub fn generate(name: &str) -> Result<Self, KeyError> {
        let mut client =
            PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).map_err(KeyError::Generate)?;
        client.set_comment(format!("sloop-client@{name}"));
        let mut host =
            PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).map_err(KeyError::Generate)?;
        host.set_comment(format!("root@{name}"));
        Ok(Self { client, host })
    }

    /// The host key's private half in OpenSSH format, for the seed. Handle as a secret.
    pub fn host_private_openssh(&self) -> Result<zeroize::Zeroizing<String>, KeyError> {
        self.host
            .to_openssh(LineEnding::LF)
            .map_err(KeyError::Generate)
    }

    /// Writes the keys into `dir` (0700): private halves 0600, public halves 0644.
    pub fn save(&self, dir: &Path) -> Result<(), KeyError> {
        ensure_private_dir(dir)?;
        for (name, key) in [(CLIENT, &self.client), (HOST, &self.host)] {
            let private = key.to_openssh(LineEnding::LF).map_err(KeyError::Generate)?;
            write_atomic(&dir.join(name), private.as_bytes(), 0o600)?;
            let public = format!("{}\n", public_openssh(key.public_key()));
            write_atomic(&dir.join(format!("{name}.pub")), public.as_bytes(), 0o644)?;
        }
        Ok(())
    }

    /// Reads keys saved by [`MachineKeys::save`].
    pub fn load(dir: &Path) -> Result<Self, KeyError> {
        let read = |name: &str| -> Result<PrivateKey, KeyError> {
            let path = dir.join(name);
            let text = zeroize::Zeroizing::new(fs_err::read_to_string(&path)?);
            PrivateKey::from_openssh(text.as_bytes())
                .map_err(|source| KeyError::Damaged { path, source })
        };
        Ok(Self {
            client: read(CLIENT)?,
            host: read(HOST)?,
        })
    }

    /// The private client key's file, for `ssh -i` in the user's ssh config.
    pub fn client_key_file(dir: &Path) -> PathBuf {
        dir.join(CLIENT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keys_round_trip_with_private_modes() {
        let dir = tempfile::tempdir().unwrap();
        let ssh = dir.path().join("ssh");
        let keys = MachineKeys::generate("demo").unwrap();
        keys.save(&ssh).unwrap();
        let loaded = MachineKeys::load(&ssh).unwrap();
        assert_eq!(loaded.host.public_key(), keys.host.public_key());
        assert_eq!(loaded.client.public_key(), keys.client.public_key());
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&ssh), 0o700);
        assert_eq!(mode(&ssh.join("client_ed25519")), 0o600);
        assert_eq!(mode(&ssh.join("host_ed25519")), 0o600);
        assert!(public_openssh(keys.client.public_key()).starts_with("ssh-ed25519 "));
        let debug = format!("{keys:?}");
        assert!(
            debug.contains("SHA256:") && !debug.contains("PRIVATE"),
            "{debug}"
        );
    }
}
