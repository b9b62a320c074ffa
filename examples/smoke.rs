use lbsim::sim::{run, RunOptions, Scenario};
fn main() {
    let sc = Scenario::load(std::path::Path::new(&std::env::args().nth(1).unwrap())).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    for s in sc.strategies.clone() {
        let r = run(&sc, RunOptions::new(s)).unwrap();
        let mut v = serde_json::to_value(&r).unwrap();
        v["timeline"] = serde_json::json!(v["timeline"].as_array().unwrap().len());
        for m in v["members"].as_array_mut().unwrap() {
            m["latency_ms"] = serde_json::json!(null);
        }
        println!("{}", serde_json::to_string(&v).unwrap());
    }
}
