//! VOMS attribute certificates carried in a proxy (the `acseq` extension).
//!
//! A VOMS server vouches for the user's VO membership with an RFC 5755 attribute certificate
//! (AC); `voms-proxy-init` and `arcproxy` put it in the proxy certificate's non-critical extension
//! `1.3.6.1.4.1.8005.100.100.5`. This module reads what the proxy view shows of it (VO, FQANs,
//! VOMS server, validity), like `voms-proxy-info -all` and `arcproxy -I` do. It does not verify
//! the AC's signature or the VOMS server's chain: the grid services that receive the proxy do
//! that, and the user only needs to see what the proxy claims.
//!
//! The layout (italiangrid/voms `src/ac/newformat.c`, RFC 5755):
//!
//! ```text
//! AC_SEQ  ::= SEQUENCE { acs SEQUENCE OF AttributeCertificate }
//! AttributeCertificate ::= SEQUENCE { acinfo AttributeCertificateInfo, signatureAlgorithm, signature }
//! AttributeCertificateInfo ::= SEQUENCE {
//!     version INTEGER, holder Holder, issuer AttCertIssuer, signature AlgorithmIdentifier,
//!     serialNumber INTEGER, attrCertValidityPeriod SEQUENCE { notBefore, notAfter GeneralizedTime },
//!     attributes SEQUENCE OF Attribute, issuerUniqueID OPTIONAL, extensions OPTIONAL }
//! Holder ::= SEQUENCE { baseCertificateID [0] IMPLICIT IssuerSerial OPTIONAL,
//!                       entityName [1] IMPLICIT GeneralNames OPTIONAL, ... }
//! AttCertIssuer ::= CHOICE { v1Form GeneralNames, v2Form [0] IMPLICIT V2Form }
//! Attribute 1.3.6.1.4.1.8005.100.100.4 (VOMS "idatcap") ::= SET OF IetfAttrSyntax
//! IetfAttrSyntax ::= SEQUENCE { policyAuthority [0] IMPLICIT GeneralNames OPTIONAL,
//!                               values SEQUENCE OF CHOICE { OCTET STRING, OID, UTF8String } }
//! ```
//!
//! Decoding walks the few fields it reads one DER element at a time with `asn1_rs::Any` (through
//! `x509-parser`'s re-export), rather than deriving the whole RFC 5755 type tree: asn1-rs does
//! the tag and length decoding, which is where truncated or hostile input goes wrong, and each
//! layout check stays explicit here. The derive would need the CHOICEs and IMPLICIT tags above
//! modelled and asn1-rs as a direct dependency for its macros, for fields we never read.

use serde::Serialize;
use time::OffsetDateTime;
use ts_rs::TS;
use x509_parser::asn1_rs::{Any, Class, FromDer, GeneralizedTime, Tag};
use x509_parser::certificate::X509Certificate;

/// OID of the extension holding VOMS attribute certificates.
pub const ACSEQ_OID: &str = "1.3.6.1.4.1.8005.100.100.5";

/// The AC attribute holding the VOMS policy authority and FQANs ("idatcap",
/// 1.3.6.1.4.1.8005.100.100.4), as DER content: compared byte for byte, so that no OID from the
/// input is ever decoded into text.
const VOMS_ATTRIBUTE_OID_DER: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0xbe, 0x45, 0x64, 0x64, 0x04];

/// GeneralName tags (RFC 5280): `directoryName [4]`, `uniformResourceIdentifier [6]`.
const DIRECTORY_NAME: u32 = 4;
const URI: u32 = 6;

/// What one VOMS attribute certificate in a proxy says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct VomsAttributes {
    /// The VO, e.g. `atlas`: the name before `://` in the AC's policy authority, as
    /// `voms-proxy-info` and `arcproxy` show it; without one, the first path component of the
    /// first FQAN. VOMS requires every FQAN to start with `/<vo>`, so the two agree.
    pub vo: String,
    /// The granted attributes in order, e.g. `/atlas/Role=NULL/Capability=NULL`.
    pub fqans: Vec<String>,
    /// The VOMS server that signed the AC, oneline form (`/DC=ch/DC=cern/.../CN=voms2.cern.ch`).
    pub issuer: String,
    /// The DN the AC names its holder by, oneline form: the issuer in the holder's
    /// `baseCertificateID`. VOMS servers (RFC 5755 format) put the issuer, the CA, of the user's
    /// certificate there; old-format ACs, such as `voms-proxy-fake` makes without `-newformat`,
    /// put the user's own subject. Without a `baseCertificateID`, the `entityName` DN; empty
    /// when neither holds a directory name.
    pub holder: String,
    /// The VOMS server's `host:port`, from the policy authority `<vo>://host:port` (the `uri`
    /// line of `voms-proxy-info`); `None` when the AC has none.
    pub uri: Option<String>,
    /// Start of the AC's validity, RFC 3339 UTC.
    pub not_before: String,
    /// End of the AC's validity, RFC 3339 UTC.
    pub not_after: String,
    /// Seconds from the given moment until `not_after`; negative once expired.
    #[ts(type = "number")]
    pub seconds_left: i64,
}

