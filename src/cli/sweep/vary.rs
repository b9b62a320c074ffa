//! `--vary FIELD=FROM..TO:POINTS` and `--vary FIELD=A,B,C`: an axis of a sweep, and setting its
//! value in a scenario's parsed value tree before the scenario is validated (so that the
//! scenario's own errors name the field's path).

use crate::model::{Api, FieldError, Problem};
use serde_json::{Number, Value};

/// Most values one axis may take, and most variants a sweep may have.
pub(super) const MAX_POINTS: usize = 1000;
pub(super) const MAX_VARIANTS: usize = 10_000;

/// One `--vary`: a field's dotted path and its values.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Axis {
    pub path: String,
    segments: Vec<Segment>,
    pub values: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Key(String),
    Index(usize),
}

fn err(problem: Problem, path: &str, message: impl Into<String>) -> FieldError {
    FieldError::new(Api::Scenario, problem, path, message)
}

impl Axis {
    /// Parses `path=from..to:points` (points evenly spaced values, both ends included) or
    /// `path=a,b,c`.
    pub fn parse(spec: &str) -> Result<Axis, FieldError> {
        let Some((path, values)) = spec.split_once('=') else {
            return Err(err(
                Problem::Malformed,
                "",
                format!("`{spec}`: expected FIELD=FROM..TO:POINTS or FIELD=A,B,C"),
            ));
        };
        let path = path.trim();
        let segments = segments(path)?;
        let values = match values.split_once("..") {
            Some((from, rest)) => {
                let Some((to, points)) = rest.split_once(':') else {
                    return Err(err(
                        Problem::Malformed,
                        path,
                        format!("`{values}`: a range needs its points: FROM..TO:POINTS"),
                    ));
                };
                let from = number(path, from)?;
                let to = number(path, to)?;
                let n: usize = points
                    .trim()
                    .parse()
                    .map_err(|_| err(Problem::Invalid, path, format!("`{points}` is not a number of points")))?;
                if !(2..=MAX_POINTS).contains(&n) {
                    return Err(err(Problem::Invalid, path, format!("a range takes 2-{MAX_POINTS} points, got {n}")));
                }
                (0..n).map(|i| from + (to - from) * i as f64 / (n - 1) as f64).map(json_number).collect()
            }
            None => {
                let list: Vec<Value> =
                    values.split(',').map(|v| number(path, v).map(json_number)).collect::<Result<_, _>>()?;
                if list.len() > MAX_POINTS {
                    return Err(err(
                        Problem::Invalid,
                        path,
                        format!("at most {MAX_POINTS} values, got {}", list.len()),
                    ));
                }
                list
            }
        };
        Ok(Axis { path: path.to_string(), segments, values })
    }

    /// Sets the field to `value` in a scenario's value tree. Missing tables on the way are
    /// created (the scenario's validation then rejects a field that does not exist, naming it);
    /// a missing list element, or a field that holds something else than a number, is an error.
    pub fn apply(&self, root: &mut Value, value: &Value) -> Result<(), FieldError> {
        let mut at = root;
        let mut walked = String::new();
        for (i, seg) in self.segments.iter().enumerate() {
            let last = i + 1 == self.segments.len();
            match seg {
                Segment::Key(k) => {
                    walked = crate::model::join_path(&walked, k);
                    let Value::Object(map) = at else {
                        return Err(err(Problem::Invalid, &walked, "its parent is not a table"));
                    };
                    if last {
                        return match map.get(k) {
                            None | Some(Value::Number(_)) => {
                                map.insert(k.clone(), value.clone());
                                Ok(())
                            }
                            Some(other) => Err(err(
                                Problem::Invalid,
                                &walked,
                                format!("is not a numeric field (it holds {})", kind(other)),
                            )),
                        };
                    }
                    at = map.entry(k.clone()).or_insert_with(|| Value::Object(Default::default()));
                }
                Segment::Index(n) => {
                    walked = format!("{walked}[{n}]");
                    let Value::Array(list) = at else {
                        return Err(err(Problem::NotFound, &walked, "is not a list in the scenario"));
                    };
                    let len = list.len();
                    let Some(item) = list.get_mut(*n) else {
                        return Err(err(Problem::NotFound, &walked, format!("the list has {len} element(s)")));
                    };
                    if last {
                        if !item.is_number() {
                            return Err(err(
                                Problem::Invalid,
                                &walked,
                                format!("is not a number (it holds {})", kind(item)),
                            ));
                        }
                        *item = value.clone();
                        return Ok(());
                    }
                    at = item;
                }
            }
        }
        Ok(())
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
    }
}

