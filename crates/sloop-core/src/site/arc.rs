//! An ARC Computing Element's REST interface, version 1.0 (ARC 6; ARC 7 serves it too), as
//! arc-ce.md section 6.2 and grid-vm-jobs.md section 3 describe it.
//!
//! Every call authenticates with the user's proxy (TLS client certificate, chain included) and
//! trusts only the grid trust anchors for the CE's host certificate: a CE is a grid service,
//! never trusted through the system's web roots. A-REX's JSON has quirks, handled here once: a
//! one-element list comes as an object, an empty list as an empty body.

use std::path::Path;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use url::Url;
use zeroize::Zeroizing;

use super::SiteError;

/// The REST version Sloop speaks.
pub const REST_VERSION: &str = "1.0";
/// How long a control call (not an upload or a download) may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Job states of REST 1.0, computed live by A-REX (not from its minute-old information cache).
pub const ALL_STATES: &[&str] = &[
    "ACCEPTING",
    "ACCEPTED",
    "PREPARING",
    "PREPARED",
    "SUBMITTING",
    "QUEUING",
    "RUNNING",
    "HELD",
    "EXITINGLRMS",
    "OTHER",
    "EXECUTED",
    "FINISHING",
    "FINISHED",
    "FAILED",
    "KILLING",
    "KILLED",
    "WIPED",
];

/// A client for one CE, as one user.
#[derive(Debug, Clone)]
pub struct ArcClient {
    site: String,
    /// `https://host:port/arex`
    endpoint: Url,
    http: reqwest::Client,
}

/// What the CE said about one job in a batch call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobReply {
    pub id: String,
    pub code: u16,
    pub reason: String,
    pub state: Option<String>,
}

impl ArcClient {
    /// A client for the CE at `endpoint` (`https://host[:port]/arex`), authenticating with the
    /// proxy at `proxy` and trusting the anchors in `anchors`.
    pub fn new(
        site: &str,
        endpoint: &Url,
        proxy: &Path,
        anchors: &Path,
    ) -> Result<Self, SiteError> {
        let identity = identity(proxy)?;
        let roots = crate::http::anchor_certificates(anchors);
        if roots.is_empty() {
            return Err(SiteError::NoAnchors {
                anchors: anchors.to_path_buf(),
            });
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("sloop/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(crate::http::CONNECT_TIMEOUT)
            .read_timeout(crate::http::READ_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .https_only(true)
            .tls_certs_only(roots)
            .identity(identity)
            .build()
            .map_err(|e| SiteError::Setup(crate::http::describe(&e)))?;
        Ok(Self {
            site: site.to_string(),
            endpoint: endpoint.clone(),
            http,
        })
    }

    fn url(&self, path: &str) -> Url {
        let mut url = self.endpoint.clone();
        let base = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base}/rest/{REST_VERSION}/{path}"));
        url
    }

    fn url_with(&self, path: &str, query: &[(&str, &str)]) -> Url {
        let mut url = self.url(path);
        url.query_pairs_mut().extend_pairs(query);
        url
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<reqwest::Response, SiteError> {
        let response = request.send().await.map_err(|e| self.transport(&e, what))?;
        let status = response.status();
        if status == StatusCode::FORBIDDEN || status == StatusCode::UNAUTHORIZED {
            return Err(SiteError::Forbidden {
                site: self.site.clone(),
            });
        }
        Ok(response)
    }

    /// A failed request, sorted: the host certificate, the connection, or the rest.
    fn transport(&self, error: &reqwest::Error, what: &str) -> SiteError {
        let chain = crate::error_chain(error);
        if chain.contains("certificate verify failed") || chain.contains("certificate verification")
        {
            let reason = chain
                .rsplit(": ")
                .next()
                .unwrap_or("certificate verify failed")
                .to_string();
            return SiteError::HostCertificate {
                site: self.site.clone(),
                url: self.endpoint.to_string(),
                reason,
            };
        }
        if chain.contains("tlsv1 alert") || chain.contains("alert certificate") {
            // The CE dropped the handshake: it did not accept our certificate.
            return SiteError::Forbidden {
                site: self.site.clone(),
            };
        }
        SiteError::Unreachable {
            site: self.site.clone(),
            url: self.endpoint.to_string(),
            reason: format!("{what}: {}", crate::http::describe(error)),
        }
    }

    fn unexpected(&self, what: &str, detail: impl Into<String>) -> SiteError {
        SiteError::Protocol {
            site: self.site.clone(),
            what: what.to_string(),
            detail: detail.into(),
        }
    }

    async fn json(&self, response: reqwest::Response, what: &str) -> Result<Value, SiteError> {
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport(&e, what))?;
        if !status.is_success() {
            return Err(self.unexpected(what, format!("HTTP {status}: {}", snippet(&body))));
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            // An empty list.
            return Ok(Value::Null);
        }
        serde_json::from_slice(&body).map_err(|e| self.unexpected(what, format!("not JSON: {e}")))
    }

    /// The REST versions the CE serves; 1.0 must be one of them.
    pub async fn versions(&self) -> Result<Vec<String>, SiteError> {
        let mut url = self.endpoint.clone();
        let base = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base}/rest"));
        let what = "the REST version";
        let response = self
            .send(
                self.http
                    .get(url)
                    .header("Accept", "application/json")
                    .timeout(CALL_TIMEOUT),
                what,
            )
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(SiteError::NotArc {
                site: self.site.clone(),
                url: self.endpoint.to_string(),
            });
        }
        let value = self
            .json(response, what)
            .await
            .map_err(|_| SiteError::NotArc {
                site: self.site.clone(),
                url: self.endpoint.to_string(),
            })?;
        let versions: Vec<String> = one_or_many(value.get("version"))
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        if !versions.iter().any(|v| v == REST_VERSION) {
            return Err(SiteError::NotArc {
                site: self.site.clone(),
                url: self.endpoint.to_string(),
            });
        }
        Ok(versions)
    }

