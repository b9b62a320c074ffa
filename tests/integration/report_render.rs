//! The report renderers (architecture.md §7) over a fixed two-run comparison: WRR and SH over three
//! members, one `down` fault, a timeline, a latency CDF and health transitions.
//!
//! `LBSIM_FIXTURE_DIR=/tmp cargo test --test report_render` also writes the fixture's HTML report
//! to `/tmp/report_fixture.html` (and a crowded one to `/tmp/report_wide.html`), to look at.

use lbsim::report::*;
use std::collections::BTreeMap;

const MEMBERS: [&str; 3] = ["10.0.0.1:8080", "10.0.0.2:8080", "edge,3:8080"];

fn latency(scale: f64) -> Latency {
    Latency {
        p50: Some(4.0 * scale),
        p90: Some(12.5 * scale),
        p99: Some(80.25 * scale),
        p999: Some(400.0 * scale),
        max: Some(1200.0 * scale),
        mean: Some(9.125 * scale),
    }
}

fn health(points: &[(f64, &str)]) -> Vec<HealthPoint> {
    points.iter().map(|&(at_s, state)| HealthPoint { at_s, state: state.to_string() }).collect()
}

fn run(strategy: &str, shares: [f64; 3], hash: Option<HashReport>) -> Report {
    let weights = [1, 1, 2];
    let expected = [0.25, 0.25, 0.5];
    let members: Vec<MemberReport> = (0..3)
        .map(|i| MemberReport {
            member: MEMBERS[i].to_string(),
            group: if i < 2 { Some("blue".to_string()) } else { None },
            weight: weights[i],
            backup: i == 2,
            az: Some(format!("AZ0{}", i % 2 + 1)),
            requests: (shares[i] * 10_000.0).round() as u64,
            share: shares[i],
            expected_share: expected[i],
            latency_ms: if i == 0 { Latency { p99: None, ..latency(1.0) } } else { latency(1.0 + i as f64) },
            peak_in_flight: 10 + i as u64,
            health: match i {
                0 if hash.is_some() => health(&[(0.0, "healthy"), (75.0, "unhealthy")]),
                0 => health(&[(0.0, "healthy"), (75.0, "unhealthy"), (130.0, "healthy")]),
                1 => health(&[(0.0, "healthy"), (200.0, "ejected"), (230.0, "healthy")]),
                _ => Vec::new(),
            },
        })
        .collect();
    let timeline = (0..30)
        .map(|k| {
            let t_s = k as f64 * 10.0;
            let down = (60.0..130.0).contains(&t_s);
            let per_member: BTreeMap<String, u64> = MEMBERS
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    let base = [250, 250, 500][i] + (k * 7 % 13) as u64;
                    (m.to_string(), if down && i == 0 { 0 } else { base })
                })
                .collect();
            TimelineEntry { t_s, per_member }
        })
        .collect();
    let cdf = [0.5, 1.0, 2.0, 4.0, 8.0, 12.5, 30.0, 80.25, 400.0, 1200.0];
    let stretch = if hash.is_some() { 1.6 } else { 1.0 };
    let latency_cdf =
        cdf.iter().enumerate().map(|(i, &ms)| (ms * stretch, (i + 1) as f64 / cdf.len() as f64)).collect();
    let mut failed_by_reason = BTreeMap::new();
    failed_by_reason.insert("refused".to_string(), 120);
    Report {
        scenario: "demo <lb> & co".to_string(),
        strategy: strategy.to_string(),
        mode: "sim".to_string(),
        seed: 42,
        duration_s: 300.0,
        requests: Requests { total: 10_000, ok: 9_880, failed: 120, retried: 30, failed_by_reason },
        latency_ms: Latency { p999: None, ..latency(1.0) },
        fairness: Fairness::of(shares.iter().copied().zip(expected)),
        members,
        faults: vec![FaultReport {
            member: Some(MEMBERS[0].to_string()),
            az: None,
            kind: "down".to_string(),
            at_s: 60.0,
            until_s: Some(120.0),
            detected_at_s: Some(75.0),
            recovered_at_s: if hash.is_some() { None } else { Some(130.0) },
            failed_requests: 120,
        }],
        hash,
        timeline,
        endpoint_groups: Vec::new(),
        protection_group: None,
        sim: Some(SimStats { events: 123_456, wall_ms: None, requests_per_s: None }),
        balancer: lbsim::balancer::Options::default(),
        latency_cdf,
    }
}

