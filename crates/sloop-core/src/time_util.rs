//! Time conversions between OpenSSL, RFC 3339 and `time`.

use openssl::asn1::{Asn1Time, Asn1TimeRef};
use time::OffsetDateTime;

/// An ASN.1 time as a UTC date-time.
pub fn asn1_to_offset(t: &Asn1TimeRef) -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    let diff = Asn1Time::from_unix(now.unix_timestamp())
        .and_then(|n| n.diff(t))
        .map(|d| i64::from(d.days) * 86_400 + i64::from(d.secs))
        .unwrap_or(0);
    now + time::Duration::seconds(diff)
}

/// RFC 3339 text, UTC, seconds precision.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
