#![cfg(feature = "live")]
//! `lbsim serve --state PATH`: the server process is killed (`SIGKILL`) during a stream of
//! writes, started again on the same file, and every change it acknowledged is there. Bounded:
//! at most 400 writes and 60 s.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOKEN: &str = "state-token";

/// Starts `lbsim serve` on any free port and returns it with its API address.
fn serve(state: &Path) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lbsim"))
        .args(["serve", "--listen", "127.0.0.1:0", "--token", TOKEN, "--log-level", "warn", "--state"])
        .arg(state)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("lbsim serve starts");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let addr = loop {
        let line = lines.next().expect("serve printed its address").expect("stderr line");
        if let Some(rest) = line.split("API on http://").nth(1) {
            break rest.split_whitespace().next().expect("address").parse().expect("socket address");
        }
    };
    // Keep draining stderr so that the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, addr)
}

/// One HTTP/1.1 exchange on a fresh connection: status and body, or `None` when the server is
/// gone before it answers.
fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nX-Auth-Token: {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let status = resp.split_whitespace().nth(1)?.parse().ok()?;
    let body = resp.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_string();
    Some((status, body))
}

fn temp_state() -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    std::env::temp_dir().join(format!("lbsim-state-{}-{nanos}.redb", std::process::id()))
}

#[test]
fn a_kill_during_writes_loses_no_acknowledged_change() {
    let state = temp_state();
    let (mut first, addr) = serve(&state);
    let body = r#"{"name": "durable", "port": 8080, "balance_strategy": 1, "member_type": "ip",
        "instance_ids": ["eea73cde015940908ae0117d67bf7330"], "members": [{"host": "127.0.0.1", "port": 19999}]}"#;
    let (status, created) = http(addr, "POST", "/v2/p1/apic/vpc-channels", body).expect("answer");
    assert_eq!(status, 201, "{created}");
    let created: Value = serde_json::from_str(&created).expect("json");
    let id = created["project_vpc_channels"][0]["id"].as_str().expect("id").to_string();
    let members = format!("/v2/p1/apic/instances/eea73cde015940908ae0117d67bf7330/vpc-channels/{id}/members");

    // Writer: one member per request; each 201 is an acknowledged change.
    let acked = Arc::new(Mutex::new(Vec::<u16>::new()));
    let writer = {
        let (acked, members) = (Arc::clone(&acked), members.clone());
        std::thread::spawn(move || {
            for port in 20_000..20_400u16 {
                let body = format!(r#"{{"members": [{{"host": "127.0.0.1", "port": {port}}}]}}"#);
                match http(addr, "POST", &members, &body) {
                    Some((201, _)) => acked.lock().unwrap().push(port),
                    Some((status, b)) => panic!("write {port}: {status} {b}"),
                    None => return,
                }
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.lock().unwrap().len() < 25 && Instant::now() < deadline && !writer.is_finished() {
        std::thread::sleep(Duration::from_millis(5));
    }
    first.kill().expect("SIGKILL");
    first.wait().expect("reaped");
    writer.join().expect("writer");
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 25, "only {} writes acknowledged before the kill", acked.len());

    let (mut second, addr) = serve(&state);
    let (status, listed) = http(addr, "GET", &members, "").expect("answer after restart");
    assert_eq!(status, 200, "{listed}");
    let listed: Value = serde_json::from_str(&listed).expect("json");
    let ports: Vec<u64> =
        listed["members"].as_array().expect("members").iter().filter_map(|m| m["port"].as_u64()).collect();
    let lost: Vec<&u16> = acked.iter().filter(|p| !ports.contains(&u64::from(**p))).collect();
    assert!(lost.is_empty(), "acknowledged but lost after kill -9: {lost:?}");
    assert!(ports.contains(&19_999), "the channel's first member");
    // The restored channel runs: its proxy has a port again.
    let (status, view) = http(addr, "GET", &format!("/lbsim/channels/{id}"), "").expect("answer");
    assert_eq!(status, 200);
    assert!(serde_json::from_str::<Value>(&view).expect("json")["local_port"].as_u64().is_some());
    second.kill().expect("stop");
    second.wait().expect("reaped");
    let _ = std::fs::remove_file(&state);
}