fn fixture() -> Vec<Report> {
    vec![
        run("wrr", [0.2512, 0.2488, 0.5], None),
        run(
            "sh",
            [0.3126, 0.1874, 0.5],
            Some(HashReport {
                keys: 5000,
                remapped_on_fault: Some(0.33),
                returned_on_recovery: None,
                moved_off_first_choice: None,
            }),
        ),
    ]
}

#[test]
fn json_of_one_run_has_every_key_in_order_with_nulls() {
    let runs = fixture();
    let text = render(&runs[..1], OutputFormat::Json);
    assert!(text.ends_with("}\n"));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let keys = crate::support::TOP_KEYS;
    let obj = v.as_object().unwrap();
    for k in keys {
        assert!(obj.contains_key(k), "missing key {k}");
    }
    // Stable order: as the struct declares them.
    let pos: Vec<usize> = keys.iter().map(|k| text.find(&format!("\n  \"{k}\":")).unwrap()).collect();
    assert!(pos.windows(2).all(|p| p[0] < p[1]), "keys out of order: {pos:?}");
    assert!(v["hash"].is_null());
    assert!(v["protection_group"].is_null());
    assert_eq!(v["endpoint_groups"], serde_json::json!([]));
    assert!(v["latency_ms"]["p999"].is_null());
    assert!(v["members"][0]["latency_ms"]["p99"].is_null());
    assert!(v["members"][2]["group"].is_null());
    assert!(obj.get("latency_cdf").is_none(), "latency_cdf is not part of the JSON contract");
    assert_eq!(v["strategy"], "wrr");
}

#[test]
fn json_of_several_runs_is_a_comparison() {
    let runs = fixture();
    let text = render(&runs, OutputFormat::Json);
    assert!(text.ends_with('\n'));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v.as_object().unwrap().keys().collect::<Vec<_>>(), ["runs"]);
    let list = v["runs"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[1]["strategy"], "sh");
    assert_eq!(list[1]["hash"]["keys"], 5000);
    assert!(list[1]["hash"]["returned_on_recovery"].is_null());
}

fn line_starting<'a>(text: &'a str, start: &str) -> &'a str {
    text.lines().find(|l| l.trim_start().starts_with(start)).unwrap_or_else(|| panic!("no line `{start}` in\n{text}"))
}

fn cells(line: &str) -> Vec<&str> {
    line.split("  ").map(str::trim).filter(|c| !c.is_empty()).collect()
}

#[test]
fn table_shows_share_beside_expected_per_run_and_dashes_for_nulls() {
    let runs = fixture();
    let text = render(&runs, OutputFormat::Table);
    let head = text.lines().next().unwrap();
    assert!(head.contains("demo <lb> & co") && head.contains("42") && head.contains("300 s") && head.contains("sim"));
    assert!(!text.contains('\x1b'), "no colors");
    let header = line_starting(&text, "member ");
    assert!(header.contains("wrr share%  wrr expected%  sh share%  sh expected%"), "{header}");
    let expect = [
        ("10.0.0.1:8080", ["25.1", "25.0", "31.3", "25.0"]),
        ("10.0.0.2:8080", ["24.9", "25.0", "18.7", "25.0"]),
        ("edge,3:8080", ["50.0", "50.0", "50.0", "50.0"]),
    ];
    for (member, figures) in expect {
        let row = cells(line_starting(&text, member));
        assert_eq!(&row[row.len() - 4..], figures, "{member}");
    }
    assert_eq!(cells(line_starting(&text, "edge,3:8080"))[1..5], ["-", "2", "yes", "AZ01"]);
    assert_eq!(cells(line_starting(&text, "hash remapped %")), ["hash remapped %", "-", "33.0"]);
    assert_eq!(cells(line_starting(&text, "hash returned %")), ["hash returned %", "-", "-"]);
    assert_eq!(cells(line_starting(&text, "latency p99.9 ms")), ["latency p99.9 ms", "-", "-"]);
    assert_eq!(cells(line_starting(&text, "latency p50 ms")), ["latency p50 ms", "4.00", "4.00"]);
    assert_eq!(cells(line_starting(&text, "failed: refused")), ["failed: refused", "120", "120"]);
    assert_eq!(cells(line_starting(&text, "sim events")), ["sim events", "123456", "123456"]);
    assert!(!text.contains("sim requests/s"), "left out when no run has it");
    let fault = cells(line_starting(&text, "down "));
    assert_eq!(fault, ["down", "10.0.0.1:8080", "60", "120", "75", "130", "120", "75", "-", "120"]);
    assert!(!text.contains("endpoint groups") && !text.contains("protection group"));
    // Columns line up: every row of the member table is as wide as its header.
    let col = header.find("sh expected%").unwrap() + "sh expected%".len();
    for (member, _) in expect {
        assert_eq!(line_starting(&text, member).len(), col, "{member}");
    }
}