    /// The CE's GLUE2 description (`GET /info`).
    pub async fn info(&self) -> Result<Value, SiteError> {
        let what = "the site's description";
        let response = self
            .send(
                self.http
                    .get(self.url_with("info", &[("schema", "glue2")]))
                    .header("Accept", "application/json")
                    .timeout(CALL_TIMEOUT),
                what,
            )
            .await?;
        self.json(response, what).await
    }

    /// A new delegation: its id and the CE's certificate request (PEM).
    pub async fn new_delegation(&self) -> Result<(String, Vec<u8>), SiteError> {
        let what = "a new delegation";
        let (location, body) = self
            .delegation_request("delegations".into(), "new", &[StatusCode::CREATED], what)
            .await?;
        // ARC 6.17 writes a malformed Location (`…/delegations?action=new/<id>`): the id is
        // the last path element either way.
        let id = location
            .as_deref()
            .and_then(|l| l.rsplit('/').next())
            .filter(|id| is_safe_id(id))
            .map(str::to_string)
            .ok_or_else(|| self.unexpected(what, "no delegation id in the answer"))?;
        Ok((id, body))
    }

    /// The CE's request to renew delegation `id`.
    pub async fn renew_delegation(&self, id: &str) -> Result<Vec<u8>, SiteError> {
        let path = format!("delegations/{}", checked_id(id)?);
        let ok = [StatusCode::CREATED, StatusCode::OK];
        let (_, body) = self
            .delegation_request(path, "renew", &ok, "a delegation renewal")
            .await?;
        Ok(body)
    }

