//! ZStack's add-backend-servers, Global Accelerator's add-endpoint-group and SDRS's
//! create-protection-group bodies.

use super::{at, idx, ip, no_duplicates, opt_range, opt_text, required, text, Chars, Letters, Text};
use crate::model::{
    Api, BackendServersBody, Collector, EndpointGroupBody, Problem, ProtectionGroupBody, Validate, ValidationErrors,
};
use std::collections::BTreeMap;

const GA_NAME: Text = Text::of(1, 64, Chars::set(Letters::Ascii, true, "-"));
const GA_DESCRIPTION: Text = Text::of(0, 255, Chars::AnyBut("<>"));
const SDRS_NAME: Text = Text::of(1, 64, Chars::set(Letters::Ascii, true, "._-")).bytes();
const SDRS_DESCRIPTION: Text = Text::of(0, 64, Chars::AnyBut("<>")).bytes();

impl Validate for BackendServersBody {
    const API: Api = Api::Zstack;
    fn validate(&self) -> ValidationErrors {
        let mut c = Collector::new(Self::API);
        let p = &self.params;
        if p.servers.is_empty() && p.vm_nics.is_empty() {
            c.push(Problem::Missing, "params", "must list at least one backend in servers or vmNics");
        }
        weighted_keys(&mut c, "params.servers", &p.servers, "an IPv4 or IPv6 address", |k| {
            ip(k).map(|a| a.to_string())
        });
        weighted_keys(&mut c, "params.vmNics", &p.vm_nics, "a NIC UUID (32 hexadecimal digits)", |k| {
            (k.len() == 32 && k.bytes().all(|b| b.is_ascii_hexdigit())).then(|| k.to_ascii_lowercase())
        });
        c.finish()
    }
}

/// ZStack's `[{"<key>": "<weight>"}]` lists: one key per entry, `key` checked by `canonical`
/// (which returns the form used to find duplicates), weights integers 0-100 given as strings.
fn weighted_keys(
    c: &mut Collector,
    base: &str,
    entries: &[BTreeMap<String, String>],
    what: &str,
    canonical: impl Fn(&str) -> Option<String>,
) {
    let mut keys = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let path = idx(base, i);
        let (key, weight) = match entry.iter().next() {
            Some(kv) if entry.len() == 1 => kv,
            _ => {
                let msg = format!("must have exactly one key ({what}) mapped to its weight, got {} keys", entry.len());
                c.invalid(path, msg);
                continue;
            }
        };
        match canonical(key) {
            Some(k) => keys.push((path.clone(), k)),
            None => c.invalid(&path, format!("key must be {what}, got `{key}`")),
        }
        if !weight.parse::<i64>().is_ok_and(|w| (0..=100).contains(&w)) {
            c.invalid(
                at(&path, key),
                format!("weight must be an integer within 0-100 given as a string, got `{weight}`"),
            );
        }
    }
    no_duplicates(c, keys, "key");
}

impl Validate for EndpointGroupBody {
    const API: Api = Api::Ga;
    fn validate(&self) -> ValidationErrors {
        let mut c = Collector::new(Self::API);
        let g = &self.endpoint_group;
        let b = "endpoint_group";
        text(&mut c, &at(b, "name"), &g.name, &GA_NAME);
        opt_text(&mut c, &at(b, "description"), g.description.as_deref(), &GA_DESCRIPTION);
        opt_range(&mut c, &at(b, "traffic_dial_percentage"), g.traffic_dial_percentage, 0, 100);
        required(&mut c, &at(b, "region_id"), &g.region_id);
        let listeners = at(b, "listeners");
        match g.listeners.len() {
            0 => c.missing(&listeners),
            1 => {}
            n => c.invalid(&listeners, format!("An endpoint group can have only one listener, got {n}")),
        }
        for (i, l) in g.listeners.iter().enumerate() {
            required(&mut c, &at(&idx(&listeners, i), "id"), &l.id);
        }
        c.finish()
    }
}

impl Validate for ProtectionGroupBody {
    const API: Api = Api::Sdrs;
    fn validate(&self) -> ValidationErrors {
        let mut c = Collector::new(Self::API);
        let g = &self.server_group;
        let b = "server_group";
        text(&mut c, &at(b, "name"), &g.name, &SDRS_NAME);
        opt_text(&mut c, &at(b, "description"), g.description.as_deref(), &SDRS_DESCRIPTION);
        let source = required(&mut c, &at(b, "source_availability_zone"), &g.source_availability_zone);
        let target = required(&mut c, &at(b, "target_availability_zone"), &g.target_availability_zone);
        required(&mut c, &at(b, "domain_id"), &g.domain_id);
        required(&mut c, &at(b, "source_vpc_id"), &g.source_vpc_id);
        if source && target && g.source_availability_zone == g.target_availability_zone {
            c.push(
                Problem::Conflict,
                at(b, "target_availability_zone"),
                format!("must differ from source_availability_zone, both are `{}`", g.target_availability_zone),
            );
        }
        c.finish()
    }
}
