//! The run's random streams, one per model, each seeded from the run's seed and its own index:
//! changing one model (or leaving out a draw a strategy does not use) never reshuffles another.

use crate::sim::traffic::mix_seed;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub(super) struct Streams {
    pub(super) arrivals: ChaCha8Rng,
    pub(super) clients: ChaCha8Rng,
    pub(super) uris: ChaCha8Rng,
    pub(super) service: ChaCha8Rng,
    pub(super) faults: ChaCha8Rng,
    pub(super) probes: ChaCha8Rng,
    /// GA: the endpoint group a request goes to.
    pub(super) groups: ChaCha8Rng,
}

impl Streams {
    pub(super) fn new(seed: u64) -> Streams {
        let s = |k: u64| ChaCha8Rng::seed_from_u64(mix_seed(seed, k));
        Streams { arrivals: s(1), clients: s(2), uris: s(3), service: s(4), faults: s(5), probes: s(6), groups: s(7) }
    }
}