#[test]
fn csv_has_a_row_per_run_and_member_and_quotes_commas() {
    let runs = fixture();
    let text = render(&runs, OutputFormat::Csv);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "scenario,strategy,mode,seed,member,group,weight,backup,az,requests,share,expected_share,p50_ms,p99_ms,peak_in_flight"
    );
    assert_eq!(lines.len(), 7);
    assert_eq!(lines[1], "demo <lb> & co,wrr,sim,42,10.0.0.1:8080,blue,1,false,AZ01,2512,0.2512,0.25,4,,10");
    assert_eq!(lines[6], "demo <lb> & co,sh,sim,42,\"edge,3:8080\",,2,true,AZ01,5000,0.5,0.5,12,240.75,12");
    assert!(lines[1..].iter().all(|l| l.starts_with("demo <lb> & co,")));
}

#[test]
fn html_is_one_self_contained_deterministic_file_with_four_charts() {
    let runs = fixture();
    let html = render(&runs, OutputFormat::Html);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<meta charset=\"utf-8\">"));
    assert!(html.contains("<title>lbsim report: demo &lt;lb&gt; &amp; co</title>"));
    assert_eq!(html.matches("<svg").count(), 4);
    assert_eq!(html.matches("</svg>").count(), 4);
    assert!(!html.contains("http://") && !html.contains("https://"));
    assert!(!html.contains("<script"), "no scripts at all");
    assert!(!html.contains("<link") && !html.contains("@import") && !html.contains("url("));
    assert!(!html.contains("demo <lb>"), "unescaped scenario name");
    assert!(html.contains("demo &lt;lb&gt; &amp; co"));
    for m in MEMBERS {
        assert!(html.contains(m), "{m}");
    }
    assert!(html.contains("ejected"), "other health states are in the legend");
    assert!(html.contains("log scale"), "latencies span more than 100x");
    assert_eq!(html, render(&runs, OutputFormat::Html), "same input, same bytes");
    write_fixture("report_fixture.html", &html);
}

/// Whether the tags of `doc` balance: every element closed in order, except void and
/// self-closed ones. Returns the first problem.
fn check_tags(doc: &str) -> Result<(), String> {
    const VOID: [&str; 4] = ["meta", "br", "hr", "img"];
    let mut stack: Vec<String> = Vec::new();
    let mut rest = doc;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        let end = rest.find('>').ok_or("unterminated tag")?;
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            match stack.pop() {
                Some(open) if open == name.trim() => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
            continue;
        }
        let name: String = tag.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
        if name.is_empty() {
            return Err(format!("bad tag <{tag}>"));
        }
        if !tag.ends_with('/') && !VOID.contains(&name.as_str()) {
            stack.push(name);
        }
    }
    if stack.is_empty() {
        Ok(())
    } else {
        Err(format!("unclosed: {stack:?}"))
    }
}

#[test]
fn html_tags_balance_in_every_chart_and_in_the_page() {
    let html = render(&fixture(), OutputFormat::Html);
    let mut rest = html.as_str();
    let mut charts = 0;
    while let Some(start) = rest.find("<svg") {
        let len = rest[start..].find("</svg>").expect("an <svg> without </svg>") + "</svg>".len();
        check_tags(&rest[start..start + len]).unwrap();
        rest = &rest[start + len..];
        charts += 1;
    }
    assert_eq!(charts, 4);
    check_tags(&html).unwrap();
    assert!(check_tags("<svg><g><rect/></svg>").is_err(), "the checker catches an unclosed tag");
}

