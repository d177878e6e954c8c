//! Just enough X.509 to explain a certificate in a message: its subject and issuer as text
//! (`CN=api.example.test, O=Example`), its validity period, its public key; and times as UTC
//! dates (`2026-12-03 06:12:30 UTC`), not seconds since the epoch. And its extended key usage,
//! which a certificate pinned as it is (`verify.rs`) is checked for, WebPKI not having built a
//! chain that would check it.
//!
//! A small DER reader, not a validator: whatever it cannot read is `None`, and the caller says
//! less. Verification itself is WebPKI's (see `verify.rs`).

/// One DER element: its tag, its contents, and what follows it.
pub(crate) fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |len, byte| (len << 8) | usize::from(*byte));
        (len, &rest[count..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The next element whole (tag and length included), and what follows it.
fn whole(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let (_, _, rest) = element(input)?;
    Some((&input[..input.len() - rest.len()], rest))
}

const SEQUENCE: u8 = 0x30;

/// The parts of a certificate's `tbsCertificate` that messages and checks use; names and key
/// whole (DER, tag included), so they compare byte for byte.
pub(crate) struct Tbs<'a> {
    pub(crate) issuer: &'a [u8],
    pub(crate) not_before: u64,
    pub(crate) not_after: u64,
    pub(crate) subject: &'a [u8],
    pub(crate) spki: &'a [u8],
    /// The `extensions` SEQUENCE's contents; empty when there are none (a v1 certificate).
    pub(crate) extensions: &'a [u8],
}

/// Reads `cert` (DER).
pub(crate) fn tbs(cert: &[u8]) -> Option<Tbs<'_>> {
    let (tag, certificate, _) = element(cert)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, tbs, _) = element(certificate)?;
    if tag != SEQUENCE {
        return None;
    }
    let mut rest = tbs;
    // [0] EXPLICIT version, when present.
    if rest.first() == Some(&0xa0) {
        rest = element(rest)?.2;
    }
    // serialNumber, signature.
    for _ in 0..2 {
        rest = element(rest)?.2;
    }
    let (issuer, rest) = whole(rest)?;
    let (tag, validity, rest) = element(rest)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, not_before, after) = element(validity)?;
    let not_before = time(tag, not_before)?;
    let (tag, not_after, _) = element(after)?;
    let not_after = time(tag, not_after)?;
    let (subject, rest) = whole(rest)?;
    let (spki, mut rest) = whole(rest)?;
    // [1] issuerUniqueID and [2] subjectUniqueID, when present; then [3] EXPLICIT extensions.
    let mut extensions: &[u8] = &[];
    while !rest.is_empty() {
        let (tag, contents, after) = element(rest)?;
        if tag == 0xa3 {
            let (tag, list, _) = element(contents)?;
            if tag != SEQUENCE {
                return None;
            }
            extensions = list;
        }
        rest = after;
    }
    Some(Tbs {
        issuer,
        not_before,
        not_after,
        subject,
        spki,
        extensions,
    })
}

/// `id-ce-extKeyUsage` (2.5.29.37), its OID's contents.
const EXT_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x25];

/// `id-ce-subjectAltName` (2.5.29.17).
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];

/// `anyExtendedKeyUsage` (2.5.29.37.0).
const ANY_PURPOSE: &[u8] = &[0x55, 0x1d, 0x25, 0x00];

/// `id-kp-serverAuth` (1.3.6.1.5.5.7.3.1).
pub(crate) const SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];

/// `id-kp-clientAuth` (1.3.6.1.5.5.7.3.2).
pub(crate) const CLIENT_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];

/// The value (the `extnValue` OCTET STRING's contents) of `cert`'s extension `oid`: `Some(None)`
/// when it has none, `None` when the certificate cannot be read.
fn extension<'a>(cert: &'a [u8], oid: &[u8]) -> Option<Option<&'a [u8]>> {
    let mut extensions = tbs(cert)?.extensions;
    while !extensions.is_empty() {
        let (tag, extension, after) = element(extensions)?;
        extensions = after;
        if tag != SEQUENCE {
            return None;
        }
        let (tag, id, mut rest) = element(extension)?;
        if tag != 0x06 || id != oid {
            continue;
        }
        // critical BOOLEAN DEFAULT FALSE, then the extnValue OCTET STRING.
        if rest.first() == Some(&0x01) {
            rest = element(rest)?.2;
        }
        let (tag, value, _) = element(rest)?;
        return (tag == 0x04).then_some(Some(value));
    }
    Some(None)
}

