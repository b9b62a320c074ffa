//! From text to typed bodies, reporting every unknown field at once.
//!
//! The types use `deny_unknown_fields`, so that an embedder who calls `serde_json::from_str`
//! directly never has a typo silently ignored. serde stops at the first error, though. Its error
//! for an unknown field lists the fields the struct has, so the loader removes every key those
//! fields do not name from every object of that place in the body (`members[0]`, `members[1]`,
//! ... alike, since array elements share their type), records each, and tries again: a body with
//! three typos gets three errors, and the number of tries is bounded by the number of struct
//! types in the schema, not by the size of the body. A wrong type or a missing required field
//! ends the walk: the body's shape cannot be interpreted past it.

use super::error::{join_path, Api, FieldError, Problem, ValidationErrors};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

/// Text formats of a body or scenario file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Toml,
}

impl Format {
    /// By file extension: `.json` is JSON, anything else TOML.
    pub fn from_path(path: &std::path::Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("json") => Format::Json,
            _ => Format::Toml,
        }
    }
}

/// Parses text into a JSON value; a syntax error carries its line and column. A key given twice
/// in one JSON object is an error at its path (serde_json would keep the last silently; TOML
/// refuses duplicates itself).
pub fn parse_text(text: &str, format: Format, api: Api) -> Result<Value, ValidationErrors> {
    let parsed = match format {
        Format::Json => {
            let mut de = serde_json::Deserializer::from_str(text);
            match serde_path_to_error::deserialize::<_, NoDuplicates>(&mut de) {
                Ok(v) => de.end().map(|()| v.0).map_err(|e| e.to_string()),
                Err(e) => {
                    let msg = e.inner().to_string();
                    if let Some(key) = msg.strip_prefix("duplicate key `").and_then(|r| r.split('`').next()) {
                        let parent = e.path().to_string();
                        let parent = if parent == "." { String::new() } else { parent };
                        let path = join_path(&parent, key);
                        let msg = format!("`{key}` is given more than once in one object");
                        return Err(FieldError::new(api, Problem::Malformed, path, msg).into());
                    }
                    Err(msg)
                }
            }
        }
        Format::Toml => toml::from_str::<Value>(text).map_err(|e| e.to_string().trim_end().replace('\n', " | ")),
    };
    parsed.map_err(|msg| FieldError::new(api, Problem::Malformed, "", format!("syntax error: {msg}")).into())
}

/// A JSON value read with every object's keys checked for repeats.
struct NoDuplicates(Value);

impl<'de> serde::Deserialize<'de> for NoDuplicates {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NoDuplicatesVisitor).map(NoDuplicates)
    }
}

struct NoDuplicatesVisitor;