#[test]
fn one_run_and_edge_cases_render() {
    let runs = fixture();
    let one = render(&runs[1..], OutputFormat::Table);
    assert!(line_starting(&one, "member ").contains("sh share%  sh expected%"));
    let mut live = runs[0].clone();
    live.mode = "live".to_string();
    live.sim = None;
    live.timeline.clear();
    live.latency_cdf.clear();
    live.members[0].health.clear();
    let table = render(&[runs[0].clone(), live.clone()], OutputFormat::Table);
    assert!(table.lines().nth(3).unwrap().trim_end().ends_with("wrr  wrr (live)"), "{table}");
    let html = render(&[live], OutputFormat::Html);
    assert_eq!(html.matches("<svg").count(), 4);
    check_tags(&html).unwrap();
    for f in OutputFormat::ALL {
        let empty = render(&[], f);
        assert!(!empty.is_empty(), "{f}");
    }
    assert_eq!(render(&[], OutputFormat::Json), "{\n  \"runs\": []\n}\n");
}

fn write_fixture(name: &str, html: &str) {
    if let Ok(dir) = std::env::var("LBSIM_FIXTURE_DIR") {
        std::fs::write(std::path::Path::new(&dir).join(name), html).unwrap();
    }
}

/// Five runs (every strategy, and one live) over twelve long-named members, overlapping faults,
/// endpoint groups and a protection group.
fn crowded() -> Vec<Report> {
    let base = fixture().remove(1);
    let names: Vec<String> = (1..=12).map(|i| format!("backend-{i:02}.zone-b.internal.example:8443")).collect();
    let strategies = [("wrr", "sim"), ("wlc", "sim"), ("sh", "sim"), ("uri", "sim"), ("wrr", "live")];
    strategies
        .iter()
        .enumerate()
        .map(|(k, &(strategy, mode))| {
            let mut r = base.clone();
            r.strategy = strategy.to_string();
            r.mode = mode.to_string();
            r.members = names
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    let mut m = base.members[i % 3].clone();
                    m.member = name.clone();
                    m.share = (1.0 + ((i + k) % 4) as f64) / 30.0;
                    m.expected_share = 1.0 / 12.0;
                    m
                })
                .collect();
            for e in &mut r.timeline {
                e.per_member = names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (n.clone(), 40 + (i as u64 * 13 + e.t_s as u64) % 50))
                    .collect();
            }
            r.faults.push(FaultReport {
                member: None,
                az: Some("AZ01".to_string()),
                kind: "az_down".to_string(),
                at_s: 90.0,
                until_s: None,
                detected_at_s: None,
                recovered_at_s: None,
                failed_requests: 7,
            });
            r.endpoint_groups = vec![EndpointGroupReport {
                name: "eg-ap".to_string(),
                region_id: "ap-southeast-1".to_string(),
                traffic_dial_percentage: 30,
                status: "ACTIVE".to_string(),
                requests: 3000,
                share: 0.3,
            }];
            r.protection_group = Some(ProtectionGroupReport {
                name: "pg1".to_string(),
                job_id: Some("job-1".to_string()),
                started_at_s: Some(90.0),
                finished_at_s: Some(120.0),
                status: "failed_over".to_string(),
                failed_requests: 7,
            });
            if mode == "live" {
                r.sim = None;
            }
            r
        })
        .collect()
}

#[test]
fn crowded_comparison_renders_every_section() {
    let runs = crowded();
    let table = render(&runs, OutputFormat::Table);
    for section in ["endpoint groups", "protection group", "az AZ01", "wrr (live)", "eg-ap", "failed_over"] {
        assert!(table.contains(section), "{section}");
    }
    let html = render(&runs, OutputFormat::Html);
    assert_eq!(html.matches("<svg").count(), 4);
    check_tags(&html).unwrap();
    assert!(html.contains("rotate("), "long member names are slanted");
    write_fixture("report_wide.html", &html);
}
