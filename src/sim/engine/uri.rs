//! The simulated requests' paths: `/api/v1/items/{index}` for the URI pool's index.

/// Request paths are this followed by the URI's index.
pub(crate) const URI_PREFIX: &str = "/api/v1/items/";

/// `/api/v1/items/{uri}` into `buf` (cleared first), digits written directly: the `fmt`
/// machinery costs as much as the URI hash's whole selection.
#[inline]
pub(crate) fn write_uri(buf: &mut String, uri: u32) {
    buf.clear();
    buf.push_str(URI_PREFIX);
    let mut digits = [0u8; 10];
    let mut n = uri;
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        buf.push(char::from(d));
    }
}

#[cfg(test)]
mod tests {
    use super::write_uri;

    #[test]
    fn uri_paths_as_format_writes_them() {
        let mut buf = String::from("left over");
        for uri in [0, 7, 10, 99, 100, 12_345, 999_999, 1_000_000, u32::MAX] {
            write_uri(&mut buf, uri);
            assert_eq!(buf, format!("/api/v1/items/{uri}"));
        }
    }
}
