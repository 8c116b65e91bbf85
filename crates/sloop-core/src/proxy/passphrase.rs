//! The user key's passphrase, remembered in the OS keyring when the user asks.
//!
//! Making a proxy needs the passphrase of `~/.globus/userkey.pem`. The user may have Sloop
//! remember it, and forget it again; nothing else stores it. There is one keyring entry per user
//! key, named by the key file's canonical path.
//!
//! The keyring is the platform's own: the login Keychain on macOS, the Credential Manager on
//! Windows. On Linux it is the Secret Service (GNOME Keyring, KWallet) when the session bus has
//! one that answers, else the kernel's user keyring (keyutils), which works without a desktop
//! but is emptied at every reboot; [`PassphraseStore::backend`] names the one in use so the UI
//! can say so.
//!
//! Every call here blocks: D-Bus round trips, and a locked Secret Service shows its unlock
//! prompt and waits for the user with no time limit. Async callers run them in
//! `tokio::task::spawn_blocking`.
//!
//! The passphrase reaches no log and no error: errors name the key path and carry the store's
//! own error at most, and a stored value that is not text is reported without its bytes.

use std::path::{Path, PathBuf};

use keyring::{Entry, Error as KeyringError};
use tracing::{debug, instrument};
use zeroize::Zeroizing;

/// The keyring service every entry is filed under.
const SERVICE: &str = "sloop";

/// Where a remembered passphrase lives: one entry per user key, keyed by the key file's canonical path.
///
/// Holds no secret; cheap to clone.
#[derive(Debug, Clone)]
pub struct PassphraseStore {
    backend: Backend,
}

/// The keyring chosen when the store was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    #[cfg(target_os = "linux")]
    SecretService,
    #[cfg(target_os = "linux")]
    KernelKeyring,
    #[cfg(target_os = "macos")]
    Keychain,
    #[cfg(target_os = "windows")]
    CredentialManager,
    #[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
    Unsupported,
}

/// The keyring's own error, boxed: the Secret Service, Keychain and Credential Manager errors
/// come from the `keyring` crate, the kernel keyring's from `linux-keyutils`.
type StoreError = Box<dyn std::error::Error + Send + Sync>;

/// Remembering, recalling or forgetting a passphrase failed.
#[derive(Debug, thiserror::Error)]
pub enum PassphraseError {
    #[error("cannot resolve the key path {path}; check that the key file is there")]
    KeyPath {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the key path {path} is not valid UTF-8; move the key to a path with a plain name")]
    NotUtf8 { path: PathBuf },
    #[error("an empty passphrase is not remembered; a key without a passphrase needs none")]
    Empty,
    #[error("the {backend} is locked or refused access; unlock it and try again")]
    Locked {
        backend: &'static str,
        #[source]
        source: StoreError,
    },
    #[error("the {backend} holds several passphrases for {path}; delete them in its manager")]
    Ambiguous {
        backend: &'static str,
        path: PathBuf,
    },
    #[error("the remembered passphrase for {path} is not text; forget it and remember it again")]
    NotText { path: PathBuf },
    #[error("the {backend} does not work; type the passphrase instead")]
    Keyring {
        backend: &'static str,
        #[source]
        source: StoreError,
    },
    #[error("this system has no keyring Sloop can use; type the passphrase instead")]
    Unsupported,
}

impl PassphraseStore {
    /// Chooses the keyring. On Linux this asks the session bus for a Secret Service, which takes
    /// up to D-Bus's call timeout when a bus answers slowly: call it off the async runtime.
    #[allow(clippy::new_without_default)] // choosing a backend does I/O; `default()` would hide it
    pub fn new() -> Self {
        let backend = choose_backend();
        debug!(backend = backend.name(), "passphrase keyring chosen");
        Self { backend }
    }

    /// The keyring in use, for the UI and CLI to show.
    pub fn backend(&self) -> &'static str {
        self.backend.name()
    }

