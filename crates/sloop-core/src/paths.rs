//! Where Sloop keeps its files.
//!
//! One `SLOOP_HOME` folder overrides every location at once, which is how tests, benchmarks and
//! classroom scripts keep their state apart. Without it the platform's usual folders are used
//! (`directories`). The layout is described in docs/on-disk-layout.md.

use std::path::{Path, PathBuf};

use directories::ProjectDirs;

/// The environment variable that moves all of Sloop's files under one folder.
pub const HOME_ENV: &str = "SLOOP_HOME";

/// The folders and files Sloop reads and writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// `config.toml` lives here.
    pub config_dir: PathBuf,
    /// Images, machines, catalogs: the user's data.
    pub data_dir: PathBuf,
    /// Rebuildable things: probes' results, downloads' scratch space.
    pub cache_dir: PathBuf,
    /// Log files.
    pub log_dir: PathBuf,
}

/// Paths could not be worked out.
#[derive(Debug, thiserror::Error)]
pub enum PathsError {
    #[error("no home folder is known for this user; set SLOOP_HOME to a folder Sloop may use")]
    NoHome,
    #[error("SLOOP_HOME must be an absolute path, not {0:?}")]
    RelativeHome(PathBuf),
}

impl Paths {
    /// The paths in force: `SLOOP_HOME` when set, the platform's folders otherwise.
    pub fn from_env() -> Result<Self, PathsError> {
        match std::env::var_os(HOME_ENV) {
            Some(home) if !home.is_empty() => Self::under(PathBuf::from(home)),
            _ => Self::platform(),
        }
    }

    /// Everything under one folder.
    pub fn under(home: PathBuf) -> Result<Self, PathsError> {
        if !home.is_absolute() {
            return Err(PathsError::RelativeHome(home));
        }
        Ok(Self {
            config_dir: home.clone(),
            data_dir: home.join("data"),
            cache_dir: home.join("cache"),
            log_dir: home.join("logs"),
        })
    }

    fn platform() -> Result<Self, PathsError> {
        let dirs = ProjectDirs::from("org", "sloop", "sloop").ok_or(PathsError::NoHome)?;
        let log_dir = dirs
            .state_dir()
            .unwrap_or_else(|| dirs.data_local_dir())
            .join("logs");
        Ok(Self {
            config_dir: dirs.config_dir().to_path_buf(),
            data_dir: dirs.data_dir().to_path_buf(),
            cache_dir: dirs.cache_dir().to_path_buf(),
            log_dir,
        })
    }

    /// The user's settings.
    pub fn config_file(&self) -> PathBuf {
        self.config_dir.join("config.toml")
    }

    /// The content-addressed image store.
    pub fn images_dir(&self) -> PathBuf {
        self.data_dir.join("images")
    }

    /// One folder per machine: manifest, overlay, seed, keys, console log.
    pub fn machines_dir(&self) -> PathBuf {
        self.data_dir.join("machines")
    }

    /// The folder of one machine.
    pub fn machine_dir(&self, name: &str) -> PathBuf {
        self.machines_dir().join(name)
    }

    /// The main log file's folder and base name.
    pub fn log_file(&self) -> PathBuf {
        self.log_dir.join("sloop.log")
    }
}

/// Creates `dir` (and parents) readable only by the user: Sloop's folders hold keys and proxies.
pub fn ensure_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot create {}: {e}", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_moves_everything() {
        let paths = Paths::under(PathBuf::from("/srv/s")).unwrap();
        assert_eq!(paths.config_file(), PathBuf::from("/srv/s/config.toml"));
        assert_eq!(
            paths.machine_dir("m1"),
            PathBuf::from("/srv/s/data/machines/m1")
        );
        assert_eq!(paths.log_file(), PathBuf::from("/srv/s/logs/sloop.log"));
    }

    #[test]
    fn relative_home_is_refused() {
        assert!(matches!(
            Paths::under(PathBuf::from("rel")),
            Err(PathsError::RelativeHome(_))
        ));
    }
}
