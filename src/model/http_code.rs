//! `http_code`: the status codes that count as a successful check, `200`, `200,201`, `200-299`
//! or `201,202,210-299`, every value within 100-599.

use std::fmt;

/// A parsed `http_code` set: sorted, merged, inclusive ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCodes {
    ranges: Vec<(u16, u16)>,
}

impl HttpCodes {
    /// Parses the create-VPC-channel API's format. Whitespace around items is allowed; an empty item is not.
    pub fn parse(s: &str) -> Result<HttpCodes, String> {
        if s.trim().is_empty() {
            return Err("must list at least one status code".into());
        }
        let mut ranges = Vec::new();
        for item in s.split(',') {
            let item = item.trim();
            let (lo, hi) = match item.split_once('-') {
                Some((a, b)) => (code(a.trim(), item)?, code(b.trim(), item)?),
                None => {
                    let c = code(item, item)?;
                    (c, c)
                }
            };
            if lo > hi {
                return Err(format!("range `{item}` ends before it starts"));
            }
            ranges.push((lo, hi));
        }
        ranges.sort_unstable();
        let mut merged: Vec<(u16, u16)> = Vec::with_capacity(ranges.len());
        for (lo, hi) in ranges {
            match merged.last_mut() {
                Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        Ok(HttpCodes { ranges: merged })
    }

    /// Whether a response status counts as success.
    pub fn contains(&self, status: u16) -> bool {
        self.ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&status))
    }

    /// The merged ranges, ascending.
    pub fn ranges(&self) -> &[(u16, u16)] {
        &self.ranges
    }
}

impl Default for HttpCodes {
    /// `200-299`, used where an HTTP check gives no `http_code`.
    fn default() -> Self {
        HttpCodes { ranges: vec![(200, 299)] }
    }
}

impl fmt::Display for HttpCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (lo, hi)) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

fn code(s: &str, item: &str) -> Result<u16, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{item}` is not a status code or a range of them"));
    }
    match s.parse::<u16>() {
        Ok(c) if (100..=599).contains(&c) => Ok(c),
        _ => Err(format!("status code {s} is outside 100-599")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_seed_formats() {
        assert_eq!(HttpCodes::parse("200").unwrap().ranges(), &[(200, 200)]);
        assert_eq!(HttpCodes::parse("200,201,202").unwrap().ranges(), &[(200, 202)]);
        assert_eq!(HttpCodes::parse("201,202,210-299").unwrap().ranges(), &[(201, 202), (210, 299)]);
        let c = HttpCodes::parse(" 200-299 , 404 ").unwrap();
        assert!(c.contains(204) && c.contains(404) && !c.contains(403) && !c.contains(300));
        assert_eq!(c.to_string(), "200-299,404");
    }

    #[test]
    fn rejects_out_of_range_and_garbage() {
        for bad in ["", "99", "600", "200-", "-200", "abc", "200,,201", "299-200", "200-600", "+200"] {
            assert!(HttpCodes::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
