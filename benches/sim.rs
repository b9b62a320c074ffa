//! Simulator throughput: simulated requests per wall-clock second for a 100-member WRR channel
//! with latency recording (every request into hdrhistogram), and the same under each strategy.
//!
//!     cargo bench --bench sim
//!
//! Criterion reports time per run of 200,000 requests and elements/s = simulated requests/s.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lbsim::model::Format;
use lbsim::sim::{run, RunOptions, Scenario};
use lbsim::Strategy;
use std::time::Duration;

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

fn bench_sim(c: &mut Criterion) {
    let sc = scenario_100();
    let mut g = c.benchmark_group("sim/100_members_200k_requests");
    g.throughput(Throughput::Elements(200_000)).sample_size(10).measurement_time(Duration::from_secs(8));
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
