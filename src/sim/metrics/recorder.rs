//! Latency recording on every request's path.

use crate::report::Latency;
use hdrhistogram::Histogram;

/// A latency histogram (hdrhistogram, auto-resizing, so any latency fits) recorded per request
/// with 16-bit counts: a quarter of the memory of 64-bit ones, so that 100 members' hot buckets
/// stay in cache (recording is a cache miss otherwise). Every `u16::MAX` records, before any
/// count could saturate, the counts move into a 64-bit histogram of the same precision, bucket
/// for bucket, so percentiles, max and mean come out as if every value had gone there.
pub(super) struct Recorder {
    hot: Histogram<u16>,
    all: Histogram<u64>,
}

impl Recorder {
    /// The run's histogram: 3 significant digits.
    pub(super) fn run() -> Recorder {
        Recorder::new(3)
    }

    /// A member's histogram: 2 significant digits (1% resolution); at 3 digits 100 members'
    /// histograms outgrow the caches.
    pub(super) fn member() -> Recorder {
        Recorder::new(2)
    }

    fn new(digits: u8) -> Recorder {
        fn histogram<T: hdrhistogram::Counter>(digits: u8) -> Histogram<T> {
            Histogram::new(digits).unwrap_or_else(|_| unreachable!("2 and 3 significant digits are valid"))
        }
        Recorder { hot: histogram(digits), all: histogram(digits) }
    }

    /// Records microseconds (0 counts as 1).
    #[inline]
    pub(super) fn record(&mut self, us: u64) {
        if self.hot.len() >= u64::from(u16::MAX) {
            self.spill();
        }
        let _ = self.hot.record(us.max(1));
    }

    fn spill(&mut self) {
        for v in self.hot.iter_recorded() {
            let _ = self.all.record_n(v.value_iterated_to(), u64::from(v.count_at_value()));
        }
        self.hot.reset();
    }

    /// The percentiles of everything recorded: from the 16-bit counts when they never spilled
    /// (the same buckets; a walk of the histogram and a copy less per member at the end).
    pub(super) fn latency(&mut self) -> Latency {
        if self.all.is_empty() {
            Latency::from_micros(&self.hot)
        } else {
            Latency::from_micros(self.histogram())
        }
    }

    /// Everything recorded.
    pub(super) fn histogram(&mut self) -> &Histogram<u64> {
        self.spill();
        &self.all
    }
}
