//! Simulator throughput: simulated requests per wall-clock second for a 100-member WRR channel
//! with latency recording (every request into hdrhistogram), and the same under each strategy.
//!
//!     cargo bench --bench sim
//!
//! Criterion reports time per run of 200,000 requests and elements/s = simulated requests/s.
//! `baseline` is the floor under any engine: only each request's two random draws (arrival gap,
//! lognormal service time, on ChaCha8 streams) and its two latency records (its member's
//! histogram and the run's); `python3 benches/criterion_table.py sim` prints each strategy as a
//! multiple of it, a ratio that the machine's load disturbs less than the times.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use hdrhistogram::Histogram;
use lbsim::model::Format;
use lbsim::sim::traffic::ServiceTime;
use lbsim::sim::{run, RunOptions, Scenario};
use lbsim::Strategy;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::Exp1;
use std::time::Duration;

const REQUESTS: u32 = 200_000;

/// 100 members with weights 1-5 and a health check; 20,000 rps for 10 s = 200,000 requests.
fn scenario_100() -> Scenario {
    let members: Vec<String> = (0..100)
        .map(|i| format!(r#"{{ host = "192.168.{}.{}", weight = {} }}"#, i / 200, i % 200 + 1, i % 5 + 1))
        .collect();
    let text = format!(
        r#"
name = "bench_100"
seed = 1
duration_s = 10
[traffic]
rate_rps = 20000
clients = 10000
uris = 10000
service_time_ms = {{ dist = "lognormal", median = 20, p99 = 200 }}
[channel]
name = "bench_channel"
port = 8080
balance_strategy = 1
member_type = "ip"
instance_ids = ["eea73cde015940908ae0117d67bf7330"]
members = [{}]
vpc_health_config = {{ protocol = "HTTP", path = "/h", threshold_normal = 2, threshold_abnormal = 3, time_interval = 5, timeout = 2, http_code = "200" }}
"#,
        members.join(", ")
    );
    Scenario::parse(&text, Format::Toml).expect("bench scenario is valid")
}

/// What `REQUESTS` requests cost with no engine around them (see the top of the file).
fn floor() -> u64 {
    let service = ServiceTime::Lognormal { median: 20.0, p99: 200.0 }.sampler();
    let (mut arrivals, mut draws) = (ChaCha8Rng::seed_from_u64(1), ChaCha8Rng::seed_from_u64(2));
    let mut members: Vec<Histogram<u32>> = (0..100).map(|_| Histogram::new(2).expect("valid precision")).collect();
    let mut all = Histogram::<u64>::new(3).expect("valid precision");
    let mut t = 0.0;
    for i in 0..REQUESTS {
        t += arrivals.sample::<f64, _>(Exp1) / 20_000.0;
        let latency = ((service.sample(&mut draws) * 1e3) as u64).max(1);
        let _ = members[i as usize % 100].record(latency);
        let _ = all.record(latency);
    }
    black_box(t);
    all.len() + members.iter().map(Histogram::len).sum::<u64>()
}

fn bench_sim(c: &mut Criterion) {
    let sc = scenario_100();
    let mut g = c.benchmark_group("sim/100_members_200k_requests");
    g.throughput(Throughput::Elements(u64::from(REQUESTS))).sample_size(10).measurement_time(Duration::from_secs(8));
    g.bench_function("baseline", |b| b.iter(floor));
    for s in Strategy::ALL {
        g.bench_function(s.name(), |b| {
            b.iter(|| {
                let mut o = RunOptions::new(s);
                o.deterministic = true;
                run(&sc, o).expect("run")
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_sim);
criterion_main!(benches);
