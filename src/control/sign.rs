//! Huawei Cloud's AK/SK request signature, `SDK-HMAC-SHA256`, as the cloud's own SDKs make it.
//!
//! A signed request carries
//! `Authorization: SDK-HMAC-SHA256 Access=<AK>, SignedHeaders=<h1;h2;...>, Signature=<hex>` and
//! `X-Sdk-Date: YYYYMMDDTHHMMSSZ`. The algorithm below is the one of `huaweicloudsdkcore`'s
//! `signer/signer.py` (version 3.1.219, pinned in `scripts/sdk_test.sh`):
//!
//! ```text
//! canonical request = METHOD \n canonical URI \n canonical query \n
//!                     name:value \n ... (one line per signed header) \n
//!                     signed headers joined by ';' \n hex(sha256(body))
//! string to sign    = SDK-HMAC-SHA256 \n <X-Sdk-Date> \n hex(sha256(canonical request))
//! signature         = hex(hmac_sha256(SK, string to sign))
//! ```
//!
//! - canonical URI: the path percent-decoded, split on `/`, each segment percent-encoded (all but
//!   `A-Z a-z 0-9 - _ . ~`), joined again, with a `/` appended if it does not end in one;
//! - canonical query: the `key=value` pairs, decoded, sorted by key then value, encoded the same
//!   way and joined by `&` (a key without `=` has the empty value);
//! - signed headers: the SDK signs every header it sets whose name has no `_` (lower-cased and
//!   sorted); values are trimmed; `X-Sdk-Date` must be among them here, so a signature cannot be
//!   replayed under another date;
//! - body hash: the SDK sends `X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD` for bodies that are not
//!   JSON or BSON and then leaves the body out of the signature; the control API takes only JSON,
//!   so such requests are refused ([`SignError::UnsignedPayload`]).
//!
//! Known difference from the SDK: it sorts repeated query values as Python values, so integers
//! of one repeated key sort numerically there and as text here. No endpoint of the cloud APIs has such a key.

use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The only algorithm accepted, as it appears at the start of `Authorization`.
pub const ALGORITHM: &str = "SDK-HMAC-SHA256";
/// The signing time, `YYYYMMDDTHHMMSSZ` (UTC).
pub const DATE_HEADER: &str = "x-sdk-date";
/// The SDK's payload-hash override (`UNSIGNED-PAYLOAD` for non-JSON bodies).
const CONTENT_HASH_HEADER: &str = "x-sdk-content-sha256";
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// Why a request's signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// No `Authorization` header, or one of another scheme (a token, ZStack's `OAuth`).
    #[error("the request carries no SDK-HMAC-SHA256 signature")]
    Missing,
    /// An `Authorization` or `X-Sdk-Date` header that cannot be read.
    #[error("malformed signature: {0}")]
    Malformed(String),
    /// `Access=` names a key other than the configured one.
    #[error("unknown access key")]
    UnknownAccessKey,
    /// The signature does not match the request: wrong secret key, or a changed request.
    #[error("the signature does not match the request")]
    BadSignature,
    /// `X-Sdk-Date` is further from the server's clock than allowed (positive: in the past).
    #[error("X-Sdk-Date is {skew_s} s away from the server's clock")]
    ClockSkew { skew_s: i64 },
    /// The request asks for its body to be left out of the signature.
    #[error("unsigned payloads are not accepted")]
    UnsignedPayload,
}

