//! From text to typed bodies, reporting every unknown field at once.
//!
//! The types use `deny_unknown_fields`, so that an embedder who calls `serde_json::from_str`
//! directly never has a typo silently ignored. serde stops at the first error, though; the loader
//! here records an unknown field, removes it from the parsed value and tries again, so that a body
//! with three typos gets three errors. A wrong type or a missing required field ends the walk:
//! the body's shape cannot be interpreted past it.

use super::error::{join_path, Api, FieldError, Problem, ValidationErrors};
use serde::de::DeserializeOwned;
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

/// Parses text into a JSON value; a syntax error carries its line and column.
pub fn parse_text(text: &str, format: Format, api: Api) -> Result<Value, ValidationErrors> {
    let parsed = match format {
        Format::Json => serde_json::from_str::<Value>(text).map_err(|e| e.to_string()),
        Format::Toml => toml::from_str::<Value>(text).map_err(|e| e.to_string().trim_end().replace('\n', " | ")),
    };
    parsed.map_err(|msg| FieldError::new(api, Problem::Malformed, "", format!("syntax error: {msg}")).into())
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
    // Each round removes one unknown field, so the loop ends after at most as many rounds as the
    // value has keys.
    loop {
        match serde_path_to_error::deserialize::<_, T>(&value) {
            Ok(t) => return (Some(t), errors),
            Err(e) => {
                let path = e.path().to_string();
                let path = if path == "." { String::new() } else { path };
                let msg = e.inner().to_string();
                if let Some(field) = unknown_field_name(&msg) {
                    let parent = parent_path(&path, &field);
                    let full = join_path(&parent, &field);
                    errors.push(FieldError::new(api, Problem::Unknown, full, unknown_message(&msg, &field)));
                    if remove_at(&mut value, &parent, &field) {
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