/// `traffic.rate_rps`, `backends[1].speed`, `channel.members[0].weight`.
fn segments(path: &str) -> Result<Vec<Segment>, FieldError> {
    let bad = || err(Problem::Malformed, path, "expected a dotted path such as traffic.rate_rps or backends[0].speed");
    if path.is_empty() {
        return Err(bad());
    }
    let mut out = Vec::new();
    for part in path.split('.') {
        let (name, mut rest) = part.split_once('[').map_or((part, ""), |(n, r)| (n, r));
        let valid = |c: char| c.is_ascii_alphanumeric() || c == '_';
        if name.is_empty() || !name.chars().all(valid) {
            return Err(bad());
        }
        out.push(Segment::Key(name.to_string()));
        while !rest.is_empty() {
            let (index, after) = rest.split_once(']').ok_or_else(bad)?;
            out.push(Segment::Index(index.parse().map_err(|_| bad())?));
            rest = match after {
                "" => "",
                a => a.strip_prefix('[').ok_or_else(bad)?,
            };
        }
    }
    Ok(out)
}

fn number(path: &str, text: &str) -> Result<f64, FieldError> {
    match text.trim().parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        _ => Err(err(Problem::Invalid, path, format!("`{}` is not a number", text.trim()))),
    }
}

/// A whole number as a JSON integer (so that integer fields accept it), others as floats; range
/// points are rounded to nine decimals so that `0..1:11` gives 0.3, not 0.30000000000000004.
fn json_number(x: f64) -> Value {
    let x = (x * 1e9).round() / 1e9;
    if x.fract() == 0.0 && x.abs() < 9e15 {
        Value::Number(Number::from(x as i64))
    } else {
        Number::from_f64(x).map_or(Value::Null, Value::Number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ranges_include_both_ends_and_lists_keep_order() {
        let a = Axis::parse("traffic.rate_rps=1000..4000:4").expect("range");
        assert_eq!(a.values, vec![json!(1000), json!(2000), json!(3000), json!(4000)]);
        let b = Axis::parse("backends[1].speed=0.1..0.3:3").expect("floats");
        assert_eq!(b.values, vec![json!(0.1), json!(0.2), json!(0.3)]);
        assert_eq!(b.segments, vec![Segment::Key("backends".into()), Segment::Index(1), Segment::Key("speed".into())]);
        let c = Axis::parse("traffic.retries=2,0,1").expect("list");
        assert_eq!(c.values, vec![json!(2), json!(0), json!(1)]);
    }

    #[test]
    fn bad_specs_are_errors_with_the_path() {
        for (spec, code, needle) in [
            ("traffic.rate_rps", "LBSIM.1004", "FIELD=FROM..TO:POINTS"),
            ("traffic.rate_rps=1..5", "LBSIM.1004", "needs its points"),
            ("traffic.rate_rps=1..5:1", "LBSIM.1002", "2-1000 points"),
            ("traffic.rate_rps=1..x:3", "LBSIM.1002", "`x` is not a number"),
            ("traffic..rate=1,2", "LBSIM.1004", "dotted path"),
            ("backends[x].speed=1,2", "LBSIM.1004", "dotted path"),
        ] {
            let e = Axis::parse(spec).expect_err(spec);
            assert_eq!(e.code, code, "{spec}: {e}");
            assert!(e.to_string().contains(needle), "{spec}: {e}");
        }
    }

    #[test]
    fn apply_sets_creates_tables_and_refuses_non_numbers() {
        let mut v = json!({"traffic": {"arrival": "poisson"}, "backends": [{"member": "a:1", "speed": 1}]});
        Axis::parse("traffic.rate_rps=5,6").expect("axis").apply(&mut v, &json!(5)).expect("set");
        Axis::parse("balancer.panic_threshold=5").expect("axis").apply(&mut v, &json!(5)).expect("created");
        Axis::parse("backends[0].speed=2").expect("axis").apply(&mut v, &json!(2)).expect("indexed");
        assert_eq!(v["traffic"]["rate_rps"], 5);
        assert_eq!(v["balancer"]["panic_threshold"], 5);
        assert_eq!(v["backends"][0]["speed"], 2);
        let e = Axis::parse("traffic.arrival=1").expect("axis").apply(&mut v, &json!(1)).expect_err("string");
        assert_eq!((e.code, e.path.as_str()), ("LBSIM.1002", "traffic.arrival"));
        let e = Axis::parse("backends[3].speed=1").expect("axis").apply(&mut v, &json!(1)).expect_err("range");
        assert_eq!((e.code, e.path.as_str()), ("LBSIM.1006", "backends[3]"));
    }
}
