//! The HEPiX image list format (hepixvmitrust, vmcatcher, EGI AppDB), read strictly where trust
//! depends on it and leniently where publishers differ.
//!
//! Required keys are hepixvmitrust's (`vmitrustlib.py`). A list missing one is refused; an image
//! missing one is dropped with a reason and the rest of the list kept, as vmcatcher does. AppDB
//! writes numbers as strings (`"hv:size": "121243136"`); both forms are accepted. The list may
//! come with or without the `hv:imagelist` wrapper (the deprecated form vmcatcher still reads).
//! Facts: shared/references/grid-tech.md, part 1.

use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Why a document is not a usable image list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    #[error("the signed content is not valid JSON ({0})")]
    Json(String),
    #[error("the signed content is not an image list: the top level is not a JSON object")]
    NotObject,
    #[error("the image list lacks the required key {0:?}")]
    Missing(String),
    #[error("the image list's {key:?} is not valid: {reason}")]
    Invalid { key: String, reason: String },
}

/// Who the list says signed it (`hv:endorser` / `hv:x509`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndorserClaim {
    /// `hv:dn`: the signer certificate's subject, oneline form.
    pub dn: String,
    /// `hv:ca`: the signer certificate's issuer, oneline form.
    pub ca: String,
    pub email: String,
    pub creator: String,
}

/// One image of a list (`hv:image`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageEntry {
    pub identifier: String,
    pub title: String,
    pub description: String,
    /// Bytes.
    pub size: u64,
    /// Lower-case hex SHA-512 of the whole file.
    pub sha512: String,
    /// Where to download it.
    pub uri: String,
    pub version: String,
    pub arch: String,
    pub os: String,
    pub os_version: String,
    pub comments: String,
    pub hypervisor: String,
    /// `hv:format` (AppDB), e.g. `QCOW2`, `OVA`.
    pub format: Option<String>,
    /// `hv:ram_minimum` in MiB and `hv:core_minimum` (AppDB).
    pub ram_minimum: Option<u64>,
    pub core_minimum: Option<u64>,
}

/// A parsed image list. Nothing here is trusted until `catalog::trust` has verified the
/// signature it came in and the catalog has checked the claims against it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageList {
    pub identifier: String,
    pub title: String,
    pub description: String,
    pub source: String,
    /// Where new versions of the list are published.
    pub uri: String,
    pub version: String,
    pub created: OffsetDateTime,
    pub expires: OffsetDateTime,
    pub endorser: EndorserClaim,
    /// `ad:vo` (AppDB): the VO the list is for.
    pub vo: Option<String>,
    pub images: Vec<ImageEntry>,
    /// Images left out, each with why.
    pub dropped: Vec<String>,
}

const LIST_KEYS: [&str; 8] = [
    "dc:date:created",
    "dc:date:expires",
    "dc:identifier",
    "dc:description",
    "dc:title",
    "dc:source",
    "hv:version",
    "hv:uri",
];

impl ImageList {
    /// Reads a list from the signed content's bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, ListError> {
        let document: Value =
            serde_json::from_slice(bytes).map_err(|e| ListError::Json(e.to_string()))?;
        let top = document.as_object().ok_or(ListError::NotObject)?;
        let list = match top.get("hv:imagelist") {
            Some(inner) => inner.as_object().ok_or_else(|| ListError::Invalid {
                key: "hv:imagelist".into(),
                reason: "not an object".into(),
            })?,
            None => top,
        };
        for key in LIST_KEYS {
            if !list.contains_key(key) {
                return Err(ListError::Missing(key.to_string()));
            }
        }
        let endorser = list
            .get("hv:endorser")
            .ok_or_else(|| ListError::Missing("hv:endorser".into()))?
            .get("hv:x509")
            .and_then(Value::as_object)
            .ok_or_else(|| ListError::Missing("hv:endorser/hv:x509".into()))?;
        let endorser = EndorserClaim {
            dn: text(endorser, "hv:dn").map_err(within("hv:endorser"))?,
            ca: text(endorser, "hv:ca").map_err(within("hv:endorser"))?,
            email: text(endorser, "hv:email").map_err(within("hv:endorser"))?,
            creator: text(endorser, "dc:creator").map_err(within("hv:endorser"))?,
        };
        let entries = list
            .get("hv:images")
            .ok_or_else(|| ListError::Missing("hv:images".into()))?
            .as_array()
            .ok_or_else(|| ListError::Invalid {
                key: "hv:images".into(),
                reason: "not an array".into(),
            })?;
        let mut images = Vec::new();
        let mut dropped = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            match image(entry) {
                Ok(image) => images.push(image),
                Err(e) => dropped.push(format!("image {}: {e}", index + 1)),
            }
        }
        Ok(Self {
            identifier: text(list, "dc:identifier")?,
            title: text(list, "dc:title")?,
            description: text(list, "dc:description")?,
            source: text(list, "dc:source")?,
            uri: text(list, "hv:uri")?,
            version: text(list, "hv:version")?,
            created: date(list, "dc:date:created")?,
            expires: date(list, "dc:date:expires")?,
            endorser,
            vo: optional_text(list, "ad:vo"),
            images,
            dropped,
        })
    }
}

