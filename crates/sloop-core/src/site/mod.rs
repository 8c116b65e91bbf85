//! Grid sites the user sends machines to. The first kind is an ARC Computing Element, reached
//! over its REST interface ([`arc`]) with the user's proxy; the site's own batch system runs
//! the VM job (docs/site-admins.md). Sites are a list in `data/sites.toml`.

pub mod arc;
pub mod glue2;

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use ts_rs::TS;
use url::Url;

use crate::paths::Paths;

/// The runtime environment a site offers when its admins enabled Sloop's VM jobs.
pub const RTE_NAME: &str = "ENV/SLOOP-VM";

/// A site's name: the rules of machine names (1 to 32 of `a-z`, `0-9`, `-`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SiteName(String);

impl FromStr for SiteName {
    type Err = SiteError;
    fn from_str(s: &str) -> Result<Self, SiteError> {
        s.parse::<crate::machine::MachineName>()
            .map(|_| Self(s.to_string()))
            .map_err(|_| SiteError::InvalidName(s.to_string()))
    }
}

impl TryFrom<String> for SiteName {
    type Error = SiteError;
    fn try_from(s: String) -> Result<Self, SiteError> {
        s.parse()
    }
}

impl From<SiteName> for String {
    fn from(name: SiteName) -> String {
        name.0
    }
}

impl std::fmt::Display for SiteName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, not `write_str`: table columns ({:<20}) line up.
        f.pad(&self.0)
    }
}

impl SiteName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A site the user added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct Site {
    #[ts(type = "string")]
    pub name: SiteName,
    /// The CE's endpoint, `https://host[:port]/arex`.
    pub url: String,
    /// When it was added (RFC 3339).
    pub added: String,
    /// The SSH relay (`USER@HOST[:PORT]`) interactive runs here go through unless another is
    /// given: for sites whose worker nodes take no inbound connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub relay: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SitesFile {
    #[serde(default, rename = "site")]
    sites: Vec<Site>,
}

/// What a site says about itself, live.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct SiteInfo {
    pub site: Site,
    /// REST versions it serves.
    pub rest_versions: Vec<String>,
    /// The REST endpoint's health as the CE publishes it (`ok`, `warning`, `critical`, …).
    pub health: String,
    pub health_info: Option<String>,
    pub queues: Vec<glue2::Queue>,
    /// It offers [`RTE_NAME`]: Sloop's VM jobs can run there.
    pub offers_vm_jobs: bool,
    /// The runtime environments it publishes.
    pub runtime_environments: Vec<String>,
    /// Who the site sees: the identity of the proxy used.
    pub identity: String,
}

/// A site could not be added, reached or used. One line each, naming the site and what to do.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error("{0}")]
    Invalid(String),
    #[error(
        "{0:?} is not a valid site name: use 1 to 32 lower-case letters, digits and '-', starting with a letter or digit"
    )]
    InvalidName(String),
    #[error(
        "{url:?} is not an ARC CE endpoint: give its https address, e.g. https://ce.example.org/arex ({reason})"
    )]
    InvalidUrl { url: String, reason: String },
    #[error("there is a site named {0} already; remove it first or choose another name")]
    Exists(SiteName),
    #[error("there is no site named {0}; add it with `sloop site add {0} URL`")]
    Unknown(String),
    #[error("cannot read the sites file {path}: {reason}; fix or remove it")]
    File { path: PathBuf, reason: String },
    #[error("cannot write the sites file")]
    Write(#[source] std::io::Error),
    #[error("no grid proxy at {path}; make one with `sloop proxy init`")]
    NoProxy { path: PathBuf },
    #[error(transparent)]
    Proxy(#[from] crate::proxy::ProxyError),
    #[error(
        "no grid trust anchors in {anchors}; install your grid's CA certificates there (Debian: igtf-policy-classic) or set ca_dir"
    )]
    NoAnchors { anchors: PathBuf },
    #[error("cannot set up the connection to the site: {0}")]
    Setup(String),
    #[error("site {site} ({url}) does not answer: {reason}; check the address or try later")]
    Unreachable {
        site: String,
        url: String,
        reason: String,
    },
    #[error(
        "site {site}'s host certificate ({url}) does not verify against the grid trust anchors: {reason}; check the address, or install the site's CA"
    )]
    HostCertificate {
        site: String,
        url: String,
        reason: String,
    },
    #[error(
        "site {site} refuses your identity (403); ask its admins to admit your VO or certificate"
    )]
    Forbidden { site: String },
    #[error(
        "{url} ({site}) is not an ARC CE with REST interface 1.0; check the address (it ends in /arex)"
    )]
    NotArc { site: String, url: String },
    #[error("site {site} answered unexpectedly to {what}: {detail}")]
    Protocol {
        site: String,
        what: String,
        detail: String,
    },
    #[error("site {site} refused the job: {reason}")]
    Refused { site: String, reason: String },
    #[error(
        "site {0} does not offer {RTE_NAME}; its admins can enable it: docs/site-admins.md (`sloop site rte` prints the script)"
    )]
    NoVmRuntime(String),
    #[error("the site gave an id Sloop will not use: {0:?}")]
    BadId(String),
}

