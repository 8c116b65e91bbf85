//! Time conversions between OpenSSL, RFC 3339 and `time`.

use openssl::asn1::{Asn1Time, Asn1TimeRef};
use time::OffsetDateTime;

/// An ASN.1 time as a UTC date-time, to the second: counted from the epoch, so the same
/// certificate always gives the same instant. An unreadable time (OpenSSL has already parsed it,
/// so this does not happen in practice) reads as the epoch: long expired, never valid.
pub fn asn1_to_offset(t: &Asn1TimeRef) -> OffsetDateTime {
    Asn1Time::from_unix(0)
        .and_then(|epoch| epoch.diff(t))
        .ok()
        .and_then(|d| {
            OffsetDateTime::from_unix_timestamp(i64::from(d.days) * 86_400 + i64::from(d.secs)).ok()
        })
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// RFC 3339 text, UTC, seconds precision.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asn1_times_are_exact_instants() {
        let t = Asn1Time::from_unix(1_795_000_123).unwrap();
        assert_eq!(asn1_to_offset(&t).unix_timestamp(), 1_795_000_123);
        let old = Asn1Time::from_str("19700102000000Z").unwrap();
        assert_eq!(asn1_to_offset(&old).unix_timestamp(), 86_400);
    }
}