/// Verifies the AK/SK signature of a request against the configured key pair.
///
/// `path` is the request path as received (still percent-encoded), `query` the raw query
/// string without `?`. `now_unix` is the server's clock; a signing time further than
/// `max_skew_s` seconds from it either way is refused.
#[allow(clippy::too_many_arguments)]
pub fn verify(
    method: &str,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
    ak: &str,
    sk: &str,
    now_unix: i64,
    max_skew_s: i64,
) -> Result<(), SignError> {
    let auth = Authorization::from_headers(headers)?;
    if !bool::from(auth.access.as_bytes().ct_eq(ak.as_bytes())) {
        return Err(SignError::UnknownAccessKey);
    }
    if !auth.signed_headers.contains(&DATE_HEADER) {
        return Err(SignError::Malformed("X-Sdk-Date is not among the signed headers".into()));
    }
    let date = single_header(headers, DATE_HEADER)?;
    let date = std::str::from_utf8(date).map_err(|_| SignError::Malformed("X-Sdk-Date is not text".into()))?;
    let skew_s = now_unix.saturating_sub(parse_date(date)?);
    if skew_s.saturating_abs() > max_skew_s {
        return Err(SignError::ClockSkew { skew_s });
    }
    let payload_hash = payload_hash(headers, body)?;
    let canonical = canonical_request(method, path, query, headers, &auth.signed_headers, &payload_hash)?;
    let expected = hmac_sha256(sk.as_bytes(), string_to_sign(date, &canonical).as_bytes())?;
    if bool::from(expected.as_slice().ct_eq(auth.signature.as_slice())) {
        Ok(())
    } else {
        Err(SignError::BadSignature)
    }
}

/// The `Authorization` value the SDK would send for this request: every header in `headers`
/// whose name has no `_` is signed (an `Authorization` already there is not). `headers` must
/// hold `X-Sdk-Date` (and `Host`, as the SDK signs it). For clients and tests.
pub fn authorization(
    method: &str,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
    ak: &str,
    sk: &str,
) -> Result<String, SignError> {
    let date = single_header(headers, DATE_HEADER)?;
    let date = std::str::from_utf8(date).map_err(|_| SignError::Malformed("X-Sdk-Date is not text".into()))?;
    parse_date(date)?;
    let mut signed: Vec<&str> =
        headers.keys().map(|k| k.as_str()).filter(|k| !k.contains('_') && *k != "authorization").collect();
    signed.sort_unstable();
    let canonical = canonical_request(method, path, query, headers, &signed, &payload_hash(headers, body)?)?;
    let signature = hmac_sha256(sk.as_bytes(), string_to_sign(date, &canonical).as_bytes())?;
    Ok(format!("{ALGORITHM} Access={ak}, SignedHeaders={}, Signature={}", signed.join(";"), hex::encode(signature)))
}

// === impl Authorization ===

/// The parts of an `Authorization: SDK-HMAC-SHA256 ...` header.
struct Authorization<'a> {
    access: &'a str,
    signed_headers: Vec<&'a str>,
    signature: [u8; 32],
}

impl<'a> Authorization<'a> {
    fn from_headers(headers: &'a HeaderMap) -> Result<Self, SignError> {
        let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
        let value = values.next().ok_or(SignError::Missing)?;
        if values.next().is_some() {
            return Err(SignError::Malformed("more than one Authorization header".into()));
        }
        let value = value.to_str().map_err(|_| SignError::Malformed("Authorization is not ASCII".into()))?;
        let (scheme, params) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
        if scheme != ALGORITHM {
            return Err(if scheme.starts_with("SDK-") {
                SignError::Malformed(format!("unsupported signing algorithm {scheme}"))
            } else {
                SignError::Missing
            });
        }
        Self::parse_params(params)
    }

