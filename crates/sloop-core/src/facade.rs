//! [`Core`]: the one object both front ends hold. It owns where files are, the settings, the
//! libvirt connection (opened on first use, opened again after libvirt fails), the keyring, the
//! long work under way and the event stream, and it composes the workflows that the CLI and the
//! app would otherwise each write: start (then place the proxy), restart, launch (pull, create,
//! start) and proxy renewal (keyring, VOMS or not, remember, place).
//!
//! Front ends parse, render and ask the user; they do not sequence core calls themselves.

mod grid;
mod tutorial;
pub use grid::RunLogs;
pub use tutorial::{CreatedTutorial, OpenedTutorial};

use std::collections::HashMap;
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{Mutex, broadcast};
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

use crate::bundle::export::{ExportRequest, Exported};
use crate::bundle::import::{ImportRequest, Imported};
use crate::bundle::{self, BundleError, BundleReport};
use crate::catalog::{self, CatalogError, CatalogView};
use crate::config::{Config, ConfigError};
use crate::event::Event;
use crate::host::{self, HostReport};
use crate::image::{self, ImageError, ImageView};
use crate::libvirt::{Connection, LibvirtError};
use crate::machine::manifest::Resources;
use crate::machine::{self, CreateRequest, MachineError, MachineSummary};
use crate::paths::Paths;
use crate::progress::Reporter;
use crate::proxy::attach::{self, Pushed, Sources};
use crate::proxy::passphrase::{PassphraseError, PassphraseStore};
use crate::proxy::{self, MakeRequest, ProxyError, ProxyInfo, VomsTool};

/// How long a start waits for the machine's SSH login unless the caller says otherwise.
pub const START_WAIT: Duration = Duration::from_secs(300);

/// How long opening a shell in a running machine may take: it is up already, so a longer wait
/// means something is wrong.
pub const SHELL_WAIT: Duration = Duration::from_secs(20);

/// How many events a slow subscriber may fall behind before it misses some.
const EVENT_BACKLOG: usize = 1024;