    /// The passphrase remembered for this key, if any.
    #[instrument(skip(self), fields(backend = self.backend()))]
    pub fn recall(&self, key_path: &Path) -> Result<Option<Zeroizing<String>>, PassphraseError> {
        let account = account(key_path)?;
        #[cfg(target_os = "linux")]
        if self.backend == Backend::KernelKeyring {
            let Some(bytes) = kernel::recall(&account.name).map_err(|e| self.kernel_error(e))?
            else {
                return Ok(None);
            };
            return text(bytes, &account.path).map(Some);
        }
        match self.entry(&account)?.get_password() {
            Ok(passphrase) => Ok(Some(Zeroizing::new(passphrase))),
            Err(KeyringError::NoEntry) => Ok(None),
            Err(error) => Err(self.keyring_error(error, account.path)),
        }
    }

    /// Remembers the passphrase for this key, replacing one remembered before.
    #[instrument(skip(self, passphrase), fields(backend = self.backend()))]
    pub fn remember(&self, key_path: &Path, passphrase: &str) -> Result<(), PassphraseError> {
        if passphrase.is_empty() {
            return Err(PassphraseError::Empty);
        }
        let account = account(key_path)?;
        #[cfg(target_os = "linux")]
        if self.backend == Backend::KernelKeyring {
            return kernel::remember(&account.name, passphrase).map_err(|e| self.kernel_error(e));
        }
        self.entry(&account)?
            .set_password(passphrase)
            .map_err(|error| self.keyring_error(error, account.path))
    }

    /// Forgets the passphrase for this key; true when one was remembered.
    #[instrument(skip(self), fields(backend = self.backend()))]
    pub fn forget(&self, key_path: &Path) -> Result<bool, PassphraseError> {
        let account = account(key_path)?;
        #[cfg(target_os = "linux")]
        if self.backend == Backend::KernelKeyring {
            return kernel::forget(&account.name).map_err(|e| self.kernel_error(e));
        }
        match self.entry(&account)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(KeyringError::NoEntry) => Ok(false),
            Err(error) => Err(self.keyring_error(error, account.path)),
        }
    }

    /// The `keyring` crate's entry for this key, for every backend but the kernel keyring.
    fn entry(&self, account: &Account) -> Result<Entry, PassphraseError> {
        let entry = match self.backend {
            #[cfg(target_os = "linux")]
            Backend::SecretService => {
                keyring::secret_service::SsCredential::new_with_target(None, SERVICE, &account.name)
                    .map(|credential| Entry::new_with_credential(Box::new(credential)))
            }
            #[cfg(target_os = "linux")]
            Backend::KernelKeyring => unreachable!("the kernel keyring is used directly"),
            #[cfg(target_os = "macos")]
            Backend::Keychain => Entry::new(SERVICE, &account.name),
            #[cfg(target_os = "windows")]
            Backend::CredentialManager => Entry::new(SERVICE, &account.name),
            #[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
            Backend::Unsupported => return Err(PassphraseError::Unsupported),
        };
        entry.map_err(|error| self.keyring_error(error, account.path.clone()))
    }

    fn keyring_error(&self, error: KeyringError, path: PathBuf) -> PassphraseError {
        let backend = self.backend();
        match error {
            KeyringError::NoStorageAccess(source) => PassphraseError::Locked { backend, source },
            KeyringError::Ambiguous(_) => PassphraseError::Ambiguous { backend, path },
            // The error carries the stored bytes: dropped here so no log or message shows them.
            KeyringError::BadEncoding(bytes) => {
                drop(Zeroizing::new(bytes));
                PassphraseError::NotText { path }
            }
            error => PassphraseError::Keyring {
                backend,
                source: Box::new(error),
            },
        }
    }

    #[cfg(target_os = "linux")]
    fn kernel_error(&self, error: linux_keyutils::KeyError) -> PassphraseError {
        use linux_keyutils::KeyError;

        let backend = self.backend();
        match error {
            KeyError::AccessDenied | KeyError::PermissionDenied => PassphraseError::Locked {
                backend,
                source: Box::new(error),
            },
            error => PassphraseError::Keyring {
                backend,
                source: Box::new(error),
            },
        }
    }
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            #[cfg(target_os = "linux")]
            Self::SecretService => "Secret Service",
            #[cfg(target_os = "linux")]
            Self::KernelKeyring => "kernel keyring (emptied at reboot)",
            #[cfg(target_os = "macos")]
            Self::Keychain => "macOS Keychain",
            #[cfg(target_os = "windows")]
            Self::CredentialManager => "Windows Credential Manager",
            #[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
            Self::Unsupported => "no keyring",
        }
    }
}

