//! The user's settings (`config.toml`), with defaults that work on a fresh machine.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Overrides the libvirt connection URI, whatever the config file says.
pub const LIBVIRT_URI_ENV: &str = "SLOOP_LIBVIRT_URI";

/// Settings read from `config.toml`. Every field is optional in the file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// libvirt connection URI. Default: `qemu:///system` for root, `qemu:///session` otherwise.
    pub libvirt_uri: Option<String>,
    /// Grid trust anchors (IGTF layout). Default: `X509_CERT_DIR`, else `/etc/grid-security/certificates`.
    pub ca_dir: Option<PathBuf>,
    /// `kvm` or `tcg`: how machines run, whatever the acceleration probe found. For hosts where
    /// KVM passes the probe but real guests hang. Default: what the probe found.
    pub acceleration: Option<crate::types::Acceleration>,
    /// Warn this many minutes before the grid proxy expires. Default: 60.
    pub proxy_warning_minutes: Option<u32>,
    /// Refuse an image list whose signer's CAs have no current CRL in the grid CA folder, as sites
    /// do (`fetch-crl` keeps them). Default: false (a laptop may have anchors without CRLs).
    /// Catalogs and tutorials with a CA of their own (the demo's) are not affected.
    pub require_crl: Option<bool>,
    /// The largest virtual size a certified image's header may claim, in GiB, before a machine
    /// is made on it. Default: 256.
    pub max_image_gib: Option<u64>,
}

/// The config file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file")]
    Read(#[source] std::io::Error),
    #[error("config file {path} is not valid: {message}; fix or remove it")]
    Parse { path: PathBuf, message: String },
}

impl Config {
    /// Reads `path`; a missing file means all defaults.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = match fs_err::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(ConfigError::Read(e)),
        };
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.message().to_string(),
        })
    }

    /// The libvirt URI in force: the environment, then the file, then the default for this user.
    pub fn libvirt_uri(&self) -> String {
        if let Ok(uri) = std::env::var(LIBVIRT_URI_ENV)
            && !uri.is_empty()
        {
            return uri;
        }
        self.libvirt_uri.clone().unwrap_or_else(|| {
            if nix::unistd::geteuid().is_root() {
                "qemu:///system".to_string()
            } else {
                "qemu:///session".to_string()
            }
        })
    }

    /// How long before the proxy expires the user is warned, in minutes.
    pub fn proxy_warning_minutes(&self) -> u32 {
        self.proxy_warning_minutes.unwrap_or(60)
    }

    /// The largest virtual size a certified image may claim, in bytes.
    pub fn max_image_bytes(&self) -> u64 {
        self.max_image_gib.unwrap_or(256).saturating_mul(1 << 30)
    }

    /// Whether every CA of a signer's chain must have a current CRL in the grid CA folder.
    pub fn require_crl(&self) -> bool {
        self.require_crl.unwrap_or(false)
    }

    /// The grid trust anchors' folder in force.
    pub fn ca_dir(&self) -> PathBuf {
        self.ca_dir
            .clone()
            .or_else(|| std::env::var_os("X509_CERT_DIR").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("/etc/grid-security/certificates"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_gives_defaults() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            Config::load(&dir.path().join("none.toml")).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "libvirt_url = \"x\"\n").unwrap();
        let message = Config::load(&path).unwrap_err().to_string();
        assert!(message.contains("libvirt_url"), "{message}");
        assert!(message.contains("config.toml"), "{message}");
    }

    #[test]
    fn file_sets_uri() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "libvirt_uri = \"test:///default\"\n").unwrap();
        assert_eq!(
            Config::load(&path).unwrap().libvirt_uri,
            Some("test:///default".into())
        );
    }
}