/// A workflow failed: the step's own error, with its structure kept.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The config file could not be read; every command that needs the settings says so.
    #[error(transparent)]
    Config(Arc<ConfigError>),
    #[error(transparent)]
    Libvirt(#[from] LibvirtError),
    #[error(transparent)]
    Machine(#[from] MachineError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error(transparent)]
    Passphrase(#[from] PassphraseError),
    #[error(transparent)]
    Site(#[from] crate::site::SiteError),
    #[error(transparent)]
    Run(#[from] crate::run::RunError),
    #[error(transparent)]
    Tutorial(#[from] crate::tutorial::TutorialError),
    #[error("{0} is already running")]
    Busy(TaskId),
    #[error(
        "VOMS attributes need voms-proxy-init or arcproxy; install voms-clients or nordugrid-arc-client"
    )]
    NoVomsTool,
    #[error("the work stopped unexpectedly ({0}); the log may say more")]
    Internal(String),
}

impl From<tokio::task::JoinError> for CoreError {
    fn from(error: tokio::task::JoinError) -> Self {
        Self::Internal(error.to_string())
    }
}

/// Names one piece of long work, e.g. `pull:<image id>` or `start:<machine>`: what progress
/// events carry, what cancel takes, what a second click on the same button is refused by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(String);

impl TaskId {
    pub fn new(kind: &str, subject: &str) -> Self {
        Self(format!("{kind}:{subject}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for TaskId {
    fn from(task: &str) -> Self {
        Self(task.to_string())
    }
}

/// The long work under way, each with what cancels it.
#[derive(Debug, Default, Clone)]
pub struct Tasks {
    running: Arc<SyncMutex<HashMap<TaskId, CancellationToken>>>,
}

/// A registered task; dropping it (the work ended, however) removes it from the registry.
#[derive(Debug)]
pub struct TaskGuard {
    id: TaskId,
    token: CancellationToken,
    tasks: Tasks,
}

impl TaskGuard {
    pub fn id(&self) -> &TaskId {
        &self.id
    }

    /// Cancelled when someone cancels this task.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.tasks.lock().remove(&self.id);
    }
}

impl Tasks {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TaskId, CancellationToken>> {
        // A panic elsewhere while the map was held leaves it consistent: every step is one call.
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers `id`; refused while the same task runs.
    pub fn begin(&self, id: TaskId) -> Result<TaskGuard, CoreError> {
        let mut running = self.lock();
        if running.contains_key(&id) {
            return Err(CoreError::Busy(id));
        }
        let token = CancellationToken::new();
        running.insert(id.clone(), token.clone());
        Ok(TaskGuard {
            id,
            token,
            tasks: self.clone(),
        })
    }

    /// Cancels `id`; false when it was not running.
    pub fn cancel(&self, id: &TaskId) -> bool {
        self.lock().get(id).map(CancellationToken::cancel).is_some()
    }

    /// The tasks under way now, sorted.
    pub fn running(&self) -> Vec<TaskId> {
        let mut ids: Vec<_> = self.lock().keys().cloned().collect();
        ids.sort();
        ids
    }
}

/// What a new machine is made of, for [`Core::launch`].
#[derive(Debug, Clone)]
pub struct LaunchRequest {
    /// The image: identifier, SHA-512 or title (or their starts), as `image pull` takes it.
    pub image: String,
    pub name: String,
    pub resources: Resources,
    pub work_dir: Option<std::path::PathBuf>,
}

/// What a proxy renewal needs, for [`Core::renew_proxy`].
pub struct Renewal {
    pub request: MakeRequest,
    /// Ask this VO's VOMS server for attributes.
    pub vo: Option<String>,
    /// The passphrase the user typed now; without one, the keyring's is used.
    pub passphrase: Option<Zeroizing<String>>,
    /// Remember the typed passphrase in the keyring.
    pub remember: bool,
    /// Place the new proxy in the running attached machines (a front end that watches the proxy
    /// file places renewals itself).
    pub place: bool,
}

impl std::fmt::Debug for Renewal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renewal")
            .field("request", &self.request)
            .field("vo", &self.vo)
            .field("remember", &self.remember)
            .field("place", &self.place)
            .finish_non_exhaustive()
    }
}

/// What a renewal did.
#[derive(Debug)]
pub struct Renewed {
    pub proxy: ProxyInfo,
    /// The keyring's name when the passphrase was remembered; the reason when it could not be.
    pub remembered: Option<Result<&'static str, PassphraseError>>,
    /// Where the proxy was placed, and where not (empty when not asked to place).
    pub placed: Pushed,
}

/// The one object both front ends hold. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Core {
    paths: Paths,
    /// A config file that does not load is not fatal: the app still opens, and every workflow
    /// that needs the settings says what is wrong with the file.
    config: Result<Config, Arc<ConfigError>>,
    connection: Mutex<Option<Connection>>,
    keyring: PassphraseStore,
    tasks: Tasks,
    events: broadcast::Sender<Event>,
}

impl Core {
    /// A core for the files under `paths`, with the config read from there.
    pub fn new(paths: Paths) -> Self {
        let config = Config::load(&paths.config_file()).map_err(Arc::new);
        Self::with_config(paths, config)
    }

    /// A core with settings already loaded (or the reason they could not be).
    pub fn with_config(paths: Paths, config: Result<Config, Arc<ConfigError>>) -> Self {
        Self {
            paths,
            config,
            connection: Mutex::new(None),
            keyring: PassphraseStore::new(),
            tasks: Tasks::default(),
            events: broadcast::channel(EVENT_BACKLOG).0,
        }
    }

    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// The settings, or why they could not be read.
    pub fn config(&self) -> Result<&Config, CoreError> {
        self.config
            .as_ref()
            .map_err(|e| CoreError::Config(e.clone()))
    }

    pub fn keyring(&self) -> &PassphraseStore {
        &self.keyring
    }

    pub fn tasks(&self) -> &Tasks {
        &self.tasks
    }

    /// Every event the core's workflows report from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// A reporter that sends into [`Core::subscribe`]'s stream.
    pub fn reporter(&self) -> Reporter {
        let events = self.events.clone();
        Reporter::new(move |progress| {
            // Nobody listening is fine: the work goes on and its result reaches the caller.
            let _ = events.send(Event::Progress(progress));
        })
    }

    /// Sends `event` to every subscriber.
    pub fn emit(&self, event: Event) {
        let _ = self.events.send(event);
    }

    /// Tells subscribers that `task` ended, with the error's whole chain when it failed.
    pub fn finished<T, E: std::error::Error + 'static>(
        &self,
        task: &TaskId,
        result: &Result<T, E>,
    ) {
        self.emit(Event::Finished {
            task: task.as_str().to_string(),
            error: result.as_ref().err().map(|e| crate::error_chain(e)),
        });
    }

    /// The libvirt connection, opened now if it is not open yet.
    pub async fn connection(&self) -> Result<Connection, CoreError> {
        let uri = self.config()?.libvirt_uri();
        let mut slot = self.connection.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        let conn = Connection::open(&uri).await?;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Forgets the connection when `result` failed in libvirt, so that the next call opens a new
    /// one: the daemon may have restarted, and a connection to the old one never recovers.
    pub async fn after<T>(&self, result: Result<T, CoreError>) -> Result<T, CoreError> {
        let libvirt_failed = matches!(
            &result,
            Err(CoreError::Libvirt(_) | CoreError::Machine(MachineError::Libvirt(_)))
        );
        if libvirt_failed {
            *self.connection.lock().await = None;
        }
        result
    }

    /// Every machine with the state libvirt reports for it.
    pub async fn machines(&self) -> Result<Vec<MachineSummary>, CoreError> {
        let listed = async {
            let conn = self.connection().await?;
            Ok(machine::list(&self.paths, self.config()?, &conn).await?)
        }
        .await;
        self.after(listed).await
    }

    /// Machine `name`'s summary with its real state.
    pub async fn machine(&self, name: &str) -> Result<MachineSummary, CoreError> {
        let found = async {
            let manifest = machine::load(&self.paths, &name.parse().map_err(MachineError::from)?)?;
            let conn = self.connection().await?;
            Ok(machine::summary(&self.paths, self.config()?, &conn, &manifest).await?)
        }
        .await;
        self.after(found).await
    }

    /// Makes a machine from a certified, stored image; it is left stopped. Reports as
    /// `create:<name>`, including the end.
    pub async fn create(&self, request: &CreateRequest) -> Result<MachineSummary, CoreError> {
        let task = self.tasks.begin(TaskId::new("create", &request.name))?;
        let reporter = self.reporter();
        let made = async {
            let conn = self.connection().await?;
            let now = OffsetDateTime::now_utc();
            Ok(machine::create(
                &self.paths,
                self.config()?,
                &conn,
                request,
                &reporter,
                task.token(),
                now,
            )
            .await?)
        }
        .await;
        self.finished(task.id(), &made);
        self.after(made).await
    }

    /// After a start that waited for SSH: places the proxy in machine `name` when it is
    /// attached, or clears what an attach left when it was detached while stopped. Neither stops
    /// the start: a failure is logged, and the next renewal places the proxy.
    async fn settle_proxy(&self, name: &str, within: Duration) {
        let (Ok(config), Ok(parsed)) = (self.config(), name.parse()) else {
            return;
        };
        match machine::load(&self.paths, &parsed) {
            Ok(manifest) => attach::after_start(&self.paths, config, &manifest, within).await,
            Err(e) => tracing::warn!(machine = name, "proxy not placed: {e}"),
        }
    }

    /// Stops machine `name` at once.
    pub async fn force_off(&self, name: &str) -> Result<MachineSummary, CoreError> {
        let stopped = async {
            let conn = self.connection().await?;
            Ok(machine::force_off(&self.paths, self.config()?, &conn, name).await?)
        }
        .await;
        self.after(stopped).await
    }

    /// Deletes machine `name` with its overlay (the user's changes to its disk).
    pub async fn delete(&self, name: &str) -> Result<(), CoreError> {
        let deleted = async {
            let conn = self.connection().await?;
            Ok(machine::delete(&self.paths, &conn, name).await?)
        }
        .await;
        self.after(deleted).await
    }

    /// Starts machine `name` and, unless `wait` is `None`, waits for its SSH login; an attached
    /// proxy is then placed. Reports as `start:<name>`, including the end.
    pub async fn start(
        &self,
        name: &str,
        wait: Option<Duration>,
    ) -> Result<MachineSummary, CoreError> {
        let task = self.tasks.begin(TaskId::new("start", name))?;
        let reporter = self.reporter();
        let started = async {
            let conn = self.connection().await?;
            let config = self.config()?;
            let running = machine::start(&self.paths, config, &conn, name, wait, &reporter).await?;
            if let Some(within) = wait {
                self.settle_proxy(name, within).await;
            }
            Ok(running)
        }
        .await;
        self.finished(task.id(), &started);
        self.after(started).await
    }

    /// Shuts machine `name` down (ACPI), forcing it off after `grace`.
    pub async fn stop(&self, name: &str, grace: Duration) -> Result<MachineSummary, CoreError> {
        let stopped = async {
            let conn = self.connection().await?;
            Ok(machine::stop(&self.paths, self.config()?, &conn, name, grace).await?)
        }
        .await;
        self.after(stopped).await
    }

    /// Stops machine `name`, then starts it and waits for its SSH login.
    pub async fn restart(&self, name: &str) -> Result<MachineSummary, CoreError> {
        self.stop(name, machine::power::SHUTDOWN_GRACE).await?;
        self.start(name, Some(START_WAIT)).await
    }

    /// A login session in the running machine `name`, accepting only its pinned host key: for
    /// shells and commands (`sloop shell`, the app's terminal).
    pub async fn shell(&self, name: &str) -> Result<crate::ssh::Session, CoreError> {
        let name: machine::manifest::MachineName = name.parse().map_err(MachineError::from)?;
        let manifest = machine::load(&self.paths, &name)?;
        Ok(machine::power::connect(&self.paths, &manifest, SHELL_WAIT).await?)
    }

    /// Runs blocking work (file reads, signature checks) off the async threads, with the
    /// paths and settings it needs.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Paths, &Config) -> Result<T, CoreError> + Send + 'static,
    ) -> Result<T, CoreError> {
        let paths = self.paths.clone();
        let config = self.config()?.clone();
        tokio::task::spawn_blocking(move || work(&paths, &config)).await?
    }

    /// Runs every check of the host, then of the grid proxy; `fresh` boots the acceleration
    /// test guest again instead of using the cached answer.
    pub async fn check_host(&self, fresh: bool) -> Result<HostReport, CoreError> {
        let mut report = host::check_host(&self.paths, self.config()?, fresh).await;
        let proxy = self
            .blocking(|_, config| Ok(proxy::check(&config.ca_dir())))
            .await?;
        report.checks.push(proxy);
        let images = self
            .blocking(|paths, config| {
                Ok(
                    match image::list(paths, config, OffsetDateTime::now_utc()) {
                        Ok(images) => image::check(&images),
                        Err(e) => host::check(
                            host::CheckId::Images,
                            "Images",
                            host::CheckStatus::Warning,
                            format!("the images cannot be listed: {}", crate::error_chain(&e)),
                            None,
                        ),
                    },
                )
            })
            .await?;
        report.checks.push(images);
        Ok(report)
    }

    /// The proxy's status for display: the proxy (or why it cannot be read), the user's
    /// credentials, whether their passphrase is remembered.
    pub async fn proxy_status(&self) -> Result<proxy::ProxyStatus, CoreError> {
        let keyring = self.keyring.clone();
        self.blocking(move |_, config| Ok(proxy::status(config, &keyring)))
            .await
    }

    /// The user's proxy as it is now; `None` when there is none.
    pub async fn proxy_info(&self) -> Result<Option<ProxyInfo>, CoreError> {
        self.blocking(|_, config| {
            let now = OffsetDateTime::now_utc();
            Ok(proxy::inspect(
                &proxy::default_path(),
                &config.ca_dir(),
                now,
            )?)
        })
        .await
    }

    /// Every catalog, its list verified (or its cached verdict taken, when nothing it depends
    /// on changed).
    pub async fn catalogs(&self) -> Result<Vec<CatalogView>, CoreError> {
        self.blocking(|paths, config| Ok(catalog::list(paths, config, OffsetDateTime::now_utc())?))
            .await
    }

    /// Every catalog image with its local state, then stored images no catalog lists.
    pub async fn images(&self) -> Result<Vec<ImageView>, CoreError> {
        self.blocking(|paths, config| Ok(image::list(paths, config, OffsetDateTime::now_utc())?))
            .await
    }

    /// Removes an image's file from the store. Refused while a machine is built on it, and
    /// while a machine's manifest cannot be read (it might be).
    pub async fn remove_image(&self, query: &str) -> Result<ImageView, CoreError> {
        let query = query.to_string();
        self.blocking(move |paths, config| {
            let machines = paths.machines_dir();
            let in_use = |sha512: &str| {
                let all = machine::manifest::load_all(&machines)?;
                Ok(all
                    .into_iter()
                    .find(|m| m.base.sha512 == sha512)
                    .map(|m| m.name.to_string()))
            };
            let now = OffsetDateTime::now_utc();
            Ok(image::remove(paths, config, &query, now, &in_use)?)
        })
        .await
    }

    /// The task a pull of `query` runs as: named after the image, not the query, so that two
    /// queries for one image are one task.
    pub async fn pull_task(&self, query: &str) -> Result<TaskId, CoreError> {
        let images = self.images().await?;
        Ok(TaskId(image::task_name(image::find(&images, query)?)))
    }

    /// Downloads and verifies the image `query` names (resuming an interrupted download), as
    /// the task [`Core::pull_task`] names: cancellable, reporting progress and its end.
    pub async fn pull(&self, query: &str) -> Result<ImageView, CoreError> {
        let task = self.tasks.begin(self.pull_task(query).await?)?;
        let reporter = self.reporter();
        let pulled = image::pull(
            &self.paths,
            self.config()?,
            query,
            &reporter,
            task.token(),
            OffsetDateTime::now_utc(),
        )
        .await;
        self.finished(task.id(), &pulled);
        Ok(pulled?)
    }

    /// Pulls the image when it is not stored yet, makes the machine from it, starts it and waits
    /// for its SSH login: one task, `launch:<name>`, cancellable while it downloads.
    pub async fn launch(&self, request: &LaunchRequest) -> Result<MachineSummary, CoreError> {
        let task = self.tasks.begin(TaskId::new("launch", &request.name))?;
        let reporter = self.reporter();
        let made = async {
            let config = self.config()?;
            let conn = self.connection().await?;
            let now = OffsetDateTime::now_utc();
            let pulled = image::pull(
                &self.paths,
                config,
                &request.image,
                &reporter,
                task.token(),
                now,
            )
            .await?;
            let create = CreateRequest::new(
                &request.name,
                &pulled.sha512,
                request.resources.clone(),
                request.work_dir.clone(),
            );
            machine::create(
                &self.paths,
                config,
                &conn,
                &create,
                &reporter,
                task.token(),
                now,
            )
            .await?;
            let running = machine::start(
                &self.paths,
                config,
                &conn,
                &request.name,
                Some(START_WAIT),
                &reporter,
            )
            .await?;
            self.settle_proxy(&request.name, START_WAIT).await;
            Ok(running)
        }
        .await;
        self.finished(task.id(), &made);
        self.after(made).await
    }

    /// Makes a new proxy from the user's certificate: with the typed passphrase, else the one
    /// the keyring remembers; through the VOMS tool when a VO is asked for. Then remembers the
    /// typed passphrase when asked, and places the proxy in the running attached machines.
    ///
    /// A key that needs a passphrase nobody gave fails with `ProxyError::PassphraseNeeded`; a
    /// remembered one that no longer opens the key with `ProxyError::WrongPassphrase`: the front
    /// end asks the user and calls again with what they typed.
    pub async fn renew_proxy(&self, renewal: Renewal) -> Result<Renewed, CoreError> {
        let config = self.config()?;
        let key = renewal.request.key.clone();
        let passphrase = match renewal.passphrase.clone() {
            Some(typed) => Some(typed),
            None => {
                let keyring = self.keyring.clone();
                let needs = {
                    let key = key.clone();
                    tokio::task::spawn_blocking(move || proxy::needs_passphrase(&key)).await??
                };
                if needs {
                    let key = key.clone();
                    tokio::task::spawn_blocking(move || keyring.recall(&key))
                        .await?
                        .unwrap_or_else(|e| {
                            tracing::warn!("{e}");
                            None
                        })
                } else {
                    None
                }
            }
        };
        let anchors = config.ca_dir();
        let made = match renewal
            .vo
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
        {
            // Key generation and the key's decryption are CPU work: off the async threads.
            None => {
                let (request, passphrase, anchors) =
                    (renewal.request.clone(), passphrase.clone(), anchors.clone());
                tokio::task::spawn_blocking(move || {
                    proxy::make(
                        &request,
                        passphrase.as_ref().map(|p| p.as_str()),
                        &anchors,
                        OffsetDateTime::now_utc(),
                    )
                })
                .await??
            }
            Some(vo) => {
                let tool = VomsTool::find().ok_or(CoreError::NoVomsTool)?;
                let passphrase = passphrase.as_ref().map(|p| p.as_str());
                proxy::make_with_voms(tool, &renewal.request, vo, passphrase, &anchors).await?
            }
        };
        let remembered = match (renewal.remember, renewal.passphrase) {
            (true, Some(typed)) => {
                let keyring = self.keyring.clone();
                let backend = keyring.backend();
                // The proxy is made: a keyring that refuses is reported, not a failure.
                let stored =
                    tokio::task::spawn_blocking(move || keyring.remember(&key, &typed)).await?;
                if let Err(e) = &stored {
                    tracing::warn!(
                        "the passphrase was not remembered: {}",
                        crate::error_chain(e)
                    );
                }
                Some(stored.map(|()| backend))
            }
            _ => None,
        };
        let placed = if renewal.place {
            self.place_proxy().await
        } else {
            Pushed::default()
        };
        Ok(Renewed {
            proxy: made,
            remembered,
            placed,
        })
    }

    /// Exports machine `name` into a bundle (`export:<name>`, cancellable): signed with the
    /// user's grid identity unless `signed` is false, stopping the machine first when `stop`.
    pub async fn export(
        &self,
        request: &ExportRequest,
        signed: bool,
        stop: bool,
    ) -> Result<Exported, CoreError> {
        let task = self
            .tasks
            .begin(TaskId(bundle::export::task_name(&request.machine)))?;
        let reporter = self.reporter();
        let exported = async {
            // The identity first: a missing one fails before minutes of copying.
            let signer = if signed {
                Some(self.signing_identity().await?)
            } else {
                None
            };
            if stop {
                self.stop(&request.machine, machine::power::SHUTDOWN_GRACE)
                    .await?;
            }
            let conn = self.connection().await?;
            Ok(bundle::export::export(
                &self.paths,
                &conn,
                request,
                signer.as_ref(),
                &reporter,
                task.token(),
                OffsetDateTime::now_utc(),
            )
            .await?)
        }
        .await;
        self.finished(task.id(), &exported);
        self.after(exported).await
    }

    /// The user's grid identity to sign with: the proxy when valid, else the certificate and
    /// key (with the passphrase the keyring remembers, for an encrypted key).
    async fn signing_identity(&self) -> Result<bundle::SigningIdentity, CoreError> {
        let keyring = self.keyring.clone();
        Ok(tokio::task::spawn_blocking(move || {
            let credentials = proxy::UserCredentials::from_env();
            let now = OffsetDateTime::now_utc();
            let proxy_path = proxy::default_path();
            match bundle::sign::identity(&proxy_path, &credentials, None, now) {
                // No valid proxy and an encrypted key: the passphrase the keyring remembers.
                Err(bundle::sign::SignError::Proxy(ProxyError::PassphraseNeeded { .. })) => {
                    let remembered = keyring.recall(&credentials.key).ok().flatten();
                    bundle::sign::identity(
                        &proxy_path,
                        &credentials,
                        remembered.as_ref().map(|p| p.as_str()),
                        now,
                    )
                }
                other => other,
            }
        })
        .await?
        .map_err(BundleError::from)?)
    }

    /// Where machine `name` comes from: its certified base and, when imported, who changed it.
    pub async fn provenance(&self, name: &str) -> Result<bundle::MachineProvenance, CoreError> {
        let name = name.parse().map_err(MachineError::from)?;
        self.blocking(move |paths, _| Ok(bundle::machine_provenance(paths, &name)?))
            .await
    }

    /// What the bundle at `file` is and whether each of its checks holds (`verify:<file>`).
    pub async fn inspect_bundle(&self, file: &std::path::Path) -> Result<BundleReport, CoreError> {
        Ok(bundle::examine(
            &self.paths,
            self.config()?,
            file,
            &self.reporter(),
            &CancellationToken::new(),
        )
        .await?)
    }

    /// Checks the bundle at `file`; the first check that fails is the error.
    pub async fn verify_bundle(&self, file: &std::path::Path) -> Result<BundleReport, CoreError> {
        Ok(bundle::verify(
            &self.paths,
            self.config()?,
            file,
            &self.reporter(),
            &CancellationToken::new(),
        )
        .await?)
    }

    /// The task an import of `request` runs as.
    pub fn import_task(&self, request: &ImportRequest) -> Result<TaskId, CoreError> {
        Ok(TaskId(bundle::import::task_name(
            &bundle::import::target_name(request)?,
        )))
    }

    /// Makes a new machine from a bundle (`import:<name>`, cancellable; pulls the base when a
    /// subscribed list certifies it and it is not stored yet).
    pub async fn import(&self, request: &ImportRequest) -> Result<Imported, CoreError> {
        let task = self.tasks.begin(self.import_task(request)?)?;
        let reporter = self.reporter();
        let imported = async {
            let own = tokio::task::spawn_blocking(own_identity).await?;
            let conn = self.connection().await?;
            Ok(bundle::import::import(
                &self.paths,
                self.config()?,
                &conn,
                request,
                own.as_deref(),
                &reporter,
                task.token(),
            )
            .await?)
        }
        .await;
        self.finished(task.id(), &imported);
        self.after(imported).await
    }

    /// Places the current proxy in every running attached machine, and tells subscribers.
    /// Nothing is asked of libvirt when no machine is attached.
    pub async fn place_proxy(&self) -> Pushed {
        let attached = machine::manifest::load_all(&self.paths.machines_dir())
            .map(|all| all.iter().any(|m| m.proxy_attached))
            .unwrap_or(true);
        if !attached {
            return Pushed::default();
        }
        let pushed = async {
            let conn = self.connection().await?;
            let sources = Sources::from_env(self.config()?);
            Ok(attach::push_all(&self.paths, &conn, &sources).await)
        }
        .await;
        let pushed = match self.after(pushed).await {
            Ok(pushed) => pushed,
            Err(e) => Pushed {
                placed: Vec::new(),
                failed: vec![format!("every machine: {}", crate::error_chain(&e))],
            },
        };
        if !pushed.placed.is_empty() || !pushed.failed.is_empty() {
            self.emit(Event::ProxyPlaced {
                placed: pushed.placed.clone(),
                failed: pushed.failed.clone(),
            });
        }
        pushed
    }
}

/// The user's own DN, from their proxy or certificate, when either can be read: bundles they
/// signed themselves need no consent to import.
fn own_identity() -> Option<String> {
    if let Ok(Some(file)) = proxy::inspect::read(&proxy::default_path()) {
        return Some(proxy::inspect::identity_of(&file.certificates));
    }
    let credentials = proxy::UserCredentials::from_env();
    proxy::make::read_user_certificates(&credentials.certificate)
        .ok()
        .and_then(|chain| {
            chain
                .first()
                .map(|c| crate::x509::oneline(c.subject_name()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_runs_once_at_a_time_and_leaves_when_it_ends() {
        let tasks = Tasks::default();
        let first = tasks.begin(TaskId::new("pull", "abc")).unwrap();
        let again = tasks.begin(TaskId::new("pull", "abc")).unwrap_err();
        assert_eq!(again.to_string(), "pull:abc is already running");
        let other = tasks.begin(TaskId::new("pull", "def")).unwrap();
        assert_eq!(
            tasks.running(),
            vec![TaskId::from("pull:abc"), TaskId::from("pull:def")]
        );

        assert!(tasks.cancel(&TaskId::from("pull:abc")));
        assert!(first.token().is_cancelled());
        assert!(!other.token().is_cancelled());
        drop(first);
        assert!(!tasks.cancel(&TaskId::from("pull:abc")));
        assert!(tasks.begin(TaskId::new("pull", "abc")).is_ok());
    }

    #[tokio::test]
    async fn a_broken_config_is_said_by_every_workflow_that_needs_it() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::under(dir.path().to_path_buf()).unwrap();
        std::fs::create_dir_all(paths.config_file().parent().unwrap()).unwrap();
        std::fs::write(paths.config_file(), "libvirt_uri = [").unwrap();
        let core = Core::new(paths);
        let error = core.machines().await.unwrap_err();
        assert!(matches!(error, CoreError::Config(_)), "{error:?}");
        let said = crate::error_chain(&error);
        assert!(said.contains("config.toml"), "{said}");
    }

    #[tokio::test]
    async fn workflow_events_reach_every_subscriber() {
        let dir = tempfile::tempdir().unwrap();
        let core = Core::new(Paths::under(dir.path().to_path_buf()).unwrap());
        let mut first = core.subscribe();
        let mut second = core.subscribe();
        core.finished(&TaskId::from("pull:abc"), &Ok::<(), std::io::Error>(()));
        for events in [&mut first, &mut second] {
            assert_eq!(
                events.recv().await.unwrap(),
                Event::Finished {
                    task: "pull:abc".into(),
                    error: None
                }
            );
        }
    }
}
