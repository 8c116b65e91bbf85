//! Where an interactive run's machine answers SSH, as its VM job publishes it: a line
//! `SLOOP-ENDPOINT {json}` on the job's stdout and the session file `sloop-endpoint.json` (see
//! `assets/site/sloop-vm-job.sh`). Both come from the site: they are parsed defensively, and
//! nothing in them is trusted beyond "try to connect there": the machine must still present the
//! host key Sloop made for the run, and accept the run's client key.

use std::net::IpAddr;

use serde::Deserialize;

/// The session file the VM job writes.
pub const FILE: &str = "sloop-endpoint.json";
/// How the line on the job's stdout starts.
pub const LINE_PREFIX: &str = "SLOOP-ENDPOINT ";

/// Most bytes of an endpoint file read.
pub const MAX_BYTES: usize = 4096;

/// A published endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// A host name or IP address, as the node sees itself (`127.0.0.1`: the node only).
    pub host: String,
    pub port: u16,
    /// The fingerprint (`SHA256:…`) of the key the machine presented to the job, when the node
    /// could read it.
    pub host_key: Option<String>,
    /// `host:port` is on the run's relay (its loopback), where the job holds a reverse forward.
    pub relayed: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    v: u32,
    host: String,
    port: u32,
    #[serde(default)]
    host_key: Option<String>,
    #[serde(default)]
    relayed: bool,
}

/// Why a published endpoint was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the run's published SSH endpoint is not valid ({0})")]
pub struct BadEndpoint(String);

impl Endpoint {
    /// One endpoint in JSON (the file's content, or a line's after its prefix).
    pub fn parse(text: &str) -> Result<Self, BadEndpoint> {
        let wire: Wire = serde_json::from_str(text.trim())
            .map_err(|e| BadEndpoint(format!("not the JSON expected: {e}")))?;
        if wire.v != 1 {
            return Err(BadEndpoint(format!(
                "version {}; this Sloop reads version 1: update Sloop",
                wire.v
            )));
        }
        let port = u16::try_from(wire.port)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| BadEndpoint(format!("port {} is not a TCP port", wire.port)))?;
        if !is_host(&wire.host) {
            return Err(BadEndpoint("the host is not a host name or address".into()));
        }
        let host_key = wire.host_key.filter(|fp| {
            fp.len() <= 100
                && fp.strip_prefix("SHA256:").is_some_and(|b64| {
                    !b64.is_empty()
                        && b64
                            .bytes()
                            .all(|c| c.is_ascii_alphanumeric() || b"+/=".contains(&c))
                })
        });
        Ok(Self {
            host: wire.host,
            port,
            host_key,
            relayed: wire.relayed,
        })
    }

    /// The last endpoint line in the job's stdout, if any (a restarted job publishes again).
    pub fn from_stdout(text: &str) -> Option<Result<Self, BadEndpoint>> {
        text.lines()
            .rev()
            .find_map(|line| line.strip_prefix(LINE_PREFIX))
            .map(Self::parse)
    }

    /// The endpoint as the job publishes it (what [`Endpoint::parse`] reads back).
    pub fn to_json(&self) -> String {
        let mut value = serde_json::json!({ "v": 1, "host": self.host, "port": self.port });
        if let Some(fp) = &self.host_key {
            value["hostKey"] = serde_json::json!(fp);
        }
        if self.relayed {
            value["relayed"] = serde_json::json!(true);
        }
        value.to_string()
    }

    /// `host:port`.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Only the node itself can reach it (the job bound the machine's SSH to loopback).
    pub fn is_loopback(&self) -> bool {
        is_loopback_host(&self.host)
    }
}

/// `localhost`, or a loopback address.
pub fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A DNS name (letters, digits, `-`, `.`) or an IP address.
fn is_host(host: &str) -> bool {
    if host.parse::<IpAddr>().is_ok() {
        return true;
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && label
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_jobs_line_and_file_are_read() {
        let out = "sloop-job: 10:00:01 phase=running accel=tcg\n\
                   SLOOP-ENDPOINT {\"v\":1,\"host\":\"127.0.0.1\",\"port\":40022,\"hostKey\":\"SHA256:abc+/=\"}\n\
                   sloop-job: 10:00:09 the machine's SSH answers\n";
        let endpoint = Endpoint::from_stdout(out).unwrap().unwrap();
        assert_eq!(endpoint.address(), "127.0.0.1:40022");
        assert_eq!(endpoint.host_key.as_deref(), Some("SHA256:abc+/="));
        assert!(endpoint.is_loopback());
        let file =
            Endpoint::parse("{\"v\":1,\"host\":\"wn042.site.example\",\"port\":2222}\n").unwrap();
        assert!(!file.is_loopback());
        assert_eq!(file.host_key, None);
        assert!(Endpoint::from_stdout("sloop-job: nothing yet\n").is_none());
        assert!(!file.relayed);
        let relayed =
            Endpoint::parse("{\"v\":1,\"host\":\"127.0.0.1\",\"port\":41000,\"relayed\":true}")
                .unwrap();
        assert!(relayed.relayed);
        for endpoint in [endpoint, file, relayed] {
            assert_eq!(Endpoint::parse(&endpoint.to_json()).unwrap(), endpoint);
        }
    }

    #[test]
    fn anything_odd_from_the_site_is_refused() {
        for bad in [
            "SLOOP",
            "{\"v\":2,\"host\":\"a\",\"port\":1}",
            "{\"v\":1,\"host\":\"a b\",\"port\":22}",
            "{\"v\":1,\"host\":\"-oProxyCommand=x\",\"port\":22}",
            "{\"v\":1,\"host\":\"a\",\"port\":0}",
            "{\"v\":1,\"host\":\"a\",\"port\":70000}",
            "{\"v\":1,\"host\":\"\",\"port\":22}",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
        // A fingerprint that is not one is dropped, not shown.
        let odd =
            Endpoint::parse("{\"v\":1,\"host\":\"a\",\"port\":22,\"hostKey\":\"\\u001b[2J\"}")
                .unwrap();
        assert_eq!(odd.host_key, None);
    }
}
