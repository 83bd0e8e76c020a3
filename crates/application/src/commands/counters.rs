//! The shared state behind the counter rule: last values per cumulative
//! series, sharded by series hash so concurrent requests rarely contend.

use parking_lot::Mutex;

use tf_domain::telemetry::{CounterObservation, CounterSeries, CounterStore, Rejection};

const SHARDS: usize = 16;

pub struct ShardedCounterStore {
    shards: Box<[Mutex<CounterSeries>]>,
}

impl ShardedCounterStore {
    /// `max_series` bounds the memory used (≈ 40 bytes a series).
    pub fn new(max_series: usize) -> Self {
        let per_shard = (max_series / SHARDS).max(1);
        Self {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(CounterSeries::with_capacity(per_shard)))
                .collect(),
        }
    }
}

impl CounterStore for ShardedCounterStore {
    fn observe(&self, obs: CounterObservation) -> Result<(), Rejection> {
        // The series hash is well mixed; its top bits pick the shard.
        let shard = (obs.series >> 60) as usize % SHARDS;
        self.shards[shard].lock().observe(obs)
    }
}
