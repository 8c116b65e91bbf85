//! The tutorial workflows of [`Core`]: open (verify, fetch, make, start; or resume), reset to
//! start, and the trainer's create, mirror and check.

use std::path::{Path, PathBuf};

use serde::Serialize;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use ts_rs::TS;

use super::{Core, CoreError, START_WAIT, TaskId};
use crate::bundle::export::ExportRequest;
use crate::bundle::import::ImportRequest;
use crate::libvirt::Connection;
use crate::machine::{self, CreateRequest, MachineError, MachineSummary};
use crate::progress::Reporter;
use crate::tutorial::format::{self, BundlePin, FilePin, Tutorial};
use crate::tutorial::{self, CheckItem, Opened, TutorialError, TutorialView};

/// A tutorial opened (or reset): what to show, and its machine, started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct OpenedTutorial {
    pub tutorial: TutorialView,
    pub machine: MachineSummary,
    /// The student's machine was there already (opened before): nothing was made.
    pub resumed: bool,
    /// Reset only: where the student's work directory was moved.
    pub set_aside: Option<String>,
}

/// What `tutorial create` wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct CreatedTutorial {
    pub file: String,
    pub bundle: String,
    pub material: Option<String>,
    pub signed_by: String,
}

impl Core {
    /// Every tutorial opened here.
    pub async fn tutorials(&self) -> Result<Vec<TutorialView>, CoreError> {
        self.blocking(|paths, _| Ok(tutorial::list(paths).iter().map(Opened::view).collect()))
            .await
    }

    /// The task opening the tutorial file at `location` runs as (the file is read for its name).
    pub async fn tutorial_task(&self, location: &str) -> Result<TaskId, CoreError> {
        let loaded = tutorial::load(location, &self.config()?.ca_dir()).await?;
        Ok(TaskId(tutorial::task_name(&loaded.tutorial.name)))
    }

    /// Opens the tutorial file at `location` (a path or URL): verifies it and everything it
    /// pins, fetches what is missing (its mirror first), makes the student's machine with the
    /// material at /analysis and starts it. Opened before: resumes the same machine. One task,
    /// `tutorial:<name>`, cancellable.
    ///
    /// A tutorial opened here from another version of its file is refused unless `replace`:
    /// then its machine is deleted, its work directory moved aside, and it is opened anew.
    /// Without `start` the machine is made (or found) and left as it is: a classroom prepared
    /// ahead of the lesson.
    pub async fn open_tutorial(
        &self,
        location: &str,
        replace: bool,
        start: bool,
    ) -> Result<OpenedTutorial, CoreError> {
        let loaded = tutorial::load(location, &self.config()?.ca_dir()).await?;
        let name = loaded.tutorial.name.clone();
        let task = self.tasks.begin(TaskId(tutorial::task_name(&name)))?;
        let reporter = task_reporter(self.reporter(), task.id());
        let opened = async {
            let config = self.config()?;
            let conn = self.connection().await?;
            let mut set_aside = Vec::new();
            let mut replaced = None;
            let existing = match tutorial::find(&self.paths, &name)? {
                Some(old) if old.tutorial.pins() != loaded.tutorial.pins() => {
                    if !replace {
                        return Err(TutorialError::OtherVersion { name }.into());
                    }
                    let mut old = old;
                    if machine_exists(self, &name) {
                        machine::delete(&self.paths, &conn, &name).await?;
                    }
                    tutorial::set_work_aside(&mut old, OffsetDateTime::now_utc())?;
                    set_aside = old.record.set_aside.clone();
                    replaced = set_aside.last().cloned();
                    tutorial::discard(&old.dir);
                    tracing::info!(tutorial = %name, "replacing the tutorial with another version of its file");
                    None
                }
                other => other,
            };
            let machine_here = machine_exists(self, &name);
            let (opened, resumed) = match existing {
                Some(opened) => (opened, machine_here),
                None if machine_here => {
                    return Err(TutorialError::MachineTaken { name }.into());
                }
                None => {
                    let now = OffsetDateTime::now_utc();
                    let prepared = tutorial::prepare(
                        &self.paths,
                        config,
                        &loaded,
                        &reporter,
                        task.token(),
                        now,
                    )
                    .await;
                    match prepared {
                        Ok(mut opened) => {
                            if !set_aside.is_empty() {
                                opened.record.set_aside = set_aside;
                                opened.save_record()?;
                            }
                            (opened, false)
                        }
                        Err(e) => {
                            // Nothing half-made; work directories set aside before stay.
                            tutorial::discard(&tutorial::dir(&self.paths, &name));
                            return Err(e.into());
                        }
                    }
                }
            };
            if !resumed {
                self.make_tutorial_machine(&opened, &conn, &reporter, task.token())
                    .await?;
            }
            let running = if start {
                let running = machine::start(
                    &self.paths,
                    config,
                    &conn,
                    &name,
                    Some(START_WAIT),
                    &reporter,
                )
                .await?;
                self.settle_proxy(&name, START_WAIT).await;
                running
            } else {
                let manifest = machine::load(&self.paths, &name.parse().map_err(MachineError::from)?)?;
                machine::summary(&self.paths, config, &conn, &manifest).await?
            };
            tracing::info!(tutorial = %name, resumed, start, "tutorial opened");
            Ok(OpenedTutorial {
                tutorial: opened.view(),
                machine: running,
                resumed,
                set_aside: replaced.map(|p| p.display().to_string()),
            })
        }
        .await;
        self.finished(task.id(), &opened);
        self.after(opened).await
    }

