//! Provenance: the manifest signed with the user's grid identity (their proxy, or their
//! certificate and key), as a detached CMS signature in DER (`manifest.json.p7s`), with the
//! signer's chain inside, so anyone with the grid trust anchors can check it:
//! `openssl cms -verify -binary -inform DER -in manifest.json.p7s -content manifest.json
//! -CApath /etc/grid-security/certificates -purpose any -allow_proxy_certs -attime <createdAt>`.
//!
//! Proxies live hours; a bundle lives for years. So the chain is checked at the time the
//! manifest says it was made (`createdAt`, covered by the signature), which must not lie in
//! the future, and revocation is checked against the CRLs present now.

use std::path::{Path, PathBuf};

use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::pkey::{PKey, Private};
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{X509, X509Crl, X509StoreContext};
use serde::Serialize;
use time::OffsetDateTime;
use ts_rs::TS;

use crate::catalog::trust::{anchor_store, check_namespaces, first_reason, has_anchor};
use crate::proxy::{ProxyError, UserCredentials};
use crate::time_util::{asn1_to_offset, rfc3339};
use crate::x509::oneline;

/// Clocks differ: a signing time this far ahead of ours is still accepted.
const CLOCK_SKEW: time::Duration = time::Duration::minutes(5);

/// The key and certificates a bundle is signed with. The key is freed (and cleared by OpenSSL)
/// when this is dropped; it is never written anywhere.
pub struct SigningIdentity {
    certificate: X509,
    key: PKey<Private>,
    chain: Vec<X509>,
    /// Where it was read from, to say so.
    pub source: PathBuf,
    /// The user's DN.
    pub identity: String,
}

impl std::fmt::Debug for SigningIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningIdentity")
            .field("identity", &self.identity)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// No grid identity could sign.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error(
        "no grid identity to sign the bundle with (no valid proxy at {proxy}, no usable certificate at {certificate}); make a proxy with `sloop proxy init`, or export without a signature on purpose with --unsigned"
    )]
    NoIdentity {
        proxy: PathBuf,
        certificate: PathBuf,
    },
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    #[error("OpenSSL could not sign the manifest: {0}")]
    OpenSsl(String),
}

/// Finds the identity to sign with: the proxy at `proxy` when it is valid now, else the user's
/// certificate and key (`passphrase` for an encrypted key).
pub fn identity(
    proxy: &Path,
    credentials: &UserCredentials,
    passphrase: Option<&str>,
    now: OffsetDateTime,
) -> Result<SigningIdentity, SignError> {
    if let Ok(Some(file)) = crate::proxy::inspect::read(proxy) {
        let valid = file.certificates.first().is_some_and(|c| {
            asn1_to_offset(c.not_before()) <= now && now < asn1_to_offset(c.not_after())
        });
        if valid {
            let identity = crate::proxy::inspect::identity_of(&file.certificates);
            let mut certificates = file.certificates.clone().into_iter();
            if let Some(certificate) = certificates.next() {
                return Ok(SigningIdentity {
                    certificate,
                    key: file.key.clone(),
                    chain: certificates.collect(),
                    source: proxy.to_path_buf(),
                    identity,
                });
            }
        }
    }
    if !credentials.certificate.exists() || !credentials.key.exists() {
        return Err(SignError::NoIdentity {
            proxy: proxy.to_path_buf(),
            certificate: credentials.certificate.clone(),
        });
    }
    let mut chain = crate::proxy::make::read_user_certificates(&credentials.certificate)?;
    let key = crate::proxy::make::read_user_key(&credentials.key, passphrase)?;
    let certificate = chain.remove(0);
    let valid = asn1_to_offset(certificate.not_before()) <= now
        && now < asn1_to_offset(certificate.not_after());
    if !valid {
        return Err(SignError::NoIdentity {
            proxy: proxy.to_path_buf(),
            certificate: credentials.certificate.clone(),
        });
    }
    Ok(SigningIdentity {
        identity: oneline(certificate.subject_name()),
        certificate,
        key,
        chain,
        source: credentials.certificate.clone(),
    })
}

