//! Verifying a signed image list the way vmcatcher does (`smimeX509validation`): a detached
//! S/MIME signature by exactly one signer, whose certificate is valid now, not revoked, and
//! chains to a trust anchor in an IGTF-layout CA folder.
//!
//! The checks run one at a time, so that a refusal names the check that failed: the signature
//! over the content first (a tampered body), then the signer's dates, then its chain and CRL.
//! Revocation is checked whenever the CA folder carries a CRL (`<hash>.r0`) for the signer's CA,
//! as `fetch-crl` leaves them; a CRL that is out of date then fails the check. Last, each
//! certificate of the chain must lie in its CA's IGTF namespace (`namespaces.rs`).

use std::path::{Path, PathBuf};

use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::stack::Stack;
use openssl::x509::store::{X509Lookup, X509StoreBuilder};
use openssl::x509::verify::{X509VerifyFlags, X509VerifyParam};
use openssl::x509::{X509, X509PurposeId, X509StoreContext};
use time::OffsetDateTime;

use super::namespaces::Namespace;
use crate::time_util::asn1_to_offset;
use crate::x509::oneline;

/// The most bytes a signed list may have. Real lists (AppDB's largest VO lists) are a few
/// hundred KiB; this keeps a hostile or broken server from filling memory.
pub const MAX_LIST_BYTES: usize = 16 * 1024 * 1024;

/// Why a signed list was refused. Each names the check, as vmcatcher's codes do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    #[error(
        "the list is not S/MIME signed (it looks like bare JSON); only signed image lists are accepted"
    )]
    Unsigned,
    #[error("the list's S/MIME signature cannot be read (damaged or truncated): {0}")]
    Malformed(String),
    #[error("the list's signature carries {0} signer certificates; exactly one is required")]
    SignerCount(usize),
    #[error("the signature does not match the list's content: the list was altered after signing")]
    Tampered,
    #[error("the endorser certificate {subject} is not valid before {from}")]
    NotYetValid { subject: String, from: String },
    #[error("the endorser certificate {subject} expired on {until}")]
    CertificateExpired { subject: String, until: String },
    #[error("the endorser certificate {subject} has been revoked by its CA")]
    Revoked { subject: String },
    #[error(
        "the endorser certificate {subject} (issued by {issuer}) is not trusted: {reason}; add its CA to {anchors} or choose another list"
    )]
    Untrusted {
        subject: String,
        issuer: String,
        reason: String,
        anchors: PathBuf,
    },
    #[error(
        "no trust anchors at {0}; install the IGTF CA certificates there or set ca_dir in config.toml"
    )]
    NoAnchors(PathBuf),
    #[error("the list is {size} bytes, more than any real image list ({max} at most)")]
    TooLarge { size: usize, max: usize },
    #[error(
        "{subject} is outside the namespace of its CA {issuer}: {file} does not permit it, so that CA cannot vouch for it"
    )]
    OutsideNamespace {
        subject: String,
        issuer: String,
        file: PathBuf,
    },
    #[error("the CA's namespace cannot be read, so nothing it issued is trusted: {0}")]
    Policy(String),
    #[error(
        "a CA in the chain of {subject} has no CRL in {anchors}, and require_crl is on; run fetch-crl, or set require_crl = false in config.toml"
    )]
    NoCrl { subject: String, anchors: PathBuf },
}

/// The certificate that signed a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    /// Oneline subject DN, compared with `hv:dn`.
    pub subject: String,
    /// Oneline issuer DN, compared with `hv:ca`.
    pub issuer: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

/// A list whose signature verified: the signed bytes and who signed them.
#[derive(Debug, Clone)]
pub struct Verified {
    pub content: Vec<u8>,
    pub signer: Signer,
}

/// Verifies the S/MIME document `signed` against the trust anchors in `anchors`, at time `now`;
/// with `require_crl`, every CA of the signer's chain must have a current CRL there.
pub fn verify(
    signed: &[u8],
    anchors: &Path,
    require_crl: bool,
    now: OffsetDateTime,
) -> Result<Verified, TrustError> {
    if signed.len() > MAX_LIST_BYTES {
        return Err(TrustError::TooLarge {
            size: signed.len(),
            max: MAX_LIST_BYTES,
        });
    }
    let trimmed = signed.trim_ascii_start();
    if trimmed.starts_with(b"{") || trimmed.starts_with(b"[") {
        return Err(TrustError::Unsigned);
    }
    let (p7, content) =
        Pkcs7::from_smime(signed).map_err(|e| TrustError::Malformed(first_reason(&e)))?;
    let content = content.ok_or_else(|| {
        TrustError::Malformed("the signature is not detached; the content is missing".into())
    })?;
    let no_extra = Stack::new().map_err(|e| TrustError::Malformed(first_reason(&e)))?;
    let signers = p7
        .signers(&no_extra, Pkcs7Flags::empty())
        .map_err(|e| TrustError::Malformed(first_reason(&e)))?;
    if signers.len() != 1 {
        return Err(TrustError::SignerCount(signers.len()));
    }
    let signer = signers.get(0).ok_or(TrustError::SignerCount(0))?.to_owned();

    // The signature over the content alone, without the chain: a failure here is a changed body.
    let empty_store = X509StoreBuilder::new()
        .map_err(|e| TrustError::Malformed(first_reason(&e)))?
        .build();
    let mut out = Vec::new();
    p7.verify(
        &no_extra,
        &empty_store,
        Some(&content),
        Some(&mut out),
        Pkcs7Flags::NOVERIFY,
    )
    .map_err(|_| TrustError::Tampered)?;

    let described = Signer {
        subject: oneline(signer.subject_name()),
        issuer: oneline(signer.issuer_name()),
        not_before: asn1_to_offset(signer.not_before()),
        not_after: asn1_to_offset(signer.not_after()),
    };
    if now < described.not_before {
        return Err(TrustError::NotYetValid {
            subject: described.subject,
            from: crate::time_util::rfc3339(described.not_before),
        });
    }
    if now > described.not_after {
        return Err(TrustError::CertificateExpired {
            subject: described.subject,
            until: crate::time_util::rfc3339(described.not_after),
        });
    }
    let intermediates = p7
        .signed()
        .and_then(|s| s.certificates())
        .map(|certs| certs.iter().map(ToOwned::to_owned).collect::<Vec<_>>())
        .unwrap_or_default();
    check_chain(
        &signer,
        &intermediates,
        anchors,
        require_crl,
        now,
        &described,
    )?;
    Ok(Verified {
        content: out,
        signer: described,
    })
}