    /// Brings tutorial `name`'s machine back to the exact start (base, trainer's bundle,
    /// material), without network: the machine is made again from the verified copies, and
    /// the student's work directory is moved aside (never deleted). Task `tutorial:<name>`.
    pub async fn reset_tutorial(&self, name: &str) -> Result<OpenedTutorial, CoreError> {
        let task = self.tasks.begin(TaskId(tutorial::task_name(name)))?;
        let reporter = task_reporter(self.reporter(), task.id());
        let reset = async {
            let config = self.config()?;
            let mut opened = tutorial::find(&self.paths, name)?
                .ok_or_else(|| TutorialError::NotFound(name.to_string()))?;
            let conn = self.connection().await?;
            if machine_exists(self, name) {
                machine::delete(&self.paths, &conn, name).await?;
            }
            tutorial::set_work_aside(&mut opened, OffsetDateTime::now_utc())?;
            let set_aside = opened
                .record
                .set_aside
                .last()
                .map(|p| p.display().to_string());
            self.make_tutorial_machine(&opened, &conn, &reporter, task.token())
                .await?;
            let running = machine::start(
                &self.paths,
                config,
                &conn,
                name,
                Some(START_WAIT),
                &reporter,
            )
            .await?;
            self.settle_proxy(name, START_WAIT).await;
            tracing::info!(tutorial = %name, aside = ?set_aside, "tutorial reset to its start");
            Ok(OpenedTutorial {
                tutorial: opened.view(),
                machine: running,
                resumed: false,
                set_aside,
            })
        }
        .await;
        self.finished(task.id(), &reset);
        self.after(reset).await
    }

    /// Makes the student's machine from the tutorial's verified pieces: the material in a
    /// fresh work directory, then the trainer's bundle imported (or the bare image).
    async fn make_tutorial_machine(
        &self,
        opened: &Opened,
        conn: &Connection,
        reporter: &Reporter,
        cancel: &CancellationToken,
    ) -> Result<MachineSummary, CoreError> {
        let config = self.config()?;
        let t = &opened.tutorial;
        tutorial::fill_work_dir(opened)?;
        let work_dir = Some(opened.work_dir());
        match opened.bundle_file() {
            Some(file) => {
                let request = ImportRequest {
                    file,
                    name: Some(t.name.clone()),
                    work_dir,
                    allow_unsigned: false,
                    // Its signer is the one the tutorial pins: checked when it was fetched.
                    trust_signer: true,
                };
                let imported = crate::bundle::import::import(
                    &self.paths,
                    config,
                    conn,
                    &request,
                    None,
                    reporter,
                    cancel,
                )
                .await?;
                Ok(imported.machine)
            }
            None => {
                let now = OffsetDateTime::now_utc();
                crate::image::pull(&self.paths, config, &t.image.sha512, reporter, cancel, now)
                    .await?;
                let request =
                    CreateRequest::new(&t.name, &t.image.sha512, t.machine.into(), work_dir);
                Ok(
                    machine::create(&self.paths, config, conn, &request, reporter, cancel, now)
                        .await?,
                )
            }
        }
    }