/// The VOMS extension, or the certificate holding it, could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VomsError {
    #[error("the certificate is not valid DER: {reason}")]
    Certificate { reason: String },
    #[error("the VOMS extension is not valid DER: {reason}")]
    Der { reason: String },
    #[error("the VOMS extension is not laid out as attribute certificates: {reason}")]
    Layout { reason: String },
    #[error("a VOMS attribute certificate names no VO (no policy authority and no FQAN)")]
    NoVo,
}

/// Parses the DER value (the content of the extension's OCTET STRING) of an acseq extension.
pub fn parse_acseq(der: &[u8], now: OffsetDateTime) -> Result<Vec<VomsAttributes>, VomsError> {
    let mut top = Elements::new(der);
    let sequence = top.expect_sequence("the attribute certificate sequence")?;
    top.expect_end("the attribute certificate sequence")?;
    let mut fields = Elements::new(sequence.any.data);
    let list = fields.expect_sequence("the attribute certificate list")?;
    fields.expect_end("the attribute certificate sequence")?;

    let mut certificates = Elements::new(list.any.data);
    let mut out = Vec::new();
    while !certificates.is_empty() {
        let certificate = certificates.expect_sequence("an attribute certificate")?;
        out.push(parse_attribute_certificate(certificate.any.data, now)?);
    }
    Ok(out)
}

/// Finds the acseq extension in a certificate (DER of the whole certificate) and parses it;
/// `Ok(empty)` when absent.
pub fn from_certificate(
    certificate_der: &[u8],
    now: OffsetDateTime,
) -> Result<Vec<VomsAttributes>, VomsError> {
    let (_, certificate) =
        X509Certificate::from_der(certificate_der).map_err(|e| VomsError::Certificate {
            reason: e.to_string(),
        })?;
    match certificate
        .extensions()
        .iter()
        .find(|extension| extension.oid.to_id_string() == ACSEQ_OID)
    {
        Some(extension) => parse_acseq(extension.value, now),
        None => Ok(Vec::new()),
    }
}

/// One `AttributeCertificate`'s content: only its `acinfo` is read; the signature is not checked.
fn parse_attribute_certificate(
    content: &[u8],
    now: OffsetDateTime,
) -> Result<VomsAttributes, VomsError> {
    let mut fields = Elements::new(content);
    let info = fields.expect_sequence("the attribute certificate information")?;
    let mut info = Elements::new(info.any.data);

    info.expect_universal(Tag::Integer, "the attribute certificate version")?;
    let holder = info.expect_sequence("the holder")?;
    let holder = holder_name(holder.any.data)?;
    let issuer = attribute_certificate_issuer(&mut info)?;
    info.expect_sequence("the signature algorithm")?;
    info.expect_universal(Tag::Integer, "the serial number")?;
    let validity = info.expect_sequence("the validity period")?;
    let (not_before, not_after) = validity_period(validity.any.data)?;
    let attributes = info.expect_sequence("the attributes")?;
    let voms = voms_attributes(attributes.any.data)?;
    // issuerUniqueID and the AC extensions (certseq, noRevAvail, ...) are not shown.

    let vo = match &voms.policy_authority {
        Some(authority) => authority
            .split_once("://")
            .map_or(authority.as_str(), |(vo, _)| vo)
            .to_string(),
        None => voms
            .fqans
            .first()
            .and_then(|fqan| fqan.split('/').nth(1))
            .unwrap_or_default()
            .to_string(),
    };
    if vo.is_empty() {
        return Err(VomsError::NoVo);
    }
    let uri = voms.policy_authority.map(|authority| {
        authority
            .split_once("://")
            .map_or(authority.as_str(), |(_, rest)| rest)
            .to_string()
    });
    Ok(VomsAttributes {
        vo,
        fqans: voms.fqans,
        issuer,
        holder,
        uri,
        not_before: crate::time_util::rfc3339(not_before),
        not_after: crate::time_util::rfc3339(not_after),
        seconds_left: (not_after - now).whole_seconds(),
    })
}

