//! A shell in an interactive run's machine at its site: find where the machine answers (the
//! endpoint its VM job publishes), then log in with the run's own client key, accepting only the
//! host key Sloop made for the run at submit time, exactly as for local machines.

use std::time::Duration;

use russh::keys::{PrivateKey, PublicKey};

use super::endpoint::{self, Endpoint};
use super::{RunError, RunRecord, xrsl};
use crate::paths::Paths;
use crate::site::arc::ArcClient;
use crate::ssh::{self, ConnectPolicy, SshEndpoint};

/// Most bytes of the job's stdout read while looking for the endpoint line.
const STDOUT_BYTES: usize = 256 * 1024;

/// The run's client key (`runs/ID/ssh/client`) and pinned host key.
pub fn keys(paths: &Paths, record: &RunRecord) -> Result<(PrivateKey, PublicKey), RunError> {
    let path = super::run_dir(paths, &record.id).join("ssh").join("client");
    let text =
        zeroize::Zeroizing::new(
            std::fs::read_to_string(&path).map_err(|e| RunError::Record {
                path: path.clone(),
                reason: format!("the run's SSH key cannot be read ({})", e.kind()),
            })?,
        );
    let client = PrivateKey::from_openssh(text.as_bytes()).map_err(|_| RunError::Record {
        path: path.clone(),
        reason: "the run's SSH key is damaged".into(),
    })?;
    let host = PublicKey::from_openssh(&record.host_key).map_err(|_| RunError::Record {
        path: super::run_dir(paths, &record.id).join(super::RECORD),
        reason: "its hostKey is not an OpenSSH public key".into(),
    })?;
    Ok((client, host))
}

/// The endpoint job `job` published, if it has: the session file first, then the line on the
/// job's stdout (which reaches the CE also from a worker node's scratch folder).
pub async fn published(client: &ArcClient, job: &str) -> Result<Option<Endpoint>, RunError> {
    if let Some(bytes) = client
        .read_small(job, endpoint::FILE, endpoint::MAX_BYTES)
        .await?
        && !bytes.is_empty()
    {
        return Ok(Some(Endpoint::parse(&String::from_utf8_lossy(&bytes))?));
    }
    let Some(stdout) = client.read_small(job, xrsl::STDOUT, STDOUT_BYTES).await? else {
        return Ok(None);
    };
    Endpoint::from_stdout(&String::from_utf8_lossy(&stdout))
        .transpose()
        .map_err(RunError::from)
}

/// Logs in to the machine of `record` at `endpoint`, within `within`: directly, through the
/// run's relay when the endpoint is relayed, or through the jump host `via`.
pub async fn connect(
    paths: &Paths,
    record: &RunRecord,
    endpoint: &Endpoint,
    via: Option<&crate::relay::RelayAddr>,
    within: Duration,
) -> Result<ssh::Session, RunError> {
    let (client_key, host_key) = keys(paths, record)?;
    if via.is_some() && endpoint.relayed {
        return Err(RunError::Invalid(format!(
            "run {} is reached through its relay; --via is for machines a bastion can reach",
            record.id
        )));
    }
    if via.is_none()
        && !endpoint.relayed
        && endpoint.is_loopback()
        && !site_is_here(&record.site_url)
    {
        return Err(RunError::Invalid(format!(
            "run {}'s machine answers only on its worker node ({}): the site does not let its SSH out; use a relay (sloop run shell {} --relay USER@HOST)",
            record.id,
            endpoint.address(),
            record.id
        )));
    }
    // The job saw the machine's key: a different one is refused before connecting at all.
    let expected = ssh::fingerprint(&host_key);
    if let Some(seen) = &endpoint.host_key
        && *seen != expected
    {
        return Err(ssh::SshError::HostKeyMismatch {
            addr: endpoint.address(),
            expected,
            presented: seen.clone(),
        }
        .into());
    }
    let target = SshEndpoint {
        host: endpoint.host.clone(),
        port: endpoint.port,
        user: record.user.clone(),
    };
    if endpoint.relayed {
        // Only the relay recorded at submit is used, never one named by the site.
        let Some(relay) = &record.relay else {
            return Err(RunError::Invalid(format!(
                "run {} says it is reached through a relay, but it was submitted without one",
                record.id
            )));
        };
        let via = crate::relay::connect(relay, &crate::relay::user_ssh_dir()).await?;
        return Ok(ssh::connect_via(via, &target, &client_key, &host_key, within).await?);
    }
    if let Some(jump) = via {
        let via = crate::relay::connect_jump(jump, &crate::relay::user_ssh_dir()).await?;
        return Ok(ssh::connect_via(via, &target, &client_key, &host_key, within).await?);
    }
    Ok(ssh::connect(
        &target,
        &client_key,
        &host_key,
        ConnectPolicy::remote(within),
    )
    .await?)
}

/// The `ssh_config` block of a run whose machine answers at `endpoint` (see
/// [`crate::machine::ssh_config`]): alias `sloop-run-ID`, the run's key, its host key pinned by
/// alias in `runs/ID/ssh/known_hosts` (written here), through the run's relay (`ProxyJump`,
/// logged in to with the user's own ssh setup) when relayed. `None` when no path from here
/// exists (the machine answers only on its worker node).
pub fn ssh_config_block(
    paths: &Paths,
    record: &RunRecord,
    endpoint: &Endpoint,
) -> Result<Option<String>, RunError> {
    if !endpoint.relayed && endpoint.is_loopback() && !site_is_here(&record.site_url) {
        return Ok(None);
    }
    let alias = format!("sloop-run-{}", record.id);
    let ssh = super::run_dir(paths, &record.id).join("ssh");
    let known = ssh.join("known_hosts");
    crate::fsutil::write_atomic(
        &known,
        format!("{alias} {}\n", ssh::bare_key(&record.host_key)).as_bytes(),
        0o644,
    )
    .map_err(super::write_error(&known))?;
    let mut block = format!(
        "\nHost {alias}\n  HostName {}\n  Port {}\n  User {}\n  IdentityFile \"{}\"\n  IdentitiesOnly yes\n  HostKeyAlias {alias}\n  UserKnownHostsFile \"{}\"\n  StrictHostKeyChecking yes\n  CheckHostIP no\n",
        endpoint.host,
        endpoint.port,
        record.user,
        ssh.join("client").display(),
        known.display(),
    );
    if endpoint.relayed {
        match &record.relay {
            Some(relay) => block.push_str(&format!("  ProxyJump {}\n", relay.addr())),
            None => return Ok(None),
        }
    }
    Ok(Some(block))
}

/// The site's CE runs on this computer (a test site on loopback): its nodes' loopback is ours.
fn site_is_here(site_url: &str) -> bool {
    url::Url::parse(site_url)
        .ok()
        .and_then(|u| u.host_str().map(endpoint::is_loopback_host))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_site_on_this_computer_shares_its_loopback() {
        assert!(site_is_here("https://localhost:8443/arex"));
        assert!(site_is_here("https://127.0.0.1:8443/arex"));
        assert!(site_is_here("https://[::1]:8443/arex"));
        assert!(!site_is_here("https://ce.example.org:443/arex"));
        assert!(!site_is_here("not a url"));
    }
}