#[cfg(target_os = "linux")]
fn choose_backend() -> Backend {
    if secret_service_answers() {
        Backend::SecretService
    } else {
        Backend::KernelKeyring
    }
}

#[cfg(target_os = "macos")]
fn choose_backend() -> Backend {
    Backend::Keychain
}

#[cfg(target_os = "windows")]
fn choose_backend() -> Backend {
    Backend::CredentialManager
}

#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
fn choose_backend() -> Backend {
    Backend::Unsupported
}

/// Whether a Secret Service answers on the session bus and has a default collection to store
/// into. Looking up an entry that is never stored connects, opens a session and searches the
/// default collection, and never brings up an unlock prompt.
#[cfg(target_os = "linux")]
fn secret_service_answers() -> bool {
    use keyring::credential::CredentialApi as _;

    let probe = match keyring::secret_service::SsCredential::new_with_target(
        None,
        SERVICE,
        "probe: never stored",
    ) {
        Ok(probe) => probe,
        Err(_) => return false,
    };
    match probe.get_password() {
        Ok(_) | Err(KeyringError::NoEntry | KeyringError::Ambiguous(_)) => true,
        Err(error) => {
            debug!(%error, "no usable Secret Service");
            false
        }
    }
}

/// A user key as the keyring knows it.
#[derive(Debug)]
struct Account {
    /// The canonical path, for messages.
    path: PathBuf,
    /// The same as text: the entry's account name.
    name: String,
}

/// The key's canonical path, so that `~/.globus` through a symlink and the real folder share one
/// entry. A key that is gone can still be forgotten under its absolute path.
fn account(key_path: &Path) -> Result<Account, PassphraseError> {
    let path = std::fs::canonicalize(key_path)
        .or_else(|_| std::path::absolute(key_path))
        .map_err(|source| PassphraseError::KeyPath {
            path: key_path.to_path_buf(),
            source,
        })?;
    match path.to_str() {
        Some(name) => Ok(Account {
            name: name.to_owned(),
            path,
        }),
        None => Err(PassphraseError::NotUtf8 { path }),
    }
}

/// The stored bytes as a passphrase; they are wiped whatever they hold.
#[cfg(target_os = "linux")]
fn text(bytes: Zeroizing<Vec<u8>>, path: &Path) -> Result<Zeroizing<String>, PassphraseError> {
    match std::str::from_utf8(&bytes) {
        Ok(passphrase) => Ok(Zeroizing::new(passphrase.to_owned())),
        Err(_) => Err(PassphraseError::NotText {
            path: path.to_path_buf(),
        }),
    }
}

/// The kernel's user keyring, through keyutils.
///
/// The `keyring` crate has a keyutils store too, but it links every key into the persistent
/// keyring, asking for it with a call that gives a process without a login session keyring
/// (a service, a container, CI) a fresh session keyring of its own: the key it just added then
/// is no longer possessed, and reading it back fails. The user keyring is shared by all of the
/// user's processes and lives in kernel memory until reboot.
#[cfg(target_os = "linux")]
mod kernel {
    use linux_keyutils::{KeyError, KeyPermissionsBuilder, KeyRing, KeyRingIdentifier, Permission};
    use zeroize::Zeroizing;

    fn description(account: &str) -> String {
        format!("{}:passphrase:{account}", super::SERVICE)
    }

    fn user_keyring() -> Result<KeyRing, KeyError> {
        KeyRing::from_special_id(KeyRingIdentifier::User, true)
    }

