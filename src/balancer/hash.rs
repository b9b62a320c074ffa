//! Consistent weighted hashing for source-IP (3) and URI (4) hash: weighted rendezvous hashing
//! (HRW, "highest random weight") precomputed into a bucket table.
//!
//! The key space is cut into `2^bits` buckets; a key's bucket is the top bits of its 64-bit hash.
//! Each bucket ranks the members by an exponential race: member `i` draws `E_i = -ln(u_i) / w_i`
//! with `u_i` a hash of (bucket, member identity), and the smallest `E` wins. That ranking is
//! the bucket's **preference order**: it is weighted (member `i` wins a bucket with probability
//! `w_i / sum(w)`), and consistent (it depends only on the bucket and the identities, so when a
//! member becomes ineligible exactly its buckets move, each to its next choice, and they move
//! back when it returns). The table stores each bucket's first eligible choice, so a pick is one
//! hash and one load.
//!
//! Why HRW over a Maglev table: Maglev's disruption is not minimal and it has no per-key
//! fallback order; ketama needs many virtual nodes per member and a binary search per pick.
//! HRW gives minimal disruption and the preference order for free; its cost, O(buckets x
//! members) to build, is paid when the eligible set changes, not per pick.

use std::net::IpAddr;
use xxhash_rust::xxh3::xxh3_64;

/// How a URI becomes a hash key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UriHashKey {
    /// The path as sent, without the query (default).
    #[default]
    Path,
    /// Path and query. A `#fragment` is never part of the key.
    PathQuery,
}

/// 64-bit hash of a client address; an IPv4-mapped IPv6 address hashes as its IPv4 address.
#[inline]
pub fn ip_key(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(v4) => xxh3_64(&v4.octets()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => xxh3_64(&v4.octets()),
            None => xxh3_64(&v6.octets()),
        },
    }
}

/// 64-bit hash of a request URI's key part, as sent (no percent-decoding).
#[inline]
pub fn uri_key(uri: &str, mode: UriHashKey) -> u64 {
    xxh3_64(uri_key_part(uri, mode).as_bytes())
}

/// The part of a URI that is hashed: the path (to `?` or `#`), or path and query (to `#`).
/// An absolute-form URI (`http://host/path`) is keyed by its path too.
pub fn uri_key_part(uri: &str, mode: UriHashKey) -> &str {
    let uri = strip_authority(uri);
    let end = match mode {
        UriHashKey::Path => memchr::memchr2(b'?', b'#', uri.as_bytes()),
        UriHashKey::PathQuery => memchr::memchr(b'#', uri.as_bytes()),
    };
    match end {
        Some(e) => &uri[..e],
        None => uri,
    }
}

fn strip_authority(uri: &str) -> &str {
    if uri.starts_with('/') {
        return uri;
    }
    match uri.find("://") {
        Some(i) => {
            let rest = &uri[i + 3..];
            match rest.find(['/', '?', '#']) {
                Some(j) => &rest[j..],
                None => "/",
            }
        }
        None => uri,
    }
}

/// splitmix64's finalizer: a fast, well-distributed 64-bit mix.
#[inline]
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A stable per-candidate seed (member identity or group name).
pub(crate) fn seed_of(name: &str) -> u64 {
    xxh3_64(name.as_bytes())
}

/// The seed of bucket `b`.
#[inline]
pub(crate) fn bucket_seed(b: usize) -> u64 {
    mix((b as u64).wrapping_add(0x9E37_79B9_7F4A_7C15))
}

/// One candidate's draw in one bucket's race: its race time `E = -ln(u) / w`, with `u` in
/// (0, 1] from the top 53 bits `h` of the mixed hash of (bucket, candidate seed).
///
/// Draws are totally ordered: the shorter race time first, then the larger `h` (within one weight
/// the time falls as `h` grows, so this only separates times that rounded equal), then the lower
/// index. A race's winner is its least draw, so taking out any candidate but the winner, or
/// adding one whose draw is greater, leaves the winner as it was: what lets a table be carried
/// over from the previous one (`table.rs`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Draw {
    time: f64,
    h: u64,
    pub(crate) idx: u32,
}

impl Draw {
    #[inline]
    pub(crate) fn new(bucket_seed: u64, seed: u64, w: u32, idx: u32) -> Draw {
        Draw::of_hash(mix(bucket_seed ^ seed) >> 11, w, idx)
    }

    /// The draw of a race with one candidate (nothing to draw).
    pub(crate) fn only(idx: u32) -> Draw {
        Draw { time: 0.0, h: 0, idx }
    }

    #[inline]
    fn of_hash(h: u64, w: u32, idx: u32) -> Draw {
        let u = (h as f64 + 1.0) * (1.0 / (1u64 << 53) as f64);
        Draw { time: -u.ln() / f64::from(w), h, idx }
    }

    #[inline]
    pub(crate) fn cmp(&self, other: &Draw) -> std::cmp::Ordering {
        self.time.total_cmp(&other.time).then(other.h.cmp(&self.h)).then(self.idx.cmp(&other.idx))
    }