    /// POSTs `?action=` to a delegation path: the answer's Location and body (the CE's
    /// certificate request) when its status is one of `ok`.
    async fn delegation_request(
        &self,
        path: String,
        action: &str,
        ok: &[StatusCode],
        what: &str,
    ) -> Result<(Option<String>, Vec<u8>), SiteError> {
        let response = self
            .send(
                self.http
                    .post(self.url_with(&path, &[("action", action)]))
                    .timeout(CALL_TIMEOUT),
                what,
            )
            .await?;
        let status = response.status();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(str::to_string);
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport(&e, what))?;
        if !ok.contains(&status) {
            return Err(self.unexpected(what, format!("HTTP {status}: {}", snippet(&body))));
        }
        Ok((location, body.to_vec()))
    }

    /// Stores the signed delegation `pem` (a proxy chain without any key) under `id`.
    pub async fn put_delegation(&self, id: &str, pem: String) -> Result<(), SiteError> {
        let what = "the delegated proxy";
        let response = self
            .send(
                self.http
                    .put(self.url(&format!("delegations/{}", checked_id(id)?)))
                    .header("Content-Type", "application/x-pem-file")
                    .body(pem)
                    .timeout(CALL_TIMEOUT),
                what,
            )
            .await?;
        let status = response.status();
        if !status.is_success() {
            let body = response.bytes().await.unwrap_or_default();
            return Err(self.unexpected(what, format!("HTTP {status}: {}", snippet(&body))));
        }
        Ok(())
    }

    /// Creates a job from its description (xRSL); the CE's id for it.
    pub async fn create_job(&self, description: &str) -> Result<String, SiteError> {
        let what = "the job";
        let response = self
            .send(
                self.http
                    .post(self.url_with("jobs", &[("action", "new")]))
                    .header("Content-Type", "application/rsl")
                    .header("Accept", "application/json")
                    .body(description.to_string())
                    .timeout(CALL_TIMEOUT),
                what,
            )
            .await?;
        let value = self.json(response, what).await?;
        let reply = job_replies(&value)
            .into_iter()
            .next()
            .ok_or_else(|| self.unexpected(what, "no job in the answer"))?;
        if reply.code != 201 || !is_safe_id(&reply.id) {
            return Err(SiteError::Refused {
                site: self.site.clone(),
                reason: reply.reason,
            });
        }
        Ok(reply.id)
    }

    /// Uploads `body` as the job's session file `name` (a relative path).
    pub async fn put_file(
        &self,
        job: &str,
        name: &str,
        body: reqwest::Body,
    ) -> Result<(), SiteError> {
        let what = format!("uploading {name}");
        let response = self
            .send(
                self.http
                    .put(self.session_url(job, name)?)
                    .header("Content-Type", "application/octet-stream")
                    .body(body),
                &what,
            )
            .await?;
        let status = response.status();
        if !status.is_success() {
            let body = response.bytes().await.unwrap_or_default();
            return Err(self.unexpected(&what, format!("HTTP {status}: {}", snippet(&body))));
        }
        Ok(())
    }

    /// Downloads the job's session file `name`: `None` when it is not there (yet).
    pub async fn get_file(
        &self,
        job: &str,
        name: &str,
    ) -> Result<Option<reqwest::Response>, SiteError> {
        let what = format!("downloading {name}");
        let response = self
            .send(self.http.get(self.session_url(job, name)?), &what)
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => Ok(Some(response)),
            status => {
                let body = response.bytes().await.unwrap_or_default();
                Err(self.unexpected(&what, format!("HTTP {status}: {}", snippet(&body))))
            }
        }
    }

    /// A small session file's bytes, at most `limit` of them; `None` when it is not there.
    pub async fn read_small(
        &self,
        job: &str,
        name: &str,
        limit: usize,
    ) -> Result<Option<Vec<u8>>, SiteError> {
        let Some(response) = self.get_file(job, name).await? else {
            return Ok(None);
        };
        let mut out = Vec::new();
        let mut stream = response.bytes_stream();
        use futures_util::StreamExt as _;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.transport(&e, name))?;
            let room = limit.saturating_sub(out.len());
            out.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if out.len() >= limit {
                break;
            }
        }
        Ok(Some(out))
    }

    /// The files and folders in the job's session folder `dir` ("" for the top).
    pub async fn list_dir(&self, job: &str, dir: &str) -> Result<Option<Listing>, SiteError> {
        let what = format!("listing {dir}");
        let mut url = self.session_url(job, dir)?;
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        let response = self
            .send(
                self.http
                    .get(url)
                    .header("Accept", "application/json")
                    .timeout(CALL_TIMEOUT),
                &what,
            )
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let value = self.json(response, &what).await?;
        let names = |key: &str| -> Vec<String> {
            one_or_many(value.get(key))
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        };
        Ok(Some(Listing {
            files: names("file"),
            dirs: names("dir"),
        }))
    }

    fn session_url(&self, job: &str, name: &str) -> Result<Url, SiteError> {
        let job = checked_id(job)?;
        let mut url = self.url(&format!("jobs/{job}/session"));
        {
            let mut segments = url
                .path_segments_mut()
                .map_err(|()| self.unexpected("a session path", "the URL cannot take a path"))?;
            for part in name.split('/').filter(|p| !p.is_empty()) {
                if part == "." || part == ".." {
                    return Err(
                        self.unexpected("a session path", format!("{name:?} leaves the job"))
                    );
                }
                segments.push(part);
            }
        }
        Ok(url)
    }

    /// A control file of the job (`status`, `failed`, `errors`, `diag`, …): A-REX's own
    /// record, live. `None` when the job has none.
    pub async fn diagnose(&self, job: &str, file: &str) -> Result<Option<String>, SiteError> {
        let what = format!("the job's {file}");
        let response = self
            .send(
                self.http
                    .get(self.url(&format!("jobs/{}/diagnose/{file}", checked_id(job)?)))
                    .timeout(CALL_TIMEOUT),
                &what,
            )
            .await?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport(&e, &what))?;
        if !status.is_success() {
            return Err(self.unexpected(&what, format!("HTTP {status}: {}", snippet(&body))));
        }
        Ok(Some(String::from_utf8_lossy(&body).into_owned()))
    }

    /// The live REST state of each of the user's jobs at this CE.
    pub async fn states(&self) -> Result<Vec<(String, String)>, SiteError> {
        let what = "the jobs' states";
        let response = self
            .send(
                self.http
                    .get(self.url_with("jobs", &[("state", &ALL_STATES.join(","))]))
                    .header("Accept", "application/json")
                    .timeout(CALL_TIMEOUT),
                what,
            )
            .await?;
        let value = self.json(response, what).await?;
        Ok(one_or_many(value.get("job"))
            .filter_map(|job| {
                Some((
                    job.get("id")?.as_str()?.to_string(),
                    job.get("state")?.as_str()?.to_string(),
                ))
            })
            .collect())
    }

    /// `action` (`kill`, `clean`, `restart`, `status`, `info`) on each of `jobs`.
    pub async fn act(&self, action: &str, jobs: &[&str]) -> Result<Vec<JobReply>, SiteError> {
        let what = format!("{action} of the job");
        let body = serde_json::json!({
            "job": jobs.iter().map(|id| serde_json::json!({"id": id})).collect::<Vec<_>>()
        });
        let response = self
            .send(
                self.http
                    .request(Method::POST, self.url_with("jobs", &[("action", action)]))
                    // Without an explicit type A-REX ignores the body (arc-ce.md pitfall 8).
                    .header("Content-Type", "application/json")
                    .header("Accept", "application/json")
                    .body(body.to_string())
                    .timeout(CALL_TIMEOUT),
                &what,
            )
            .await?;
        let value = self.json(response, &what).await?;
        Ok(job_replies(&value))
    }
}