/// Whether `cert` may be used for `purpose` (an OID's contents, such as [`SERVER_AUTH`]): yes
/// when it has no extended key usage (RFC 5280: any use), or when its list names `purpose` or
/// `anyExtendedKeyUsage`. `None` when the certificate cannot be read.
pub(crate) fn allows_purpose(cert: &[u8], purpose: &[u8]) -> Option<bool> {
    let Some(value) = extension(cert, EXT_KEY_USAGE)? else {
        return Some(true);
    };
    let (tag, mut purposes, _) = element(value)?;
    if tag != SEQUENCE {
        return None;
    }
    while !purposes.is_empty() {
        let (tag, oid, after) = element(purposes)?;
        if tag != 0x06 {
            return None;
        }
        if oid == purpose || oid == ANY_PURPOSE {
            return Some(true);
        }
        purposes = after;
    }
    Some(false)
}

/// Whether `cert` has a subjectAltName extension (`None`: it cannot be read).
pub(crate) fn has_alt_names(cert: &[u8]) -> Option<bool> {
    extension(cert, SUBJECT_ALT_NAME).map(|value| value.is_some())
}

/// A certificate's `notBefore` and `notAfter`, in seconds since the Unix epoch.
pub(crate) fn validity(cert: &[u8]) -> Option<(u64, u64)> {
    tbs(cert).map(|tbs| (tbs.not_before, tbs.not_after))
}

/// A distinguished name (DER `Name`, tag included) as text, attributes in the order stored:
/// `C=US, O=Example, CN=api.example.test`.
pub(crate) fn name(der: &[u8]) -> String {
    let parts = attributes(der);
    if parts.is_empty() {
        "(empty name)".to_owned()
    } else {
        parts.join(", ")
    }
}

/// A distinguished name's attributes as `CN=value`, in the order stored.
fn attributes(der: &[u8]) -> Vec<String> {
    let mut parts = Vec::new();
    if let Some((SEQUENCE, mut rdns, _)) = element(der) {
        while let Some((_, mut rdn, rest)) = element(rdns) {
            rdns = rest;
            while let Some((_, pair, rest)) = element(rdn) {
                rdn = rest;
                if let Some(text) = attribute(pair) {
                    parts.push(text);
                }
            }
        }
    }
    parts
}

/// One `AttributeTypeAndValue` as `CN=value`.
fn attribute(pair: &[u8]) -> Option<String> {
    const OID: u8 = 0x06;
    let (tag, oid, rest) = element(pair)?;
    if tag != OID {
        return None;
    }
    let (tag, value, _) = element(rest)?;
    let key = match oid {
        [0x55, 0x04, 0x03] => "CN".to_owned(),
        [0x55, 0x04, 0x05] => "serialNumber".to_owned(),
        [0x55, 0x04, 0x06] => "C".to_owned(),
        [0x55, 0x04, 0x07] => "L".to_owned(),
        [0x55, 0x04, 0x08] => "ST".to_owned(),
        [0x55, 0x04, 0x0a] => "O".to_owned(),
        [0x55, 0x04, 0x0b] => "OU".to_owned(),
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01] => "emailAddress".to_owned(),
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => "DC".to_owned(),
        other => dotted(other),
    };
    let value = match tag {
        // BMPString: UTF-16, big-endian.
        0x1e => String::from_utf16_lossy(
            &value
                .chunks(2)
                .map(|pair| u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]))
                .collect::<Vec<_>>(),
        ),
        // UniversalString: UTF-32, big-endian.
        0x1c => value
            .chunks(4)
            .filter_map(|quad| {
                let bytes: [u8; 4] = quad.try_into().ok()?;
                char::from_u32(u32::from_be_bytes(bytes))
            })
            .collect(),
        _ => String::from_utf8_lossy(value).into_owned(),
    };
    Some(format!("{key}={value}"))
}