    pub(super) fn recall(account: &str) -> Result<Option<Zeroizing<Vec<u8>>>, KeyError> {
        match user_keyring()?.search(&description(account)) {
            Ok(key) => key.read_to_vec().map(|bytes| Some(Zeroizing::new(bytes))),
            Err(KeyError::KeyDoesNotExist | KeyError::KeyExpired | KeyError::KeyRevoked) => {
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }

    pub(super) fn remember(account: &str, passphrase: &str) -> Result<(), KeyError> {
        let key = user_keyring()?.add_key(&description(account), passphrase)?;
        // A new key is readable only by processes that possess it, through their session
        // keyring. Not every process of the user has a session keyring that links the user
        // keyring (systemd services, a desktop app started outside the login session), so
        // the user is given the same rights; other users get none, as before.
        let permissions = KeyPermissionsBuilder::builder()
            .posessor(Permission::ALL)
            .user(Permission::ALL)
            .build();
        key.set_perms(permissions)
    }

    pub(super) fn forget(account: &str) -> Result<bool, KeyError> {
        match user_keyring()?.search(&description(account)) {
            Ok(key) => key.invalidate().map(|()| true),
            Err(KeyError::KeyDoesNotExist | KeyError::KeyExpired | KeyError::KeyRevoked) => {
                Ok(false)
            }
            Err(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Forgets the key's entry however the test ends, so no test leaves a secret behind.
    struct Cleanup<'a>(&'a PassphraseStore, PathBuf);

    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            let _ = self.0.forget(&self.1);
        }
    }

    /// On Linux the kernel keyring, whatever the session offers, so that the tests never touch
    /// the developer's own Secret Service; `secret_service_remembers_and_forgets` covers that one.
    fn test_store() -> PassphraseStore {
        #[cfg(target_os = "linux")]
        return PassphraseStore {
            backend: Backend::KernelKeyring,
        };
        #[cfg(not(target_os = "linux"))]
        return PassphraseStore::new();
    }

    fn key_file(dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, "not a real key").expect("write the key file");
        path
    }

    fn recalled(store: &PassphraseStore, key: &Path) -> Option<String> {
        store
            .recall(key)
            .expect("recall")
            .map(|passphrase| passphrase.as_str().to_owned())
    }

    #[test]
    fn remember_recall_forget() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = key_file(dir.path(), "userkey.pem");
        let store = test_store();
        let _cleanup = Cleanup(&store, key.clone());

        store.remember(&key, "correct horse").expect("remember");
        assert_eq!(recalled(&store, &key).as_deref(), Some("correct horse"));

        store
            .remember(&key, "battery staple")
            .expect("remember again");
        assert_eq!(recalled(&store, &key).as_deref(), Some("battery staple"));

        assert!(store.forget(&key).expect("forget"));
        assert_eq!(recalled(&store, &key), None);
        assert!(!store.forget(&key).expect("forget again"));
    }

    #[test]
    fn forgetting_nothing_is_false() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = key_file(dir.path(), "userkey.pem");
        let store = test_store();