/// A session folder's content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub files: Vec<String>,
    pub dirs: Vec<String>,
}

/// `{"job": {...}}` or `{"job": [{...}, ...]}`.
fn job_replies(value: &Value) -> Vec<JobReply> {
    one_or_many(value.get("job"))
        .filter_map(|job| {
            let code = match job.get("status-code")? {
                Value::String(s) => s.parse().ok()?,
                Value::Number(n) => u16::try_from(n.as_u64()?).ok()?,
                _ => return None,
            };
            Some(JobReply {
                id: job
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                code,
                reason: job
                    .get("reason")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                state: job.get("state").and_then(Value::as_str).map(str::to_string),
            })
        })
        .collect()
}

/// A-REX renders a one-element list as the element itself; this reads both (and nothing).
pub fn one_or_many(value: Option<&Value>) -> impl Iterator<Item = &Value> {
    let items: Vec<&Value> = match value {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.iter().collect(),
        Some(other) => vec![other],
    };
    items.into_iter()
}

/// Ids the CE gives (jobs, delegations) are letters and digits; anything else would change the
/// URL it is put in.
fn is_safe_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn checked_id(id: &str) -> Result<&str, SiteError> {
    if is_safe_id(id) {
        Ok(id)
    } else {
        Err(SiteError::BadId(id.chars().take(40).collect()))
    }
}

/// The start of an answer body for an error message, on one line.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The proxy as a TLS client identity: its certificate and chain, and its key in PKCS#8.
fn identity(proxy: &Path) -> Result<reqwest::Identity, SiteError> {
    let file = crate::proxy::inspect::read(proxy)?.ok_or_else(|| SiteError::NoProxy {
        path: proxy.to_path_buf(),
    })?;
    let mut chain = Vec::new();
    for certificate in &file.certificates {
        chain.extend_from_slice(
            &certificate
                .to_pem()
                .map_err(|e| SiteError::Setup(e.to_string()))?,
        );
    }
    let key = Zeroizing::new(
        file.key
            .private_key_to_pem_pkcs8()
            .map_err(|e| SiteError::Setup(e.to_string()))?,
    );
    reqwest::Identity::from_pkcs8_pem(&chain, &key).map_err(|e| SiteError::Setup(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_element_lists_and_empty_bodies() {
        let one: Value = serde_json::json!({"job": {"id": "a", "state": "RUNNING"}});
        let many: Value = serde_json::json!({"job": [{"id": "a"}, {"id": "b"}]});
        assert_eq!(one_or_many(one.get("job")).count(), 1);
        assert_eq!(one_or_many(many.get("job")).count(), 2);
        assert_eq!(one_or_many(Value::Null.get("job")).count(), 0);
    }

    #[test]
    fn job_replies_read_string_codes() {
        let value = serde_json::json!({"job": {"status-code": "201", "reason": "Created", "id": "3sNKDmSA", "state": "ACCEPTING"}});
        assert_eq!(
            job_replies(&value),
            vec![JobReply {
                id: "3sNKDmSA".into(),
                code: 201,
                reason: "Created".into(),
                state: Some("ACCEPTING".into())
            }]
        );
    }

    #[test]
    fn ids_cannot_change_the_url() {
        assert!(is_safe_id("ec0e18f5ad8a"));
        assert!(!is_safe_id("../x"));
        assert!(!is_safe_id("a?b"));
        assert!(!is_safe_id(""));
    }
}