/// An OID as dotted decimal.
fn dotted(oid: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut n = 0u64;
    for &byte in oid {
        n = (n << 7) | u64::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (n / 40).min(2);
                arcs.push(first);
                arcs.push(n - first * 40);
            } else {
                arcs.push(n);
            }
            n = 0;
        }
    }
    arcs.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`), as RFC 5280 allows them.
fn time(tag: u8, text: &[u8]) -> Option<u64> {
    let digits = |s: &[u8]| -> Option<u64> {
        s.iter().try_fold(0u64, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + u64::from(c - b'0'))
        })
    };
    let (year, rest) = match (tag, text.len()) {
        (0x17, 13) => {
            let yy = digits(&text[..2])?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &text[2..])
        }
        (0x18, 15) => (digits(&text[..4])?, &text[4..]),
        _ => return None,
    };
    if rest.last() != Some(&b'Z') {
        return None;
    }
    let month = digits(&rest[0..2])?;
    let day = digits(&rest[2..4])?;
    let hour = digits(&rest[4..6])?;
    let minute = digits(&rest[6..8])?;
    let second = digits(&rest[8..10])?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day)?;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second.min(60))
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (none before 1970).
fn days_from_civil(year: u64, month: u64, day: u64) -> Option<u64> {
    let y = if month <= 2 {
        year.checked_sub(1)?
    } else {
        year
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).checked_sub(719_468)
}

/// The date (year, month, day) `days` after 1970-01-01: the inverse of [`days_from_civil`]
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Seconds since the Unix epoch as a UTC date and time: `2026-12-03 06:12:30 UTC` (RFC 3339's
/// date and time, with a space and `UTC` for a person to read).
pub(crate) fn utc(secs: u64) -> String {
    let (year, month, day) = civil_from_days(secs / 86_400);
    let of_day = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), Some(0));
        assert_eq!(days_from_civil(2000, 3, 1), Some(11_017));
        assert_eq!(days_from_civil(2024, 2, 29), Some(19_782));
        for (days, date) in [
            (0, (1970, 1, 1)),
            (11_017, (2000, 3, 1)),
            (19_782, (2024, 2, 29)),
            (19_783, (2024, 3, 1)),
            (10_956, (1999, 12, 31)),
        ] {
            assert_eq!(civil_from_days(days), date, "{days}");
        }
        // Every day of four centuries goes there and back.
        for days in 0..146_497 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), Some(days));
        }
    }

    #[test]
    fn utc_times_read_as_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(2_524_607_999), "2049-12-31 23:59:59 UTC");
        assert_eq!(
            utc(19_782 * 86_400 + 43_200 + 61),
            "2024-02-29 12:01:01 UTC"
        );
    }

    #[test]
    fn times() {
        assert_eq!(time(0x17, b"700101000000Z"), Some(0));
        assert_eq!(time(0x17, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(
            time(0x18, b"20240229120000Z"),
            Some(19_782 * 86_400 + 43_200)
        );
        assert_eq!(time(0x18, b"2024022912000Z"), None);
        assert_eq!(time(0x17, b"701301000000Z"), None);
    }

    #[test]
    fn names_read_as_text() {
        // SEQUENCE { SET { SEQUENCE { OID 2.5.4.6, PrintableString "US" } },
        //            SET { SEQUENCE { OID 2.5.4.3, UTF8String "a.test" } },
        //            SET { SEQUENCE { OID 1.2.3, BMPString "x" } } }
        let der = [
            0x30, 0x2a, //
            0x31, 0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x06, 0x13, 0x02, b'U', b'S', //
            0x31, 0x0f, 0x30, 0x0d, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x06, b'a', b'.', b't',
            b'e', b's', b't', //
            0x31, 0x0a, 0x30, 0x08, 0x06, 0x02, 0x2a, 0x03, 0x1e, 0x02, 0x00, b'x',
        ];
        assert_eq!(name(&der), "C=US, CN=a.test, 1.2.3=x");
        assert_eq!(name(&[0x30, 0x00]), "(empty name)");
        assert_eq!(name(&[]), "(empty name)");
    }

    /// A self-signed certificate for `names` whose extended key usage is `purposes` (none: no
    /// such extension).
    fn made(names: &[&str], purposes: Vec<rcgen::ExtendedKeyUsagePurpose>) -> Vec<u8> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = rcgen::CertificateParams::new(names).expect("params");
        params.extended_key_usages = purposes;
        let key = rcgen::KeyPair::generate().expect("key");
        params
            .self_signed(&key)
            .expect("certificate")
            .der()
            .to_vec()
    }

    #[test]
    fn key_purposes_and_alt_names_are_read() {
        use rcgen::ExtendedKeyUsagePurpose::{Any, ClientAuth, ServerAuth};
        let plain = made(&["a.test"], vec![]);
        assert_eq!(allows_purpose(&plain, SERVER_AUTH), Some(true));
        assert_eq!(allows_purpose(&plain, CLIENT_AUTH), Some(true));
        assert_eq!(has_alt_names(&plain), Some(true));
        let client = made(&[], vec![ClientAuth]);
        assert_eq!(allows_purpose(&client, SERVER_AUTH), Some(false));
        assert_eq!(allows_purpose(&client, CLIENT_AUTH), Some(true));
        assert_eq!(has_alt_names(&client), Some(false));
        let both = made(&["a.test"], vec![ServerAuth, ClientAuth]);
        assert_eq!(allows_purpose(&both, SERVER_AUTH), Some(true));
        assert_eq!(allows_purpose(&both, CLIENT_AUTH), Some(true));
        let any = made(&["a.test"], vec![Any]);
        assert_eq!(allows_purpose(&any, SERVER_AUTH), Some(true));
        assert_eq!(allows_purpose(&[], SERVER_AUTH), None);
        assert_eq!(has_alt_names(&[0x30, 0x02, 0x30, 0x00]), None);
    }

    #[test]
    fn malformed_certificates_have_no_validity() {
        assert_eq!(validity(&[]), None);
        assert_eq!(validity(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(validity(&[0x30, 0x02, 0x30, 0x00]), None);
    }
}