impl<'de> serde::de::Visitor<'de> for NoDuplicatesVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        NoDuplicates::deserialize(d).map(|v| v.0)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(NoDuplicates(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format_args!("duplicate key `{key}`")));
            }
            let NoDuplicates(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// Parses a JSON body of one of the cloud APIs' types.
pub fn from_json<T: DeserializeOwned>(text: &str, api: Api) -> Result<T, ValidationErrors> {
    from_value(parse_text(text, Format::Json, api)?, api)
}

/// Deserializes a value, collecting every unknown field (with its path) before giving up.
/// Any error, unknown fields included, makes this an `Err`; [`from_value_collect`] keeps going.
pub fn from_value<T: DeserializeOwned>(value: Value, api: Api) -> Result<T, ValidationErrors> {
    match from_value_collect(value, api) {
        (Some(t), errors) if errors.is_empty() => Ok(t),
        (_, errors) => Err(ValidationErrors { errors }),
    }
}

/// Deserializes a value with its unknown fields removed, and reports them: the typed value (when
/// the rest has the right shape) and every unknown field, so that validation can go on and a body
/// with a typo and a bad value gets both errors. A wrong type or a missing required field gives
/// no value: the body's shape cannot be interpreted past it.
pub fn from_value_collect<T: DeserializeOwned>(mut value: Value, api: Api) -> (Option<T>, Vec<FieldError>) {
    let mut errors = Vec::new();
    // Each round removes at least one unknown field, so the loop ends; with the struct's field
    // list known, one round clears a whole place of the body.
    loop {
        #[cfg(test)]
        tests::ROUNDS.with(|r| r.set(r.get() + 1));
        match serde_path_to_error::deserialize::<_, T>(&value) {
            Ok(t) => return (Some(t), errors),
            Err(e) => {
                let path = e.path().to_string();
                let path = if path == "." { String::new() } else { path };
                let msg = e.inner().to_string();
                if let Some(field) = unknown_field_name(&msg) {
                    let parent = parent_path(&path, &field);
                    let removed = match expected_fields(&msg) {
                        Some(known) => remove_unknown(&mut value, &parent, &known),
                        None if remove_at(&mut value, &parent, &field) => vec![join_path(&parent, &field)],
                        None => Vec::new(),
                    };
                    if removed.is_empty() {
                        let full = join_path(&parent, &field);
                        errors.push(FieldError::new(api, Problem::Unknown, full, unknown_message(&msg, &field)));
                    } else {
                        for full in removed {
                            let name = full.rsplit('.').next().unwrap_or(&full).to_string();
                            errors.push(FieldError::new(api, Problem::Unknown, full, unknown_message(&msg, &name)));
                        }
                        continue;
                    }
                } else if let Some(field) = missing_field_name(&msg) {
                    errors.push(FieldError::new(
                        api,
                        Problem::Missing,
                        join_path(&path, &field),
                        "the request parameter must be specified",
                    ));
                } else {
                    errors.push(FieldError::new(api, Problem::Malformed, path, msg));
                }
                return (None, errors);
            }
        }
    }
}

fn unknown_field_name(msg: &str) -> Option<String> {
    let rest = msg.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_string())
}

/// The fields serde lists after "expected" in an unknown-field error (`there are no fields`:
/// none); `None` when the message does not say.
fn expected_fields(msg: &str) -> Option<Vec<String>> {
    if msg.ends_with("there are no fields") {
        return Some(Vec::new());
    }
    let rest = &msg[msg.find("expected ")? + "expected ".len()..];
    let names: Vec<String> = rest.split('`').skip(1).step_by(2).map(str::to_string).collect();
    (!names.is_empty()).then_some(names)
}

/// Removes every key not in `known` from every object at `parent`, where any array index in
/// `parent` stands for every element; returns the paths removed, in body order.
fn remove_unknown(value: &mut Value, parent: &str, known: &[String]) -> Vec<String> {
    let segs = split_path(parent);
    let mut removed = Vec::new();
    remove_unknown_at(value, &segs, String::new(), known, &mut removed);
    removed
}