/// `Holder`'s content: the `baseCertificateID` issuer DN, else the `entityName` DN, else empty.
fn holder_name(content: &[u8]) -> Result<String, VomsError> {
    let mut fields = Elements::new(content);
    while !fields.is_empty() {
        let field = fields.next("a holder field")?;
        match (field.any.class(), field.any.tag().0) {
            // IssuerSerial ::= SEQUENCE { issuer GeneralNames, serial INTEGER, ... }, IMPLICIT.
            (Class::ContextSpecific, 0) => {
                require_constructed(&field.any, "the holder's base certificate")?;
                let mut issuer_serial = Elements::new(field.any.data);
                let names = issuer_serial.expect_sequence("the holder's issuer names")?;
                return Ok(first_directory_name(names.any.data)?.unwrap_or_default());
            }
            // entityName [1] IMPLICIT GeneralNames: the GeneralName elements directly.
            (Class::ContextSpecific, 1) => {
                require_constructed(&field.any, "the holder's entity name")?;
                return Ok(first_directory_name(field.any.data)?.unwrap_or_default());
            }
            _ => {}
        }
    }
    Ok(String::new())
}

/// `AttCertIssuer`: `v2Form [0]` (RFC 5755, what VOMS writes) or the old `v1Form GeneralNames`.
fn attribute_certificate_issuer(info: &mut Elements<'_>) -> Result<String, VomsError> {
    let issuer = info.next("the attribute certificate issuer")?;
    let names = match (issuer.any.class(), issuer.any.tag()) {
        (Class::ContextSpecific, Tag(0)) => {
            require_constructed(&issuer.any, "the attribute certificate issuer")?;
            // V2Form ::= SEQUENCE { issuerName GeneralNames OPTIONAL, ... }, IMPLICIT.
            let mut form = Elements::new(issuer.any.data);
            if form.is_empty() {
                return Err(layout("the attribute certificate issuer has no name"));
            }
            form.expect_sequence("the attribute certificate issuer's names")?
                .any
                .data
        }
        (Class::Universal, Tag::Sequence) => {
            require_constructed(&issuer.any, "the attribute certificate issuer")?;
            issuer.any.data
        }
        _ => {
            return Err(layout(
                "the attribute certificate issuer has an unexpected tag",
            ));
        }
    };
    first_directory_name(names)?
        .ok_or_else(|| layout("the attribute certificate issuer has no directory name"))
}

/// The first `directoryName` among GeneralName elements, oneline form.
fn first_directory_name(general_names: &[u8]) -> Result<Option<String>, VomsError> {
    let mut names = Elements::new(general_names);
    while !names.is_empty() {
        let name = names.next("a general name")?;
        if name.any.class() == Class::ContextSpecific && name.any.tag().0 == DIRECTORY_NAME {
            // directoryName [4] is EXPLICIT (Name is a CHOICE): it wraps the Name's SEQUENCE.
            require_constructed(&name.any, "a directory name")?;
            let mut inner = Elements::new(name.any.data);
            let distinguished = inner.expect_sequence("a distinguished name")?;
            inner.expect_end("a directory name")?;
            return oneline(distinguished.raw).map(Some);
        }
    }
    Ok(None)
}

/// A DER `Name` in OpenSSL's oneline form, formatted by the same code as every other DN Sloop
/// shows (and as `voms-proxy-info` prints them).
fn oneline(name_der: &[u8]) -> Result<String, VomsError> {
    let name = openssl::x509::X509Name::from_der(name_der)
        .map_err(|_| layout("a distinguished name is not valid"))?;
    Ok(crate::x509::oneline(&name))
}

/// `attrCertValidityPeriod`'s content: notBefore and notAfter.
fn validity_period(content: &[u8]) -> Result<(OffsetDateTime, OffsetDateTime), VomsError> {
    let mut fields = Elements::new(content);
    let not_before = generalized_time(&mut fields, "the start of validity")?;
    let not_after = generalized_time(&mut fields, "the end of validity")?;
    Ok((not_before, not_after))
}

