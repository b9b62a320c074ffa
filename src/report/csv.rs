//! CSV: a header row, then one row per (run, member). RFC 4180: CRLF-free (`\n` line ends, which
//! every reader accepts), a field with a comma, quote or line break is quoted with its quotes
//! doubled, and a null is an empty field.

use super::Report;

const HEADER: &str = "scenario,strategy,mode,seed,member,group,weight,backup,az,requests,share,expected_share,p50_ms,p99_ms,peak_in_flight";

pub(crate) fn render(runs: &[Report]) -> String {
    let mut out = String::from(HEADER);
    out.push('\n');
    let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    for r in runs {
        for m in &r.members {
            let fields = [
                r.scenario.clone(),
                r.strategy.clone(),
                r.mode.clone(),
                r.seed.to_string(),
                m.member.clone(),
                m.group.clone().unwrap_or_default(),
                m.weight.to_string(),
                m.backup.to_string(),
                m.az.clone().unwrap_or_default(),
                m.requests.to_string(),
                m.share.to_string(),
                m.expected_share.to_string(),
                opt(m.latency_ms.p50),
                opt(m.latency_ms.p99),
                m.peak_in_flight.to_string(),
            ];
            let line: Vec<String> = fields.iter().map(|f| field(f)).collect();
            out.push_str(&line.join(","));
            out.push('\n');
        }
    }
    out
}

/// One field, quoted when it must be.
fn field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn fields_are_quoted_only_when_needed() {
        assert_eq!(field("a:1"), "a:1");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
    }
}