/// Signs `manifest`: a detached CMS (PKCS #7) SignedData in DER, binary content, the signer's
/// chain included.
pub fn sign(manifest: &[u8], signer: &SigningIdentity) -> Result<Vec<u8>, SignError> {
    let failed = |e: openssl::error::ErrorStack| SignError::OpenSsl(first_reason(&e));
    let mut chain = Stack::new().map_err(failed)?;
    for certificate in &signer.chain {
        chain.push(certificate.clone()).map_err(failed)?;
    }
    let p7 = Pkcs7::sign(
        &signer.certificate,
        &signer.key,
        &chain,
        manifest,
        Pkcs7Flags::DETACHED | Pkcs7Flags::BINARY,
    )
    .map_err(failed)?;
    p7.to_der().map_err(failed)
}

/// Who signed a bundle, as the signature shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct SignerView {
    /// The user: the first certificate of the chain that is not a proxy.
    pub identity: String,
    /// The certificate that signed (a proxy, or the user's own).
    pub subject: String,
    pub issuer: String,
    /// RFC 3339: the signing certificate's validity.
    pub not_before: String,
    pub not_after: String,
}

/// Why a signature does not hold. One line each, naming the check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureProblem {
    #[error("the signature cannot be read (damaged or not CMS): {0}")]
    Malformed(String),
    #[error("the signature carries {0} signers; exactly one is required")]
    SignerCount(usize),
    #[error("the signature does not match the manifest: the manifest was changed after signing")]
    Tampered,
    #[error("the manifest says it was made at {0}, which is in the future")]
    FromTheFuture(String),
    #[error(
        "the signer {subject} was not valid when the bundle was made ({at}; valid {from} to {until})"
    )]
    NotValidAtSigning {
        subject: String,
        at: String,
        from: String,
        until: String,
    },
    #[error("the signer {subject} has been revoked by its CA")]
    Revoked { subject: String },
    #[error(
        "the signer {subject} (issued by {issuer}) is not trusted: {reason}; its CA must be among the trust anchors in {anchors}"
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
    /// A certificate of the chain lies outside its CA's IGTF namespace (or that cannot be read).
    #[error("{0}")]
    Namespace(String),
}