fn sites_file(paths: &Paths) -> PathBuf {
    paths.data_dir.join("sites.toml")
}

/// The sites the user added, in the order added.
pub fn list(paths: &Paths) -> Result<Vec<Site>, SiteError> {
    let path = sites_file(paths);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(SiteError::File {
                path,
                reason: e.kind().to_string(),
            });
        }
    };
    let file: SitesFile = toml::from_str(&text).map_err(|e| SiteError::File {
        path: path.clone(),
        reason: e.message().to_string(),
    })?;
    Ok(file.sites)
}

/// Site `name`.
pub fn get(paths: &Paths, name: &str) -> Result<Site, SiteError> {
    list(paths)?
        .into_iter()
        .find(|s| s.name.as_str() == name)
        .ok_or_else(|| SiteError::Unknown(name.to_string()))
}

fn save(paths: &Paths, sites: Vec<Site>) -> Result<(), SiteError> {
    crate::paths::ensure_private_dir(&paths.data_dir).map_err(SiteError::Write)?;
    let text = toml::to_string(&SitesFile { sites })
        .map_err(|e| SiteError::Write(std::io::Error::other(e.to_string())))?;
    crate::fsutil::write_atomic(&sites_file(paths), text.as_bytes(), 0o600)
        .map_err(SiteError::Write)
}

