//! Identifiers and timestamps of the control API's resources and requests.
//!
//! Ids look like the cloud APIs' (32 lowercase hex digits for ROMA, ZStack and SDRS; the 8-4-4-4-12
//! uuid form for GA and request ids). They are unique within a server and across restarts:
//! each is a hash of a per-process seed (start time and process id) and a counter.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};
use xxhash_rust::xxh3::xxh3_128_with_seed;

/// Hands out unique ids.
#[derive(Debug)]
pub struct IdGen {
    seed: u64,
    next: AtomicU64,
}

impl IdGen {
    pub fn new() -> IdGen {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        IdGen { seed: nanos ^ (u64::from(std::process::id()) << 32), next: AtomicU64::new(0) }
    }

    fn next128(&self) -> u128 {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        xxh3_128_with_seed(&n.to_le_bytes(), self.seed)
    }

    /// 32 lowercase hex digits: `105c6902457144a4820dff8b1ad63331`.
    pub fn hex32(&self) -> String {
        format!("{:032x}", self.next128())
    }

    /// `3a9f50bb-f041-4eac-a117-82472d8a0007`.
    pub fn uuid(&self) -> String {
        let h = format!("{:032x}", self.next128());
        format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
    }
}

impl Default for IdGen {
    fn default() -> Self {
        IdGen::new()
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Now as the cloud APIs write times: `2020-07-23T07:24:33Z`.
pub fn now_utc() -> String {
    utc(unix_now())
}

/// A Unix time as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian calendar, UTC).
pub fn utc(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Year, month and day of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_the_seeds_format() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        // The add-or-update-member-groups API's example: 2020-07-23T07:24:33Z.
        assert_eq!(utc(1_595_489_073), "2020-07-23T07:24:33Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn ids_are_unique_and_shaped() {
        let g = IdGen::new();
        let (a, b) = (g.hex32(), g.hex32());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        let u = g.uuid();
        assert_eq!(u.split('-').map(str::len).collect::<Vec<_>>(), [8, 4, 4, 4, 12]);
    }
}