fn generalized_time(
    fields: &mut Elements<'_>,
    what: &'static str,
) -> Result<OffsetDateTime, VomsError> {
    let element = fields.expect_universal(Tag::GeneralizedTime, what)?;
    GeneralizedTime::try_from(&element.any)
        .and_then(|time| time.utc_datetime())
        .map_err(|e| VomsError::Der {
            reason: format!("{what} is not a valid time ({e})"),
        })
}

/// What the VOMS attribute (`idatcap`) of one AC holds.
#[derive(Debug, Default)]
struct VomsAttributeValues {
    /// The first policy authority URI, `<vo>://host:port`.
    policy_authority: Option<String>,
    fqans: Vec<String>,
}

/// `attributes`' content: the FQANs and policy authority of every `idatcap` attribute; other
/// attributes are skipped.
fn voms_attributes(content: &[u8]) -> Result<VomsAttributeValues, VomsError> {
    let mut values = VomsAttributeValues::default();
    let mut attributes = Elements::new(content);
    while !attributes.is_empty() {
        let attribute = attributes.expect_sequence("an attribute")?;
        let mut fields = Elements::new(attribute.any.data);
        let kind = fields.expect_universal(Tag::Oid, "an attribute's type")?;
        let set = fields.expect_universal(Tag::Set, "an attribute's values")?;
        require_constructed(&set.any, "an attribute's values")?;
        if kind.any.data != VOMS_ATTRIBUTE_OID_DER {
            continue;
        }
        let mut syntaxes = Elements::new(set.any.data);
        while !syntaxes.is_empty() {
            let syntax = syntaxes.expect_sequence("a VOMS attribute")?;
            ietf_attribute_syntax(syntax.any.data, &mut values)?;
        }
    }
    Ok(values)
}

/// `IetfAttrSyntax`'s content: `policyAuthority [0] GeneralNames OPTIONAL`, then the values.
fn ietf_attribute_syntax(
    content: &[u8],
    values: &mut VomsAttributeValues,
) -> Result<(), VomsError> {
    let mut fields = Elements::new(content);
    let mut element = fields.next("a VOMS attribute's values")?;
    if element.any.class() == Class::ContextSpecific && element.any.tag().0 == 0 {
        require_constructed(&element.any, "the policy authority")?;
        let mut names = Elements::new(element.any.data);
        while !names.is_empty() {
            let name = names.next("a policy authority name")?;
            if name.any.class() == Class::ContextSpecific
                && name.any.tag().0 == URI
                && values.policy_authority.is_none()
            {
                values.policy_authority = Some(text(name.any.data));
            }
        }
        element = fields.next("a VOMS attribute's values")?;
    }
    if element.any.class() != Class::Universal || element.any.tag() != Tag::Sequence {
        return Err(layout("a VOMS attribute's values are not a SEQUENCE"));
    }
    require_constructed(&element.any, "a VOMS attribute's values")?;
    let mut fqans = Elements::new(element.any.data);
    while !fqans.is_empty() {
        let fqan = fqans.next("an FQAN")?;
        // VOMS writes OCTET STRINGs; the syntax also allows UTF8String text and OIDs (not FQANs).
        if fqan.any.class() == Class::Universal
            && matches!(fqan.any.tag(), Tag::OctetString | Tag::Utf8String)
        {
            values.fqans.push(text(fqan.any.data));
        }
    }
    Ok(())
}

/// Bytes from the AC as display text: invalid UTF-8 and control characters (which could steer a
/// terminal) become U+FFFD.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

fn layout(reason: &str) -> VomsError {
    VomsError::Layout {
        reason: reason.to_string(),
    }
}

fn require_constructed(any: &Any<'_>, what: &str) -> Result<(), VomsError> {
    if any.header.is_constructed() {
        Ok(())
    } else {
        Err(layout(&format!("{what} is not a constructed element")))
    }
}

/// One DER element: asn1-rs's view of it, and its whole encoding (header included).
struct Element<'a> {
    any: Any<'a>,
    raw: &'a [u8],
}

/// The DER elements of a content, read in order.
struct Elements<'a> {
    rest: &'a [u8],
}

