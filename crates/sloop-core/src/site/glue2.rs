//! What Sloop reads of a CE's GLUE2 description (`GET /info`, JSON): the REST endpoint's health,
//! the queues (ComputingShares) and the runtime environments (ApplicationEnvironments).
//!
//! A-REX renders GLUE2 XML as JSON: one-element lists become objects, numbers come as strings,
//! and where an element sits varies between versions. Sloop looks entities up by name anywhere
//! in the document rather than by a fixed path.

use serde::Serialize;
use serde_json::Value;
use ts_rs::TS;

use super::arc::one_or_many;

/// A queue of the site's batch system, as the CE publishes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct Queue {
    pub name: String,
    /// `production`, `closed`, …
    pub state: Option<String>,
    #[ts(type = "number | null")]
    pub free_slots: Option<u64>,
    #[ts(type = "number | null")]
    pub running: Option<u64>,
    #[ts(type = "number | null")]
    pub waiting: Option<u64>,
    /// Longest wall time a job may ask for, in seconds.
    #[ts(type = "number | null")]
    pub max_wall_time: Option<u64>,
    /// Most memory a job may ask for, in MiB.
    #[ts(type = "number | null")]
    pub max_memory_mib: Option<u64>,
}

/// The parts of a GLUE2 document Sloop shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub health: Option<String>,
    pub health_info: Option<String>,
    pub queues: Vec<Queue>,
    pub runtime_environments: Vec<String>,
}

/// Every value under `key`, anywhere in `value`, lists flattened.
fn find<'a>(value: &'a Value, key: &str, out: &mut Vec<&'a Value>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == key {
                    out.extend(one_or_many(Some(v)));
                } else {
                    find(v, key, out);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                find(item, key, out);
            }
        }
        _ => {}
    }
}

fn all<'a>(value: &'a Value, key: &str) -> Vec<&'a Value> {
    let mut out = Vec::new();
    find(value, key, &mut out);
    out
}

/// A text field: a string, a number, or an element with its text under `#text`/`_`.
fn text(value: &Value, key: &str) -> Option<String> {
    let field = one_or_many(value.get(key)).next()?;
    match field {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Object(map) => map
            .get("#text")
            .or_else(|| map.get("_"))
            .and_then(Value::as_str)
            .map(|s| s.trim().to_string()),
        _ => None,
    }
    .filter(|s| !s.is_empty())
}

fn number(value: &Value, key: &str) -> Option<u64> {
    text(value, key)?.parse().ok()
}

/// Reads what Sloop shows of a CE's GLUE2 description.
pub fn summarise(document: &Value) -> Summary {
    let endpoints = all(document, "ComputingEndpoint");
    // The REST endpoint's health; else the first endpoint's.
    let rest = endpoints
        .iter()
        .find(|e| text(e, "InterfaceName").is_some_and(|n| n == "org.nordugrid.arcrest"))
        .or_else(|| endpoints.first());
    let queues = all(document, "ComputingShare")
        .into_iter()
        .filter_map(|share| {
            let name = text(share, "MappingQueue").or_else(|| text(share, "Name"))?;
            Some(Queue {
                name,
                state: text(share, "ServingState"),
                free_slots: number(share, "FreeSlots"),
                running: number(share, "RunningJobs"),
                waiting: number(share, "WaitingJobs"),
                max_wall_time: number(share, "MaxWallTime"),
                max_memory_mib: number(share, "MaxMainMemory")
                    .or_else(|| number(share, "MaxVirtualMemory")),
            })
        })
        .collect();
    let mut runtime_environments: Vec<String> = all(document, "ApplicationEnvironment")
        .into_iter()
        .filter_map(|env| {
            let name = text(env, "AppName")?;
            Some(match text(env, "AppVersion") {
                Some(version) if !version.is_empty() => format!("{name}-{version}"),
                _ => name,
            })
        })
        .collect();
    runtime_environments.sort();
    runtime_environments.dedup();
    Summary {
        health: rest.and_then(|e| text(e, "HealthState")),
        health_info: rest.and_then(|e| text(e, "HealthStateInfo")),
        queues,
        runtime_environments,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_health_queues_and_environments() {
        let document = serde_json::json!({"Domains": {"AdminDomain": {"Services": {"ComputingService": {
            "ComputingEndpoint": [
                {"InterfaceName": "org.ogf.glue.emies.activitycreation", "HealthState": "critical"},
                {"InterfaceName": "org.nordugrid.arcrest", "HealthState": "ok", "HealthStateInfo": "fine"}
            ],
            "ComputingShare": {"Name": "fork", "MappingQueue": "fork", "ServingState": "production",
                "FreeSlots": "2", "RunningJobs": "0", "WaitingJobs": "0", "MaxWallTime": "86400"},
            "ComputingManager": {"ApplicationEnvironments": {"ApplicationEnvironment":
                {"AppName": "ENV/SLOOP-VM", "State": "installednotverified"}}}
        }}}}});
        let summary = summarise(&document);
        assert_eq!(summary.health.as_deref(), Some("ok"));
        assert_eq!(summary.health_info.as_deref(), Some("fine"));
        assert_eq!(summary.queues.len(), 1);
        assert_eq!(summary.queues[0].free_slots, Some(2));
        assert_eq!(summary.queues[0].max_wall_time, Some(86400));
        assert_eq!(summary.runtime_environments, vec!["ENV/SLOOP-VM"]);
    }
}