/// Checks `signature` over `manifest` against the trust anchors in `anchors`: the signature
/// itself, the signer valid at `signed_at` (not after `now`), its chain (proxies allowed) to an
/// anchor, and no certificate of the chain revoked by a CRL in `anchors`.
pub fn verify(
    manifest: &[u8],
    signature: &[u8],
    anchors: &Path,
    signed_at: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<SignerView, SignatureProblem> {
    let malformed = |e: openssl::error::ErrorStack| SignatureProblem::Malformed(first_reason(&e));
    let p7 = Pkcs7::from_der(signature).map_err(malformed)?;
    let no_extra = Stack::new().map_err(malformed)?;
    let signers = p7
        .signers(&no_extra, Pkcs7Flags::empty())
        .map_err(malformed)?;
    if signers.len() != 1 {
        return Err(SignatureProblem::SignerCount(signers.len()));
    }
    let signer = signers
        .get(0)
        .ok_or(SignatureProblem::SignerCount(0))?
        .to_owned();
    let empty = X509StoreBuilder::new().map_err(malformed)?.build();
    p7.verify(
        &no_extra,
        &empty,
        Some(manifest),
        None,
        Pkcs7Flags::NOVERIFY | Pkcs7Flags::BINARY,
    )
    .map_err(|_| SignatureProblem::Tampered)?;

    let carried: Vec<X509> = p7
        .signed()
        .and_then(|s| s.certificates())
        .map(|certs| certs.iter().map(ToOwned::to_owned).collect())
        .unwrap_or_default();
    let mut whole = vec![signer.clone()];
    whole.extend(
        carried
            .iter()
            .filter(|c| c.to_der().ok() != signer.to_der().ok())
            .cloned(),
    );
    let view = SignerView {
        identity: crate::proxy::inspect::identity_of(&whole),
        subject: oneline(signer.subject_name()),
        issuer: oneline(signer.issuer_name()),
        not_before: rfc3339(asn1_to_offset(signer.not_before())),
        not_after: rfc3339(asn1_to_offset(signer.not_after())),
    };
    if signed_at > now + CLOCK_SKEW {
        return Err(SignatureProblem::FromTheFuture(rfc3339(signed_at)));
    }
    if signed_at < asn1_to_offset(signer.not_before())
        || signed_at > asn1_to_offset(signer.not_after())
    {
        return Err(SignatureProblem::NotValidAtSigning {
            subject: view.subject.clone(),
            at: rfc3339(signed_at),
            from: view.not_before.clone(),
            until: view.not_after.clone(),
        });
    }
    let chain = check_chain(&signer, &carried, anchors, signed_at, &view)?;
    check_revocation(&chain, anchors)?;
    check_namespaces(&chain, anchors).map_err(|e| SignatureProblem::Namespace(e.to_string()))?;
    Ok(view)
}

/// The chain from the signer to its anchor, verified at `at`.
fn check_chain(
    signer: &X509,
    carried: &[X509],
    anchors: &Path,
    at: OffsetDateTime,
    view: &SignerView,
) -> Result<Vec<X509>, SignatureProblem> {
    if !has_anchor(anchors) {
        return Err(SignatureProblem::NoAnchors(anchors.to_path_buf()));
    }
    let untrusted = |reason: String| SignatureProblem::Untrusted {
        subject: view.subject.clone(),
        issuer: view.issuer.clone(),
        reason,
        anchors: anchors.to_path_buf(),
    };
    let failed = |e: openssl::error::ErrorStack| untrusted(first_reason(&e));
    let store =
        anchor_store(anchors, at, X509VerifyFlags::ALLOW_PROXY_CERTS, None).map_err(failed)?;
    let mut untrusted_certs = Stack::new().map_err(failed)?;
    for certificate in carried {
        untrusted_certs.push(certificate.clone()).map_err(failed)?;
    }
    let mut context = X509StoreContext::new().map_err(failed)?;
    let (result, chain) = context
        .init(&store, signer, &untrusted_certs, |ctx| {
            ctx.verify_cert()?;
            let chain = ctx
                .chain()
                .map(|c| c.iter().map(ToOwned::to_owned).collect::<Vec<_>>())
                .unwrap_or_default();
            Ok((ctx.error(), chain))
        })
        .map_err(failed)?;
    if result == openssl::x509::X509VerifyResult::OK {
        Ok(chain)
    } else {
        Err(untrusted(result.error_string().to_string()))
    }
}

/// Refuses a chain one of whose certificates is listed in its issuer's CRL (`<hash>.r0` in the
/// anchors' folder, as fetch-crl leaves them). A CRL that does not verify with its issuer's key
/// is ignored, as if absent.
fn check_revocation(chain: &[X509], anchors: &Path) -> Result<(), SignatureProblem> {
    for pair in chain.windows(2) {
        let (certificate, issuer) = (&pair[0], &pair[1]);
        let file = anchors.join(format!("{:08x}.r0", certificate.issuer_name_hash()));
        let Ok(bytes) = std::fs::read(&file) else {
            continue;
        };
        let Ok(crl) = X509Crl::from_pem(&bytes).or_else(|_| X509Crl::from_der(&bytes)) else {
            continue;
        };
        let signed_by_issuer = issuer
            .public_key()
            .and_then(|key| crl.verify(&key))
            .unwrap_or(false);
        if !signed_by_issuer {
            continue;
        }
        if let openssl::x509::CrlStatus::Revoked(_) = crl.get_by_cert(certificate) {
            return Err(SignatureProblem::Revoked {
                subject: oneline(certificate.subject_name()),
            });
        }
    }
    Ok(())
}
