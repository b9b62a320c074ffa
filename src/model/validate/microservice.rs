//! The create-VPC-channel API's `microservice_info`: CSE, CCE, CCE service and Nacos registries.

use super::{at, idx, opt_range, opt_text, range, required, text, Chars, Letters, Text};
use crate::model::{CceInfo, CceServiceInfo, Collector, MicroserviceInfo, NacosInfo, ServiceType};

const LETTER: Chars = Chars::set(Letters::Unicode, false, "");
/// `app_name`, `label_value`, `cce_service_info.service_name`: 1-64, a letter first, then
/// letters, digits, `.`, `-`, `_`.
const NAME: Text = Text::of(1, 64, Chars::set(Letters::Unicode, true, ".-_")).first(LETTER);
const LABEL_KEY: Text =
    Text::of(1, 64, Chars::set(Letters::Unicode, true, "-_./:()")).first(Chars::set(Letters::Unicode, true, ""));
/// A Kubernetes namespace: 1-63 lowercase letters, digits and `-`.
const K8S_NAMESPACE: Text = Text::of(1, 63, Chars::set(Letters::Lower, true, "-"))
    .first(Chars::set(Letters::Lower, false, ""))
    .last(Chars::set(Letters::Lower, true, ""));
const NACOS_NAMESPACE: Text = Text::of(0, 64, Chars::set(Letters::Ascii, true, "-_"));
const NACOS_GROUP: Text = Text::of(0, 128, Chars::set(Letters::Ascii, true, "-_.:"));
const NACOS_SERVICE: Text = Text::of(1, 512, Chars::AnyBut("")).first(Chars::AnyBut("@"));

pub(super) fn info(c: &mut Collector, base: &str, m: &MicroserviceInfo) {
    match m.service_type {
        Some(ServiceType::Nacos) if m.nacos_info.is_none() => c.missing(at(base, "nacos_info")),
        Some(ServiceType::Cse) if m.cse_info.is_none() => c.missing(at(base, "cse_info")),
        _ => {}
    }
    if let Some(cse) = &m.cse_info {
        let b = at(base, "cse_info");
        required(c, &at(&b, "engine_id"), &cse.engine_id);
        required(c, &at(&b, "service_id"), &cse.service_id);
    }
    if let Some(cce) = &m.cce_info {
        cce_info(c, &at(base, "cce_info"), cce);
    }
    if let Some(svc) = &m.cce_service_info {
        cce_service_info(c, &at(base, "cce_service_info"), svc);
    }
    if let Some(nacos) = &m.nacos_info {
        nacos_info(c, &at(base, "nacos_info"), nacos);
    }
}

fn cce_info(c: &mut Collector, b: &str, cce: &CceInfo) {
    required(c, &at(b, "cluster_id"), &cce.cluster_id);
    required(c, &at(b, "namespace"), &cce.namespace);
    opt_text(c, &at(b, "app_name"), cce.app_name.as_deref(), &NAME);
    opt_text(c, &at(b, "label_key"), cce.label_key.as_deref(), &LABEL_KEY);
    opt_text(c, &at(b, "label_value"), cce.label_value.as_deref(), &NAME);
}

fn cce_service_info(c: &mut Collector, b: &str, svc: &CceServiceInfo) {
    required(c, &at(b, "cluster_id"), &svc.cluster_id);
    text(c, &at(b, "namespace"), &svc.namespace, &K8S_NAMESPACE);
    text(c, &at(b, "service_name"), &svc.service_name, &NAME);
}

fn nacos_info(c: &mut Collector, b: &str, n: &NacosInfo) {
    opt_text(c, &at(b, "namespace"), n.namespace.as_deref(), &NACOS_NAMESPACE);
    opt_text(c, &at(b, "cluster_name"), n.cluster_name.as_deref(), &NACOS_NAMESPACE);
    opt_text(c, &at(b, "group_name"), n.group_name.as_deref(), &NACOS_GROUP);
    let service = at(b, "service_name");
    if text(c, &service, &n.service_name, &NACOS_SERVICE) && n.service_name.contains("@@") {
        c.invalid(service, format!("must not contain `@@`, got `{}`", n.service_name));
    }
    let servers = at(b, "server_config");
    if n.server_config.is_empty() {
        c.missing(&servers);
    }
    for (i, s) in n.server_config.iter().enumerate() {
        let sb = idx(&servers, i);
        required(c, &at(&sb, "ip_address"), &s.ip_address);
        range(c, &at(&sb, "port"), s.port, 1, 65535);
        opt_range(c, &at(&sb, "grpc_port"), s.grpc_port, 1, 65535);
    }
    let user = at(b, "user_info");
    required(c, &at(&user, "user_name"), &n.user_info.user_name);
    required(c, &at(&user, "password"), &n.user_info.password);
}