/// The CE endpoint `text` names: https, a host, a path (`/arex` when none is given), nothing
/// else.
pub fn parse_endpoint(text: &str) -> Result<Url, SiteError> {
    let invalid = |reason: &str| SiteError::InvalidUrl {
        url: text.to_string(),
        reason: reason.to_string(),
    };
    let mut url = Url::parse(text).map_err(|e| invalid(&e.to_string()))?;
    if url.scheme() != "https" {
        return Err(invalid("ARC's REST interface is https only"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "no user name or password: the proxy is the credential",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("no query or fragment"));
    }
    let path = url.path().trim_end_matches('/').to_string();
    let path = if path.is_empty() {
        "/arex".to_string()
    } else {
        path
    };
    // `…/arex/rest/1.0` pasted from a browser: the endpoint is the part before `/rest`.
    let path = match path.find("/rest") {
        Some(i) if path[i..] == *"/rest" || path[i..].starts_with("/rest/") => {
            path[..i].to_string()
        }
        _ => path,
    };
    url.set_path(&path);
    Ok(url)
}

/// Adds site `name` at `url`.
pub fn add(
    paths: &Paths,
    name: &str,
    url: &str,
    now: time::OffsetDateTime,
) -> Result<Site, SiteError> {
    let name: SiteName = name.parse()?;
    let url = parse_endpoint(url)?;
    let mut sites = list(paths)?;
    if sites.iter().any(|s| s.name == name) {
        return Err(SiteError::Exists(name));
    }
    let site = Site {
        name,
        url: url.to_string(),
        added: crate::time_util::rfc3339(now),
        relay: None,
    };
    sites.push(site.clone());
    save(paths, sites)?;
    tracing::info!(site = %site.name, url = %site.url, "site added");
    Ok(site)
}

/// Sets (or, with `None`, clears) the relay interactive runs at site `name` go through.
pub fn set_relay(paths: &Paths, name: &str, relay: Option<&str>) -> Result<Site, SiteError> {
    let relay = relay
        .map(|r| {
            r.parse::<crate::relay::RelayAddr>()
                .map(|a| a.to_string())
                .map_err(|e| SiteError::Invalid(e.to_string()))
        })
        .transpose()?;
    let mut sites = list(paths)?;
    let site = sites
        .iter_mut()
        .find(|s| s.name.as_str() == name)
        .ok_or_else(|| SiteError::Unknown(name.to_string()))?;
    site.relay = relay;
    let site = site.clone();
    save(paths, sites)?;
    Ok(site)
}

/// Removes site `name` from the list (runs recorded there stay until cleaned).
pub fn remove(paths: &Paths, name: &str) -> Result<Site, SiteError> {
    let mut sites = list(paths)?;
    let index = sites
        .iter()
        .position(|s| s.name.as_str() == name)
        .ok_or_else(|| SiteError::Unknown(name.to_string()))?;
    let site = sites.remove(index);
    save(paths, sites)?;
    tracing::info!(site = %site.name, "site removed");
    Ok(site)
}

/// A client for `site` as the user of the proxy at `proxy`; the proxy must be valid now.
pub fn client(
    site: &Site,
    proxy: &Path,
    anchors: &Path,
    now: time::OffsetDateTime,
) -> Result<(arc::ArcClient, String), SiteError> {
    let info = crate::proxy::inspect(proxy, anchors, now)?.ok_or_else(|| SiteError::NoProxy {
        path: proxy.to_path_buf(),
    })?;
    if !info.is_valid_at(now) {
        return Err(crate::proxy::ProxyError::Expired {
            path: proxy.to_path_buf(),
            not_after: info.not_after.clone(),
        }
        .into());
    }
    let endpoint = parse_endpoint(&site.url)?;
    let client = arc::ArcClient::new(site.name.as_str(), &endpoint, proxy, anchors)?;
    Ok((client, info.identity))
}

/// Asks `site` how it is: versions, health, queues, and whether it runs Sloop's VM jobs.
pub async fn info(
    site: &Site,
    proxy: &Path,
    anchors: &Path,
    now: time::OffsetDateTime,
) -> Result<SiteInfo, SiteError> {
    let (client, identity) = client(site, proxy, anchors, now)?;
    let rest_versions = client.versions().await?;
    let glue = client.info().await?;
    let summary = glue2::summarise(&glue);
    Ok(SiteInfo {
        site: site.clone(),
        rest_versions,
        health: summary.health.unwrap_or_else(|| "unknown".into()),
        health_info: summary.health_info,
        queues: summary.queues,
        offers_vm_jobs: summary
            .runtime_environments
            .iter()
            .any(|r| r.eq_ignore_ascii_case(RTE_NAME)),
        runtime_environments: summary.runtime_environments,
        identity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_normalised() {
        for (given, wanted) in [
            ("https://ce.example.org", "https://ce.example.org/arex"),
            (
                "https://ce.example.org/arex/",
                "https://ce.example.org/arex",
            ),
            (
                "https://ce.example.org:8443/arex/rest/1.0",
                "https://ce.example.org:8443/arex",
            ),
            (
                "https://localhost:18443/arex",
                "https://localhost:18443/arex",
            ),
        ] {
            assert_eq!(parse_endpoint(given).unwrap().as_str(), wanted, "{given}");
        }
        for bad in [
            "http://ce.example.org/arex",
            "ce.example.org",
            "https://u:p@ce.example.org/arex",
            "https://ce.example.org/arex?x=1",
        ] {
            let message = parse_endpoint(bad).unwrap_err().to_string();
            assert!(
                message.contains("not an ARC CE endpoint"),
                "{bad}: {message}"
            );
        }
    }

    #[test]
    fn add_list_remove() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::under(dir.path().to_path_buf()).unwrap();
        let now = time::OffsetDateTime::now_utc();
        add(&paths, "test", "https://localhost:18443/arex", now).unwrap();
        assert!(matches!(
            add(&paths, "test", "https://other/arex", now),
            Err(SiteError::Exists(_))
        ));
        assert!(matches!(
            add(&paths, "Bad_Name", "https://other/arex", now),
            Err(SiteError::InvalidName(_))
        ));
        assert_eq!(list(&paths).unwrap().len(), 1);
        assert_eq!(
            get(&paths, "test").unwrap().url,
            "https://localhost:18443/arex"
        );
        remove(&paths, "test").unwrap();
        assert!(matches!(remove(&paths, "test"), Err(SiteError::Unknown(_))));
        assert!(list(&paths).unwrap().is_empty());
    }
}