    #[inline]
    pub(crate) fn before(&self, other: &Draw) -> bool {
        self.cmp(other).is_lt()
    }
}

/// Candidates of one race level: `(index, seed, weight)`, grouped by weight so that the winner
/// among equal weights is found by comparing raw hashes, with one logarithm per weight class.
pub(crate) struct Race {
    classes: Vec<(u32, Vec<(u32, u64)>)>,
}

impl Race {
    pub(crate) fn new(cands: impl IntoIterator<Item = (u32, u64, u32)>) -> Race {
        let mut classes: Vec<(u32, Vec<(u32, u64)>)> = Vec::new();
        for (idx, seed, w) in cands {
            if w == 0 {
                continue;
            }
            match classes.iter_mut().find(|(cw, _)| *cw == w) {
                Some((_, v)) => v.push((idx, seed)),
                None => classes.push((w, vec![(idx, seed)])),
            }
        }
        Race { classes }
    }

    /// The seed a candidate was registered with.
    pub(crate) fn candidate_seed(&self, idx: u32) -> Option<u64> {
        self.candidates().find(|c| c.0 == idx).map(|c| c.1)
    }

    /// Every candidate: `(index, seed, weight)`, by weight class.
    pub(crate) fn candidates(&self) -> impl Iterator<Item = (u32, u64, u32)> + '_ {
        self.classes.iter().flat_map(|(w, v)| v.iter().map(move |&(i, s)| (i, s, *w)))
    }

    /// The winner of bucket `bseed`: the least draw.
    pub(crate) fn winner(&self, bseed: u64) -> Option<u32> {
        let mut best: Option<Draw> = None;
        for (w, cands) in &self.classes {
            // Within a weight class the least draw has the largest hash: compare integers, and
            // take one logarithm for the class's best.
            let mut top: Option<(u64, u32)> = None;
            for &(idx, seed) in cands {
                let h = mix(bseed ^ seed) >> 11;
                if top.is_none_or(|(th, ti)| h > th || (h == th && idx < ti)) {
                    top = Some((h, idx));
                }
            }
            let Some((h, idx)) = top else { continue };
            let d = Draw::of_hash(h, *w, idx);
            if best.is_none_or(|b| d.before(&b)) {
                best = Some(d);
            }
        }
        best.map(|d| d.idx)
    }
}

/// Table size in bits for `n` candidates: large enough that each member's share of buckets is
/// close to its weight share, small enough that a rebuild stays in the tens of milliseconds.
pub(crate) fn default_bits(n: usize) -> u8 {
    let n = n.max(1) as u64;
    // About 2^24 (bucket, member) evaluations per build at most (tens of milliseconds): 2^20
    // buckets up to 16 members, then fewer, never under 2^16.
    let bits = 63 - ((1u64 << 24) / n).max(1).leading_zeros() as u8;
    bits.clamp(16, 20)
}

/// Bucket of a key hash in a table of `2^bits` buckets.
#[inline]
pub(crate) fn bucket_of(key: u64, bits: u8) -> usize {
    (key >> (64 - u32::from(bits))) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_ipv4_hashes_as_ipv4() {
        let v4: IpAddr = "10.1.2.3".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(ip_key(v4), ip_key(mapped));
        assert_ne!(ip_key(v4), ip_key(v6));
    }

    #[test]
    fn uri_key_parts() {
        use UriHashKey::*;
        assert_eq!(uri_key_part("/a/b?x=1#f", Path), "/a/b");
        assert_eq!(uri_key_part("/a/b?x=1#f", PathQuery), "/a/b?x=1");
        assert_eq!(uri_key_part("/a%2Fb", Path), "/a%2Fb");
        assert_eq!(uri_key_part("/a#f?x", PathQuery), "/a");
        assert_eq!(uri_key_part("http://h:80/p?q", Path), "/p");
        assert_eq!(uri_key_part("http://h", Path), "/");
        assert_ne!(uri_key("/a%2Fb", Path), uri_key("/a/b", Path));
    }

    #[test]
    fn race_winner_is_the_least_draw() {
        let cands: Vec<(u32, u64, u32)> = (0..20).map(|i| (i, seed_of(&format!("m{i}")), 1 + i % 4)).collect();
        let r = Race::new(cands.iter().copied());
        for b in 0..2000 {
            let bs = bucket_seed(b);
            let expect = cands.iter().map(|&(i, s, w)| Draw::new(bs, s, w, i)).min_by(|a, b| a.cmp(b)).map(|d| d.idx);
            assert_eq!(r.winner(bs), expect);
        }
    }

    #[test]
    fn draws_of_equal_time_order_by_hash_then_index() {
        let a = Draw { time: 1.0, h: 5, idx: 3 };
        assert!(Draw { h: 6, ..a }.before(&a), "larger hash first");
        assert!(Draw { idx: 2, ..a }.before(&a), "then lower index");
        assert!(Draw { time: 0.5, h: 0, ..a }.before(&a), "shorter time first of all");
        assert!(!a.before(&a));
    }
}
