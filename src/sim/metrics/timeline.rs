//! Attempts per timeline window and member.

/// Attempts started per timeline window and member, window-major: the window being filled is
/// one contiguous row, so counting an attempt touches the same few cache lines whichever member
/// it went to (a vector per member cost a cache miss per attempt at 100 members). A member's
/// `requests` is the sum of its column.
#[derive(Default)]
pub(super) struct Timeline {
    counts: Vec<u64>,
    /// Row length: members this layout has room for (doubles when full).
    stride: usize,
    members: usize,
}

impl Timeline {
    pub(super) fn add_member(&mut self, windows: usize) {
        if self.members == self.stride {
            let stride = (self.stride * 2).max(8);
            let mut counts = vec![0; windows * stride];
            for w in 0..windows {
                let (from, to) = (w * self.stride, w * stride);
                counts[to..to + self.members].copy_from_slice(&self.counts[from..from + self.members]);
            }
            self.counts = counts;
            self.stride = stride;
        }
        self.members += 1;
    }

    #[inline]
    pub(super) fn count(&mut self, w: usize, m: usize) {
        self.counts[w * self.stride + m] += 1;
    }

    pub(super) fn at(&self, w: usize, m: usize) -> u64 {
        self.counts[w * self.stride + m]
    }

    pub(super) fn total(&self, m: usize, windows: usize) -> u64 {
        (0..windows).map(|w| self.at(w, m)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::Timeline;

    #[test]
    fn timeline_keeps_counts_when_members_outgrow_its_rows() {
        let windows = 3;
        let mut tl = Timeline::default();
        for m in 0..20 {
            tl.add_member(windows);
            // Member m gets m + 1 attempts in window m % 3, counted before later members join.
            for _ in 0..=m {
                tl.count(m % windows, m);
            }
        }
        assert_eq!(tl.stride, 32);
        for m in 0..20 {
            for w in 0..windows {
                assert_eq!(tl.at(w, m), if w == m % windows { m as u64 + 1 } else { 0 }, "window {w} member {m}");
            }
            assert_eq!(tl.total(m, windows), m as u64 + 1);
        }
    }
}