fn within(parent: &'static str) -> impl Fn(ListError) -> ListError {
    move |e| match e {
        ListError::Missing(key) => ListError::Missing(format!("{parent}/{key}")),
        ListError::Invalid { key, reason } => ListError::Invalid {
            key: format!("{parent}/{key}"),
            reason,
        },
        other => other,
    }
}

fn image(entry: &Value) -> Result<ImageEntry, ListError> {
    let image = entry
        .get("hv:image")
        .and_then(Value::as_object)
        .ok_or_else(|| ListError::Missing("hv:image".into()))?;
    let sha512 = text(image, "sl:checksum:sha512")?.to_ascii_lowercase();
    if sha512.len() != 128 || !sha512.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ListError::Invalid {
            key: "sl:checksum:sha512".into(),
            reason: "not 128 hexadecimal digits".into(),
        });
    }
    Ok(ImageEntry {
        identifier: text(image, "dc:identifier")?,
        title: text(image, "dc:title")?,
        description: text(image, "dc:description")?,
        size: number(image, "hv:size")?.ok_or_else(|| ListError::Missing("hv:size".into()))?,
        sha512,
        uri: text(image, "hv:uri")?,
        version: text(image, "hv:version")?,
        arch: text(image, "sl:arch")?,
        os: text(image, "sl:os")?,
        os_version: text(image, "sl:osversion")?,
        comments: text(image, "sl:comments")?,
        hypervisor: text(image, "hv:hypervisor")?,
        format: optional_text(image, "hv:format"),
        ram_minimum: number(image, "hv:ram_minimum")?,
        core_minimum: number(image, "hv:core_minimum")?,
    })
}

/// A required value that publishers write as a string (numbers are accepted as their text).
fn text(object: &Map<String, Value>, key: &str) -> Result<String, ListError> {
    match object.get(key) {
        None => Err(ListError::Missing(key.to_string())),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(_) => Err(ListError::Invalid {
            key: key.to_string(),
            reason: "not a string".into(),
        }),
    }
}

fn optional_text(object: &Map<String, Value>, key: &str) -> Option<String> {
    text(object, key).ok().filter(|s| !s.is_empty())
}

/// A count that hepixvmitrust writes as a number and AppDB as a string.
fn number(object: &Map<String, Value>, key: &str) -> Result<Option<u64>, ListError> {
    let invalid = || ListError::Invalid {
        key: key.to_string(),
        reason: "not a whole number".into(),
    };
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(invalid),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| invalid()),
        Some(_) => Err(invalid()),
    }
}