        assert_eq!(recalled(&store, &key), None);
        assert!(!store.forget(&key).expect("forget"));
    }

    #[test]
    fn two_keys_do_not_mix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = key_file(dir.path(), "userkey.pem");
        let second = key_file(dir.path(), "other-userkey.pem");
        let store = test_store();
        let _cleanup_first = Cleanup(&store, first.clone());
        let _cleanup_second = Cleanup(&store, second.clone());

        store
            .remember(&first, "first secret")
            .expect("remember the first");
        store
            .remember(&second, "second secret")
            .expect("remember the second");
        assert_eq!(recalled(&store, &first).as_deref(), Some("first secret"));
        assert_eq!(recalled(&store, &second).as_deref(), Some("second secret"));

        assert!(store.forget(&first).expect("forget the first"));
        assert_eq!(recalled(&store, &first), None);
        assert_eq!(recalled(&store, &second).as_deref(), Some("second secret"));
    }

    #[test]
    fn another_spelling_of_the_path_finds_the_same_entry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = key_file(dir.path(), "userkey.pem");
        let store = test_store();
        let _cleanup = Cleanup(&store, key.clone());

        store.remember(&key, "one entry").expect("remember");
        let detour = dir.path().join(".").join("userkey.pem");
        assert_eq!(recalled(&store, &detour).as_deref(), Some("one entry"));
        #[cfg(unix)]
        {
            let link = dir.path().join("globus");
            std::os::unix::fs::symlink(dir.path(), &link).expect("symlink");
            let through_link = link.join("userkey.pem");
            assert_eq!(
                recalled(&store, &through_link).as_deref(),
                Some("one entry")
            );
        }
    }

    #[test]
    fn a_store_made_later_recalls_it_too() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = key_file(dir.path(), "userkey.pem");
        let store = test_store();
        let _cleanup = Cleanup(&store, key.clone());

        store.remember(&key, "kept").expect("remember");
        let later = std::thread::spawn(move || {
            let store = test_store();
            store.recall(&key).map(|p| p.map(|p| p.as_str().to_owned()))
        });
        let recalled = later.join().expect("thread").expect("recall");
        assert_eq!(recalled.as_deref(), Some("kept"));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_stored_value_that_is_not_text_is_not_shown() {
        let error = text(Zeroizing::new(b"secret\xff".to_vec()), Path::new("/k.pem"))
            .expect_err("not UTF-8");
        assert!(matches!(error, PassphraseError::NotText { .. }));
        assert!(!format!("{error} {error:?}").contains("secret"));
    }

    /// The Secret Service for real: a private session bus (`dbus-run-session`) with GNOME Keyring
    /// unlocked by a throwaway password, its files in a temporary folder, and this same test run
    /// again inside it. Needs Debian's `dbus-bin` and `gnome-keyring`.
    #[cfg(target_os = "linux")]
    #[test]
    fn secret_service_remembers_and_forgets() {
        const INSIDE: &str = "SLOOP_TEST_INSIDE_SECRET_SERVICE";
        let dir = tempfile::tempdir().expect("tempdir");
        if std::env::var_os(INSIDE).is_some() {
            let store = PassphraseStore::new();
            assert_eq!(store.backend(), "Secret Service");
            let key = key_file(dir.path(), "userkey.pem");
            let other = key_file(dir.path(), "other-userkey.pem");
            store.remember(&key, "over D-Bus").expect("remember");
            store
                .remember(&other, "the other")
                .expect("remember the other");
            assert_eq!(recalled(&store, &key).as_deref(), Some("over D-Bus"));
            assert!(store.forget(&key).expect("forget"));
            assert_eq!(recalled(&store, &key), None);
            assert!(!store.forget(&key).expect("forget again"));
            assert_eq!(recalled(&store, &other).as_deref(), Some("the other"));
            return;
        }

        let (_, name) = concat!(module_path!(), "::secret_service_remembers_and_forgets")
            .split_once("::")
            .expect("a crate name");
        let home = dir.path();
        for folder in ["data", "cache", "run"] {
            std::fs::create_dir(home.join(folder)).expect("a folder for the keyring daemon");
        }
        let unlock_then_run = "printf %s throwaway | gnome-keyring-daemon --unlock \
                               --components=secrets >/dev/null && exec \"$@\"";
        let output = std::process::Command::new("dbus-run-session")
            .args(["--", "sh", "-c", unlock_then_run, "sh"])
            .arg(std::env::current_exe().expect("this test binary"))
            .args([name, "--exact", "--nocapture", "--test-threads=1"])
            .env(INSIDE, "1")
            // Keep the daemon away from the developer's own keyrings and running daemon.
            .env("HOME", home)
            .env("XDG_DATA_HOME", home.join("data"))
            .env("XDG_CACHE_HOME", home.join("cache"))
            .env("XDG_RUNTIME_DIR", home.join("run"))
            .output()
            .expect("dbus-run-session runs; install dbus-bin and gnome-keyring");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success() && stdout.contains("1 passed"),
            "the test inside a private session bus failed (needs gnome-keyring)\n{stdout}\n{stderr}"
        );
    }

    #[test]
    fn an_empty_passphrase_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = key_file(dir.path(), "userkey.pem");
        let store = test_store();

        assert!(matches!(
            store.remember(&key, ""),
            Err(PassphraseError::Empty)
        ));
    }
}