impl<'a> Elements<'a> {
    fn new(content: &'a [u8]) -> Self {
        Self { rest: content }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next element, whatever its tag; `what` names it in the error.
    fn next(&mut self, what: &str) -> Result<Element<'a>, VomsError> {
        if self.rest.is_empty() {
            return Err(layout(&format!("{what} is missing")));
        }
        let before = self.rest;
        let (rest, any) = Any::from_der(before).map_err(|e| VomsError::Der {
            reason: format!("cannot read {what} ({e})"),
        })?;
        let used = before.len().saturating_sub(rest.len());
        let raw = before.get(..used).ok_or_else(|| VomsError::Der {
            reason: format!("cannot read {what}"),
        })?;
        self.rest = rest;
        Ok(Element { any, raw })
    }

    /// The next element, which must be a universal `tag`.
    fn expect_universal(&mut self, tag: Tag, what: &str) -> Result<Element<'a>, VomsError> {
        let element = self.next(what)?;
        if element.any.class() != Class::Universal || element.any.tag() != tag {
            return Err(layout(&format!("{what} has an unexpected tag")));
        }
        Ok(element)
    }

    /// The next element, which must be a SEQUENCE.
    fn expect_sequence(&mut self, what: &str) -> Result<Element<'a>, VomsError> {
        let element = self.expect_universal(Tag::Sequence, what)?;
        require_constructed(&element.any, what)?;
        Ok(element)
    }

    /// Nothing may follow.
    fn expect_end(&self, what: &str) -> Result<(), VomsError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(layout(&format!("unexpected data after {what}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::parse_oneline;

    /// A DER element: tag byte, definite length, content.
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let length = content.len();
        if length < 0x80 {
            out.push(u8::try_from(length).unwrap());
        } else {
            let bytes: Vec<u8> = length
                .to_be_bytes()
                .into_iter()
                .skip_while(|b| *b == 0)
                .collect();
            out.push(0x80 | u8::try_from(bytes.len()).unwrap());
            out.extend(bytes);
        }
        out.extend_from_slice(content);
        out
    }

    fn sequence(parts: &[Vec<u8>]) -> Vec<u8> {
        tlv(0x30, &parts.concat())
    }

    fn name(dn: &str) -> Vec<u8> {
        parse_oneline(dn).unwrap().to_der().unwrap()
    }

    /// GeneralNames with one directoryName.
    fn directory_names(dn: &str) -> Vec<u8> {
        sequence(&[tlv(0xa4, &name(dn))])
    }

    fn oid(der_content: &[u8]) -> Vec<u8> {
        tlv(0x06, der_content)
    }

    /// 1.3.6.1.4.1.8005.100.100.10 (certseq), DER content.
    const CERTSEQ: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0xbe, 0x45, 0x64, 0x64, 0x0a];

    struct Ac<'a> {
        vo_uri: Option<&'a str>,
        fqans: &'a [&'a str],
        not_before: &'a str,
        not_after: &'a str,
        /// v2Form `[0]` (RFC 5755) or the old bare GeneralNames.
        v2_form: bool,
    }

    impl Default for Ac<'_> {
        fn default() -> Self {
            Ac {
                vo_uri: Some("atlas://voms.example.org:15001"),
                fqans: &["/atlas/Role=NULL/Capability=NULL", "/atlas/lcg1/Role=NULL"],
                not_before: "20250101000000Z",
                not_after: "20250101120000Z",
                v2_form: true,
            }
        }
    }

    /// The content of an AttributeCertificateInfo.
    fn attribute_certificate_info(ac: &Ac<'_>) -> Vec<u8> {
        let holder = sequence(&[tlv(
            0xa0,
            &[
                directory_names("/DC=org/DC=example/CN=Example CA"),
                tlv(0x02, &[0x12, 0x34]),
            ]
            .concat(),
        )]);
        let issuer_names = directory_names("/DC=org/DC=example/CN=voms.example.org");
        let issuer = if ac.v2_form {
            tlv(0xa0, &issuer_names)
        } else {
            issuer_names
        };
        let algorithm = sequence(&[oid(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b])]);
        let validity = sequence(&[
            tlv(0x18, ac.not_before.as_bytes()),
            tlv(0x18, ac.not_after.as_bytes()),
        ]);
        let mut syntax = Vec::new();
        if let Some(uri) = ac.vo_uri {
            syntax.push(tlv(0xa0, &tlv(0x86, uri.as_bytes())));
        }
        let values: Vec<Vec<u8>> = ac
            .fqans
            .iter()
            .map(|fqan| tlv(0x04, fqan.as_bytes()))
            .collect();
        syntax.push(sequence(&values));
        let attributes = sequence(&[
            // An attribute VOMS does not define comes first: it must be skipped.
            sequence(&[oid(CERTSEQ), tlv(0x31, &tlv(0x04, b"other"))]),
            sequence(&[oid(VOMS_ATTRIBUTE_OID_DER), tlv(0x31, &sequence(&syntax))]),
        ]);
        [
            tlv(0x02, &[1]),
            holder,
            issuer,
            algorithm,
            tlv(0x02, &[7]),
            validity,
            attributes,
            extensions(),
        ]
        .concat()
    }

    /// The AC's extensions (noRevAvail), which the parser skips.
    fn extensions() -> Vec<u8> {
        sequence(&[sequence(&[oid(&[0x55, 0x1d, 0x38]), tlv(0x04, &[5, 0])])])
    }

    /// An AttributeCertificate around `info_content`, with a dummy signature.
    fn wrap_info(info_content: &[u8]) -> Vec<u8> {
        let algorithm = sequence(&[oid(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b])]);
        sequence(&[
            tlv(0x30, info_content),
            algorithm,
            tlv(0x03, &[0, 0xde, 0xad]),
        ])
    }

    fn attribute_certificate(ac: &Ac<'_>) -> Vec<u8> {
        wrap_info(&attribute_certificate_info(ac))
    }

    fn acseq(certificates: &[Vec<u8>]) -> Vec<u8> {
        sequence(&[sequence(certificates)])
    }

    fn at(text: &str) -> OffsetDateTime {
        OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap()
    }

    #[test]
    fn reads_vo_fqans_issuer_holder_uri_and_validity() {
        let der = acseq(&[attribute_certificate(&Ac::default())]);
        let parsed = parse_acseq(&der, at("2025-01-01T11:00:00Z")).unwrap();
        assert_eq!(
            parsed,
            vec![VomsAttributes {
                vo: "atlas".into(),
                fqans: vec![
                    "/atlas/Role=NULL/Capability=NULL".into(),
                    "/atlas/lcg1/Role=NULL".into()
                ],
                issuer: "/DC=org/DC=example/CN=voms.example.org".into(),
                holder: "/DC=org/DC=example/CN=Example CA".into(),
                uri: Some("voms.example.org:15001".into()),
                not_before: "2025-01-01T00:00:00Z".into(),
                not_after: "2025-01-01T12:00:00Z".into(),
                seconds_left: 3600,
            }]
        );
    }

    #[test]
    fn voms_attribute_oid_is_idatcap() {
        use std::str::FromStr;
        let oid = x509_parser::asn1_rs::Oid::from_str("1.3.6.1.4.1.8005.100.100.4").unwrap();
        assert_eq!(oid.as_bytes(), VOMS_ATTRIBUTE_OID_DER);
    }

    #[test]
    fn seconds_left_is_negative_once_expired() {
        let der = acseq(&[attribute_certificate(&Ac::default())]);
        let parsed = parse_acseq(&der, at("2025-01-01T12:00:10Z")).unwrap();
        assert_eq!(parsed[0].seconds_left, -10);
    }

    #[test]
    fn reads_every_certificate_in_order() {
        let der = acseq(&[
            attribute_certificate(&Ac::default()),
            attribute_certificate(&Ac {
                vo_uri: Some("cms://voms-cms.example.org:15002"),
                fqans: &["/cms/Role=pilot/Capability=NULL"],
                v2_form: false,
                ..Ac::default()
            }),
        ]);
        let parsed = parse_acseq(&der, at("2025-01-01T00:00:00Z")).unwrap();
        let summary: Vec<_> = parsed
            .iter()
            .map(|ac| (ac.vo.as_str(), ac.uri.as_deref(), ac.issuer.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "atlas",
                    Some("voms.example.org:15001"),
                    "/DC=org/DC=example/CN=voms.example.org"
                ),
                (
                    "cms",
                    Some("voms-cms.example.org:15002"),
                    "/DC=org/DC=example/CN=voms.example.org"
                ),
            ]
        );
    }

    #[test]
    fn without_policy_authority_the_vo_comes_from_the_first_fqan() {
        let der = acseq(&[attribute_certificate(&Ac {
            vo_uri: None,
            fqans: &["/dteam/Role=NULL"],
            ..Ac::default()
        })]);
        let parsed = parse_acseq(&der, at("2025-01-01T00:00:00Z")).unwrap();
        assert_eq!(parsed[0].vo, "dteam");
        assert_eq!(parsed[0].uri, None);
    }

    #[test]
    fn an_ac_naming_no_vo_is_an_error() {
        let der = acseq(&[attribute_certificate(&Ac {
            vo_uri: None,
            fqans: &[],
            ..Ac::default()
        })]);
        assert!(matches!(
            parse_acseq(&der, at("2025-01-01T00:00:00Z")),
            Err(VomsError::NoVo)
        ));
    }

    #[test]
    fn control_characters_in_fqans_are_not_passed_on() {
        let der = acseq(&[attribute_certificate(&Ac {
            fqans: &["/atlas/\u{1b}[31mred"],
            ..Ac::default()
        })]);
        let parsed = parse_acseq(&der, at("2025-01-01T00:00:00Z")).unwrap();
        assert_eq!(parsed[0].fqans, ["/atlas/\u{FFFD}[31mred"]);
    }

    #[test]
    fn an_empty_list_is_no_certificates() {
        let der = acseq(&[]);
        assert_eq!(parse_acseq(&der, at("2025-01-01T00:00:00Z")).unwrap(), []);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let der = acseq(&[
            attribute_certificate(&Ac::default()),
            attribute_certificate(&Ac::default()),
        ]);
        let now = at("2025-01-01T00:00:00Z");
        assert!(parse_acseq(&der, now).is_ok());
        for end in 0..der.len() {
            assert!(
                parse_acseq(&der[..end], now).is_err(),
                "a prefix of {end} of {} bytes parsed",
                der.len()
            );
        }
    }

    #[test]
    fn every_truncation_inside_the_certificate_is_an_error_not_a_panic() {
        // The enclosing lengths stay right, so each cut lands inside the fields that are read.
        let info = attribute_certificate_info(&Ac::default());
        let read_part = info.len() - extensions().len();
        let now = at("2025-01-01T00:00:00Z");
        assert!(parse_acseq(&acseq(&[wrap_info(&info)]), now).is_ok());
        for end in 0..read_part {
            let der = acseq(&[wrap_info(&info[..end])]);
            assert!(
                parse_acseq(&der, now).is_err(),
                "information cut at {end} of {read_part} bytes parsed"
            );
        }
    }

    #[test]
    fn garbage_and_trailing_bytes_are_errors_not_panics() {
        let now = at("2025-01-01T00:00:00Z");
        let der = acseq(&[attribute_certificate(&Ac::default())]);
        let mut trailing = der.clone();
        trailing.push(0);
        assert!(parse_acseq(&trailing, now).is_err());
        for garbage in [
            &[][..],
            &[0x30][..],
            &[0x30, 0x80, 0x00, 0x00][..],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff][..],
            &[0x04, 0x00][..],
            &[0x30, 0x02, 0x04, 0x00][..],
            b"not DER at all",
        ] {
            assert!(parse_acseq(garbage, now).is_err(), "{garbage:?} parsed");
        }
        // Every single-byte change: any result but a panic. Changes that keep the layout valid
        // (e.g. within a name's text) may parse.
        for index in 0..der.len() {
            for value in [0x00, 0x01, 0x30, 0x7f, 0x80, 0x81, 0xa0, 0xff] {
                let mut changed = der.clone();
                changed[index] = value;
                let _ = parse_acseq(&changed, now);
            }
        }
    }

    #[test]
    fn a_certificate_without_the_extension_has_no_attributes() {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let identity = crate::pki::issue(
            &crate::pki::CertificateSpec {
                subject: "/DC=invalid/CN=No VOMS",
                not_before: now - 60,
                not_after: now + 3600,
                ca: false,
                server_names: &[],
            },
            None,
        )
        .unwrap();
        let der = identity.certificate.to_der().unwrap();
        assert_eq!(
            from_certificate(&der, OffsetDateTime::now_utc()).unwrap(),
            []
        );
        assert!(matches!(
            from_certificate(&der[..der.len() / 2], OffsetDateTime::now_utc()),
            Err(VomsError::Certificate { .. })
        ));
    }
}