/// `%Y-%m-%dT%H:%M:%SZ` as hepixvmitrust writes it, or any RFC 3339 time.
fn date(object: &Map<String, Value>, key: &str) -> Result<OffsetDateTime, ListError> {
    let value = text(object, key)?;
    OffsetDateTime::parse(&value, &Rfc3339).map_err(|_| ListError::Invalid {
        key: key.to_string(),
        reason: format!("{value:?} is not a date like 2011-03-10T17:09:12Z"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// hepixvmitrust's README example, with a real-length checksum.
    pub(crate) fn example() -> Value {
        serde_json::json!({
          "hv:imagelist": {
            "dc:date:created": "2011-03-10T17:09:12Z",
            "dc:date:expires": "2011-04-07T17:09:12Z",
            "dc:description": "a README example of an image list",
            "dc:identifier": "4e186b44-2c64-40ea-97d5-e9e5c0bce059",
            "dc:source": "example.org",
            "dc:title": "README example",
            "hv:endorser": { "hv:x509": {
                "dc:creator": "Owen Synge",
                "hv:ca": "/C=DE/O=GermanGrid/CN=GridKa-CA",
                "hv:dn": "/C=DE/O=GermanGrid/OU=DESY/CN=Owen Synge",
                "hv:email": "owen.synge@desy.de"
            } },
            "hv:images": [ { "hv:image": {
                "dc:description": "This is an README example VM",
                "dc:identifier": "488dcdc4-9ab1-4fc8-a7ba-b7a5428ecb3d",
                "dc:title": "README example VM",
                "hv:hypervisor": "kvm",
                "hv:size": 2147483648_u64,
                "hv:uri": "http://example.org/example-image.img",
                "hv:version": "1",
                "sl:arch": "x86_64",
                "sl:checksum:sha512": "AB".repeat(64),
                "sl:comments": "Vanila install with contextulization scripts",
                "sl:os": "Linux",
                "sl:osversion": "SL 5.5"
            } } ],
            "hv:uri": "http://example.org/example-image-list.image_list",
            "hv:version": "1"
          }
        })
    }

    fn parse(value: &Value) -> Result<ImageList, ListError> {
        ImageList::parse(value.to_string().as_bytes())
    }

    #[test]
    fn reads_the_hepixvmitrust_example() {
        let list = parse(&example()).unwrap();
        assert_eq!(list.identifier, "4e186b44-2c64-40ea-97d5-e9e5c0bce059");
        assert_eq!(list.endorser.dn, "/C=DE/O=GermanGrid/OU=DESY/CN=Owen Synge");
        assert_eq!(list.endorser.ca, "/C=DE/O=GermanGrid/CN=GridKa-CA");
        assert_eq!(list.created.unix_timestamp(), 1_299_776_952);
        assert_eq!(list.images.len(), 1);
        let image = &list.images[0];
        assert_eq!(image.size, 2_147_483_648);
        assert_eq!(
            image.sha512,
            "ab".repeat(64),
            "checksums compare in lower case"
        );
        assert!(list.dropped.is_empty());
    }

    #[test]
    fn accepts_appdb_numbers_as_strings_and_no_wrapper() {
        let mut value = example();
        let inner = value["hv:imagelist"].take();
        let mut unwrapped = inner;
        unwrapped["hv:images"][0]["hv:image"]["hv:size"] = "121243136".into();
        unwrapped["hv:images"][0]["hv:image"]["hv:ram_minimum"] = "512".into();
        unwrapped["ad:vo"] = "atlas".into();
        let list = parse(&unwrapped).unwrap();
        assert_eq!(list.images[0].size, 121_243_136);
        assert_eq!(list.images[0].ram_minimum, Some(512));
        assert_eq!(list.vo.as_deref(), Some("atlas"));
    }

    #[test]
    fn a_missing_list_key_refuses_the_list() {
        for key in LIST_KEYS {
            let mut value = example();
            value["hv:imagelist"].as_object_mut().unwrap().remove(key);
            assert_eq!(parse(&value), Err(ListError::Missing(key.to_string())));
        }
        let mut value = example();
        value["hv:imagelist"]["hv:endorser"]["hv:x509"]
            .as_object_mut()
            .unwrap()
            .remove("hv:dn");
        assert_eq!(
            parse(&value),
            Err(ListError::Missing("hv:endorser/hv:dn".into()))
        );
    }

    #[test]
    fn a_broken_image_is_dropped_with_its_reason() {
        let mut value = example();
        let good = value["hv:imagelist"]["hv:images"][0].clone();
        let mut no_size = good.clone();
        no_size["hv:image"]
            .as_object_mut()
            .unwrap()
            .remove("hv:size");
        let mut bad_sum = good.clone();
        bad_sum["hv:image"]["sl:checksum:sha512"] = "1234".into();
        value["hv:imagelist"]["hv:images"] = serde_json::json!([no_size, good, bad_sum]);
        let list = parse(&value).unwrap();
        assert_eq!(list.images.len(), 1);
        assert_eq!(
            list.dropped,
            vec![
                "image 1: the image list lacks the required key \"hv:size\"".to_string(),
                "image 3: the image list's \"sl:checksum:sha512\" is not valid: not 128 hexadecimal digits".to_string(),
            ]
        );
    }

    #[test]
    fn malformed_documents_are_named() {
        assert!(matches!(
            ImageList::parse(b"{\"hv:imagelist\": "),
            Err(ListError::Json(_))
        ));
        assert_eq!(ImageList::parse(b"[1]"), Err(ListError::NotObject));
        let mut value = example();
        value["hv:imagelist"]["dc:date:expires"] = "next tuesday".into();
        assert!(matches!(
            parse(&value),
            Err(ListError::Invalid { key, .. }) if key == "dc:date:expires"
        ));
        let mut value = example();
        value["hv:imagelist"]["hv:images"][0]["hv:image"]["hv:size"] = "-5".into();
        assert!(parse(&value).unwrap().images.is_empty());
    }
}