    /// Makes a tutorial from the trainer's machine: a signed bundle of its changes, the
    /// material folder packed, and the tutorial file pinning them with the machine's catalog
    /// and image. Nothing is overwritten; a failure leaves none of the three.
    pub async fn create_tutorial(
        &self,
        request: &tutorial::CreateRequest,
        stop: bool,
    ) -> Result<CreatedTutorial, CoreError> {
        let (file, bundle_path, material_path) = request.outputs();
        for path in [&file, &bundle_path, &material_path] {
            if path.exists() {
                return Err(TutorialError::Exists(path.clone()).into());
            }
        }
        let machine = request.machine.clone();
        let (catalog, image, spec) = self
            .blocking(move |paths, _| Ok(tutorial::describe_base(paths, &machine)?))
            .await?;
        let export = ExportRequest {
            machine: request.machine.clone(),
            output: bundle_path.clone(),
            note: format!("tutorial: {}", request.title),
        };
        let exported = self.export(&export, true, stop).await?;
        let signed_by = exported.signed_by.clone().unwrap_or_default();
        let request = request.clone();
        let written = {
            let (file, bundle_path, material_path) =
                (file.clone(), bundle_path.clone(), material_path.clone());
            let signed_by = signed_by.clone();
            tokio::task::spawn_blocking(move || -> Result<bool, TutorialError> {
                let name_of = |p: &Path| {
                    p.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                };
                let material = match &request.material {
                    Some(dir) => {
                        tutorial::material::pack(dir, &material_path)?;
                        let (sha512, size) = tutorial::digest(&material_path)?;
                        Some(FilePin {
                            source: name_of(&material_path),
                            mirror: None,
                            sha512,
                            size,
                        })
                    }
                    None => None,
                };
                let (sha512, size) = tutorial::digest(&bundle_path)?;
                let t = Tutorial {
                    format: format::FORMAT,
                    name: request.name.clone().unwrap_or(request.machine.clone()),
                    title: request.title.clone(),
                    welcome: request.welcome.clone(),
                    start: request.start.clone(),
                    machine: spec,
                    catalog,
                    image,
                    bundle: Some(BundlePin {
                        source: name_of(&bundle_path),
                        mirror: None,
                        sha512,
                        size,
                        signer: signed_by,
                    }),
                    material,
                };
                let text = t.to_text();
                // What students' Sloop will read: checked by the same reader.
                Tutorial::parse(&text).map_err(|problem| TutorialError::Format {
                    location: file.display().to_string(),
                    problem,
                })?;
                tutorial::write_new(&file, text.as_bytes())?;
                Ok(t.material.is_some())
            })
            .await?
        };
        match written {
            Ok(has_material) => Ok(CreatedTutorial {
                file: file.display().to_string(),
                bundle: bundle_path.display().to_string(),
                material: has_material.then(|| material_path.display().to_string()),
                signed_by,
            }),
            Err(e) => {
                let _ = std::fs::remove_file(&bundle_path);
                let _ = std::fs::remove_file(&material_path);
                Err(e.into())
            }
        }
    }

    /// Writes an offline mirror of the tutorial at `location` into folder `target`; returns the
    /// mirror's tutorial file.
    pub async fn mirror_tutorial(
        &self,
        location: &str,
        target: &Path,
    ) -> Result<PathBuf, CoreError> {
        let config = self.config()?;
        let loaded = tutorial::load(location, &config.ca_dir()).await?;
        let task = self
            .tasks
            .begin(TaskId(tutorial::task_name(&loaded.tutorial.name)))?;
        let mirrored = tutorial::mirror(
            &self.paths,
            config,
            &loaded,
            target,
            &self.reporter(),
            task.token(),
            OffsetDateTime::now_utc(),
        )
        .await;
        self.finished(task.id(), &mirrored);
        Ok(mirrored?)
    }

    /// Checks every location the tutorial at `location` names; each item says how it went.
    pub async fn check_tutorial(&self, location: &str) -> Result<Vec<CheckItem>, CoreError> {
        let config = self.config()?;
        let loaded = tutorial::load(location, &config.ca_dir()).await?;
        Ok(tutorial::check(
            config,
            &loaded,
            &self.reporter(),
            &CancellationToken::new(),
            OffsetDateTime::now_utc(),
        )
        .await?)
    }
}

/// `reporter`, with every step of the work (the image's pull, the bundle's import, the start)
/// reported under the tutorial's own task: one bar, one task to cancel.
fn task_reporter(reporter: Reporter, task: &TaskId) -> Reporter {
    let task = task.to_string();
    Reporter::new(move |mut progress| {
        progress.task.clone_from(&task);
        reporter.progress(progress);
    })
}

fn machine_exists(core: &Core, name: &str) -> bool {
    machine::manifest::file_in(&core.paths.machine_dir(name)).exists()
}