    fn parse_params(params: &'a str) -> Result<Self, SignError> {
        let (mut access, mut signed, mut signature) = (None, None, None);
        for part in params.split(',') {
            let (key, value) = part
                .trim()
                .split_once('=')
                .ok_or_else(|| SignError::Malformed(format!("`{}` is not key=value", part.trim())))?;
            let slot = match key {
                "Access" => &mut access,
                "SignedHeaders" => &mut signed,
                "Signature" => &mut signature,
                _ => return Err(SignError::Malformed(format!("unknown Authorization parameter `{key}`"))),
            };
            if slot.replace(value).is_some() {
                return Err(SignError::Malformed(format!("`{key}` given twice")));
            }
        }
        let missing = |name: &str| SignError::Malformed(format!("Authorization has no `{name}`"));
        let access = access.filter(|a| !a.is_empty()).ok_or_else(|| missing("Access"))?;
        let signed = signed.filter(|s| !s.is_empty()).ok_or_else(|| missing("SignedHeaders"))?;
        let signature = signature.ok_or_else(|| missing("Signature"))?;
        let signed_headers: Vec<&str> = signed.split(';').collect();
        if signed_headers.iter().any(|h| h.is_empty() || h.bytes().any(|b| b.is_ascii_uppercase())) {
            return Err(SignError::Malformed("SignedHeaders must be lower-case names separated by `;`".into()));
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(signature, &mut bytes)
            .map_err(|_| SignError::Malformed("Signature is not 64 hex digits".into()))?;
        Ok(Self { access, signed_headers, signature: bytes })
    }
}

// === canonical request ===

fn canonical_request(
    method: &str,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    signed_headers: &[&str],
    payload_hash: &str,
) -> Result<Vec<u8>, SignError> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(method.to_ascii_uppercase().as_bytes());
    out.push(b'\n');
    canonical_uri(path, &mut out);
    out.push(b'\n');
    canonical_query(query, &mut out);
    out.push(b'\n');
    for name in signed_headers {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        out.extend_from_slice(single_header(headers, name)?.trim_ascii());
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(signed_headers.join(";").as_bytes());
    out.push(b'\n');
    out.extend_from_slice(payload_hash.as_bytes());
    Ok(out)
}

fn canonical_uri(path: &str, out: &mut Vec<u8>) {
    let decoded = percent_decode(path.as_bytes());
    for (i, segment) in decoded.split(|&b| b == b'/').enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        percent_encode(segment, out);
    }
    if out.last() != Some(&b'/') {
        out.push(b'/');
    }
}

fn canonical_query(query: &str, out: &mut Vec<u8>) {
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k.as_bytes()), percent_decode(v.as_bytes()))
        })
        .collect();
    pairs.sort_unstable();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(b'&');
        }
        percent_encode(k, out);
        out.push(b'=');
        percent_encode(v, out);
    }
}

/// Hex SHA-256 of the body, as the SDK puts it in the canonical request.
fn payload_hash(headers: &HeaderMap, body: &[u8]) -> Result<String, SignError> {
    let actual = hex::encode(Sha256::digest(body));
    if body.is_empty() {
        return Ok(actual);
    }
    match headers.get(CONTENT_HASH_HEADER).map(|v| v.as_bytes()) {
        None => Ok(actual),
        Some(v) if v == UNSIGNED_PAYLOAD.as_bytes() => Err(SignError::UnsignedPayload),
        Some(v) if v.eq_ignore_ascii_case(actual.as_bytes()) => Ok(actual),
        Some(_) => Err(SignError::BadSignature),
    }
}

fn string_to_sign(date: &str, canonical_request: &[u8]) -> String {
    format!("{ALGORITHM}\n{date}\n{}", hex::encode(Sha256::digest(canonical_request)))
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Result<[u8; 32], SignError> {
    // HMAC takes keys of any length (longer ones are hashed): this error does not happen.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).map_err(|_| SignError::BadSignature)?;
    mac.update(data);
    Ok(mac.finalize().into_bytes().into())
}

/// The one value of a header; a signed header that is absent or repeated cannot be verified.
fn single_header<'h>(headers: &'h HeaderMap, name: &str) -> Result<&'h [u8], SignError> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(v), None) => Ok(v.as_bytes()),
        (None, _) => Err(SignError::Malformed(format!("signed header `{name}` is absent"))),
        (Some(_), Some(_)) => Err(SignError::Malformed(format!("signed header `{name}` is repeated"))),
    }
}

/// Seconds since the Unix epoch of an `X-Sdk-Date` (`20260102T030405Z`).
fn parse_date(date: &str) -> Result<i64, SignError> {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(date, &format)
        .map(|t| t.assume_utc().unix_timestamp())
        .map_err(|_| SignError::Malformed(format!("X-Sdk-Date `{date}` is not YYYYMMDDTHHMMSSZ")))
}

// === percent encoding, as Python's urllib.parse.quote(s, safe='~') and unquote ===

fn percent_encode(bytes: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
        }
    }
}

/// Decodes `%XX` escapes; a `%` not followed by two hex digits stays as it is, like Python's.
fn percent_decode(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes.get(i + 1..i + 3).filter(|h| h.iter().all(u8::is_ascii_hexdigit));
        match (bytes[i], escaped) {
            (b'%', Some(h)) => {
                out.push(hex_value(h[0]) << 4 | hex_value(h[1]));
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit - b'A' + 10,
    }
}