fn check_chain(
    signer: &X509,
    intermediates: &[X509],
    anchors: &Path,
    require_crl: bool,
    now: OffsetDateTime,
    described: &Signer,
) -> Result<(), TrustError> {
    if !has_anchor(anchors) {
        return Err(TrustError::NoAnchors(anchors.to_path_buf()));
    }
    let untrusted = |reason: String| TrustError::Untrusted {
        subject: described.subject.clone(),
        issuer: described.issuer.clone(),
        reason,
        anchors: anchors.to_path_buf(),
    };
    let openssl_failed = |e: openssl::error::ErrorStack| untrusted(first_reason(&e));
    let crl = anchors.join(format!("{:08x}.r0", signer.issuer_name_hash()));
    // Required CRLs are checked for the whole chain (OpenSSL then fails on any CA without one,
    // and names it below); otherwise the signer's CA's, when the folder has it.
    let flags = if require_crl {
        X509VerifyFlags::CRL_CHECK | X509VerifyFlags::CRL_CHECK_ALL
    } else if crl.exists() {
        X509VerifyFlags::CRL_CHECK
    } else {
        X509VerifyFlags::empty()
    };
    let store = anchor_store(anchors, now, flags, Some(X509PurposeId::SMIME_SIGN))
        .map_err(openssl_failed)?;
    let mut chain = Stack::new().map_err(openssl_failed)?;
    for certificate in intermediates {
        chain.push(certificate.clone()).map_err(openssl_failed)?;
    }
    let mut context = X509StoreContext::new().map_err(openssl_failed)?;
    let (result, verified_chain) = context
        .init(&store, signer, &chain, |ctx| {
            ctx.verify_cert()?;
            let verified: Vec<X509> = ctx
                .chain()
                .map(|c| c.iter().map(ToOwned::to_owned).collect())
                .unwrap_or_default();
            Ok((ctx.error(), verified))
        })
        .map_err(openssl_failed)?;
    if result == openssl::x509::X509VerifyResult::OK {
        return check_namespaces(&verified_chain, anchors);
    }
    // X509_V_ERR_CERT_REVOKED
    if result.as_raw() == 23 {
        return Err(TrustError::Revoked {
            subject: described.subject.clone(),
        });
    }
    // X509_V_ERR_UNABLE_TO_GET_CRL
    if result.as_raw() == 3 {
        return Err(TrustError::NoCrl {
            subject: described.subject.clone(),
            anchors: anchors.to_path_buf(),
        });
    }
    Err(untrusted(result.error_string().to_string()))
}

/// Each certificate of the verified chain (the signer first, the anchor last) must lie in its
/// issuer's IGTF namespace, where the anchors folder has one for that issuer. Proxies pass: no
/// CA's namespace is filed under their issuer (the user).
pub(crate) fn check_namespaces(chain: &[X509], anchors: &Path) -> Result<(), TrustError> {
    for pair in chain.windows(2) {
        let [certificate, issuer] = pair else {
            continue;
        };
        let namespace = Namespace::find(anchors, certificate.issuer_name_hash())
            .map_err(|e| TrustError::Policy(e.to_string()))?;
        let Some(namespace) = namespace else {
            continue;
        };
        let subject = oneline(certificate.subject_name());
        let issuer = oneline(issuer.subject_name());
        if !namespace.permits(&issuer, &subject) {
            return Err(TrustError::OutsideNamespace {
                subject,
                issuer,
                file: namespace.file,
            });
        }
    }
    Ok(())
}

/// Whether `dir` holds a trust anchor in the hashed layout (`<hash>.0`).
pub(crate) fn has_anchor(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries.flatten().any(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.len() == 10 && n.ends_with(".0"))
            })
        })
        .unwrap_or(false)
}

/// A store that finds the anchors in `dir` by hash and verifies at `at` with `flags` (and for
/// `purpose`, when given).
pub(crate) fn anchor_store(
    dir: &Path,
    at: OffsetDateTime,
    flags: X509VerifyFlags,
    purpose: Option<X509PurposeId>,
) -> Result<openssl::x509::store::X509Store, openssl::error::ErrorStack> {
    let mut store = X509StoreBuilder::new()?;
    store
        .add_lookup(X509Lookup::hash_dir())?
        .add_dir(&dir.to_string_lossy(), openssl::ssl::SslFiletype::PEM)?;
    let mut param = X509VerifyParam::new()?;
    param.set_time(at.unix_timestamp());
    param.set_flags(flags)?;
    if let Some(purpose) = purpose {
        param.set_purpose(purpose)?;
    }
    store.set_param(&param)?;
    Ok(store.build())
}

/// OpenSSL's first reason, without its library/function prefix noise.
pub(crate) fn first_reason(error: &openssl::error::ErrorStack) -> String {
    error
        .errors()
        .first()
        .and_then(|e| e.reason().map(str::to_string))
        .unwrap_or_else(|| "unknown OpenSSL error".into())
}