fn remove_unknown_at(value: &mut Value, segs: &[Seg<'_>], here: String, known: &[String], out: &mut Vec<String>) {
    match (segs.split_first(), value) {
        (None, Value::Object(m)) => {
            let unknown: Vec<String> = m.keys().filter(|k| !known.contains(k)).cloned().collect();
            for k in unknown {
                m.remove(&k);
                out.push(join_path(&here, &k));
            }
        }
        (Some((Seg::Key(k), rest)), Value::Object(m)) => {
            if let Some(v) = m.get_mut(*k) {
                remove_unknown_at(v, rest, join_path(&here, k), known, out);
            }
        }
        (Some((Seg::Index(_), rest)), Value::Array(a)) => {
            for (i, v) in a.iter_mut().enumerate() {
                remove_unknown_at(v, rest, format!("{here}[{i}]"), known, out);
            }
        }
        _ => {}
    }
}

fn missing_field_name(msg: &str) -> Option<String> {
    let rest = msg.strip_prefix("missing field `")?;
    Some(rest[..rest.find('`')?].to_string())
}

fn unknown_message(msg: &str, field: &str) -> String {
    match msg.find("expected one of") {
        Some(i) => format!("unknown field `{field}`, {}", &msg[i..]),
        None => format!("unknown field `{field}`"),
    }
}

/// serde_path_to_error reports an unknown field either at its parent or at the field itself.
fn parent_path(path: &str, field: &str) -> String {
    if path == field {
        return String::new();
    }
    match path.strip_suffix(field).and_then(|p| p.strip_suffix('.')) {
        Some(parent) => parent.to_string(),
        None => path.to_string(),
    }
}

/// Removes `field` from the object at `parent` (a path like `members[2].x`). False if not found.
fn remove_at(value: &mut Value, parent: &str, field: &str) -> bool {
    let mut cur = value;
    for seg in split_path(parent) {
        cur = match (seg, cur) {
            (Seg::Key(k), Value::Object(m)) => match m.get_mut(k) {
                Some(v) => v,
                None => return false,
            },
            (Seg::Index(i), Value::Array(a)) => match a.get_mut(i) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match cur {
        Value::Object(m) => m.remove(field).is_some(),
        _ => false,
    }
}

enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

fn split_path(path: &str) -> Vec<Seg<'_>> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            out.push(Seg::Key(key));
        }
        while let Some(end) = rest.find(']') {
            if let Ok(i) = rest[1..end].parse() {
                out.push(Seg::Index(i));
            }
            rest = &rest[end + 1..];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::VpcChannel;
    use std::cell::Cell;

    thread_local! {
        /// Deserialization attempts made by `from_value_collect` on this thread.
        pub(super) static ROUNDS: Cell<usize> = const { Cell::new(0) };
    }

    /// A body with thousands of unknown fields is read a bounded number of times (once per
    /// struct type that has them, plus the last), not once per field.
    #[test]
    fn unknown_fields_are_collected_in_bounded_rounds() {
        let members: Vec<Value> = (0..2000)
            .map(|i| serde_json::json!({"host": format!("10.0.{}.{}", i / 250, i % 250 + 1), "wieght": 1}))
            .collect();
        let body = serde_json::json!({"name": "big_channel", "port": 80, "balance_strategy": 1, "member_type": "ip",
            "instance_ids": ["i1"], "members": members, "typo": true,
            "vpc_health_config": {"protocol": "TCP", "threshold_normal": 1, "threshold_abnormal": 1, "time_interval": 5, "timeout": 2, "bad": 1}});
        ROUNDS.with(|r| r.set(0));
        let (parsed, errors) = from_value_collect::<VpcChannel>(body, Api::Roma);
        assert!(parsed.is_some());
        let rounds = ROUNDS.with(Cell::get);
        assert!(rounds <= 4, "{rounds} rounds");
        assert_eq!(errors.len(), 2002);
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert!(paths.contains(&"members[0].wieght") && paths.contains(&"members[1999].wieght"), "{:?}", &paths[..4]);
        assert!(paths.contains(&"vpc_health_config.bad"));
        assert!(errors.iter().all(|e| e.code == "APIG.2004"));
        assert!(errors[1].message.contains("expected one of"), "{}", errors[1].message);
    }

    /// serde_json keeps the last of two equal keys; a body that says a thing twice is refused,
    /// with the key's path.
    #[test]
    fn a_key_given_twice_is_an_error_at_its_path() {
        let text = r#"{"name": "a", "members": [{"host": "10.0.0.1", "weight": 1, "weight": 9}]}"#;
        let e = parse_text(text, Format::Json, Api::Roma).unwrap_err();
        assert_eq!(e.errors[0].path, "members[0].weight", "{e}");
        assert_eq!(e.errors[0].code, "APIG.2002");
        let e = parse_text(r#"{"name": "a", "name": "b"}"#, Format::Json, Api::Roma).unwrap_err();
        assert_eq!(e.errors[0].path, "name");
        let ok = parse_text(r#"{"a": {"x": 1}, "b": {"x": 2.5}, "c": [null, true, "s", -3]}"#, Format::Json, Api::Roma);
        assert_eq!(ok.unwrap(), serde_json::json!({"a": {"x": 1}, "b": {"x": 2.5}, "c": [null, true, "s", -3]}));
        assert!(parse_text(r#"{"a": 1} x"#, Format::Json, Api::Roma).is_err(), "trailing text");
    }
}
