//! The cloud APIs' validation rules, and the small checks they are built from.
//!
//! Every check records its problem in a [`Collector`] and carries on, so that a body's problems
//! are all reported at once. Paths are relative to the body (`members[2].weight`).

mod channel;
mod microservice;
mod others;

use super::{join_path, Collector, Problem};
use std::net::IpAddr;

/// `base.field` (or `field` at the top level).
pub(super) fn at(base: &str, field: &str) -> String {
    join_path(base, field)
}

/// `base[i]`.
pub(super) fn idx(base: &str, i: usize) -> String {
    format!("{base}[{i}]")
}

/// Which letters a character set admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Letters {
    /// `a-z`, `A-Z`.
    Ascii,
    /// Any Unicode letter (the create-VPC-channel API allows Chinese characters in some names).
    Unicode,
    /// `a-z`.
    Lower,
}

/// A set of characters, with a description for messages.
#[derive(Debug, Clone, Copy)]
pub(super) enum Chars {
    /// Letters, optionally ASCII digits, and the listed punctuation.
    Set { letters: Letters, digits: bool, extra: &'static str },
    /// Anything but the listed characters.
    AnyBut(&'static str),
}

impl Chars {
    pub(super) const fn set(letters: Letters, digits: bool, extra: &'static str) -> Chars {
        Chars::Set { letters, digits, extra }
    }

    fn contains(self, ch: char) -> bool {
        match self {
            Chars::AnyBut(s) => !s.contains(ch),
            Chars::Set { letters, digits, extra } => {
                let letter = match letters {
                    Letters::Ascii => ch.is_ascii_alphabetic(),
                    Letters::Unicode => ch.is_alphabetic(),
                    Letters::Lower => ch.is_ascii_lowercase(),
                };
                letter || (digits && ch.is_ascii_digit()) || extra.contains(ch)
            }
        }
    }

    /// `letters, digits, `-` and `_`` (plural) or `a letter or a digit` (singular); for
    /// `AnyBut`, the excluded characters: `` `<` or `>` ``.
    fn describe(self, singular: bool) -> String {
        let (letters, digits, extra) = match self {
            Chars::AnyBut(s) => {
                let list: Vec<String> = s.chars().map(|c| format!("`{c}`")).collect();
                return join_or(&list, "or");
            }
            Chars::Set { letters, digits, extra } => (letters, digits, extra),
        };
        let mut parts: Vec<String> = Vec::new();
        let letter = match letters {
            Letters::Lower => {
                if singular {
                    "a lowercase letter"
                } else {
                    "lowercase letters"
                }
            }
            _ => {
                if singular {
                    "a letter"
                } else {
                    "letters"
                }
            }
        };
        parts.push(letter.into());
        if digits {
            parts.push(if singular { "a digit" } else { "digits" }.into());
        }
        parts.extend(extra.chars().map(|c| format!("`{c}`")));
        join_or(&parts, if singular { "or" } else { "and" })
    }
}

fn join_or(parts: &[String], word: &str) -> String {
    match parts {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} {word} {last}", init.join(", ")),
    }
}

/// How a length limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unit {
    Chars,
    Bytes,
}

/// A string rule: length bounds, the allowed first and last characters, and the allowed set.
#[derive(Debug, Clone, Copy)]
pub(super) struct Text {
    pub min: usize,
    pub max: usize,
    pub unit: Unit,
    pub first: Option<Chars>,
    pub last: Option<Chars>,
    pub body: Chars,
}

impl Text {
    /// `min`-`max` characters from `body`, no constraint on the ends.
    pub(super) const fn of(min: usize, max: usize, body: Chars) -> Text {
        Text { min, max, unit: Unit::Chars, first: None, last: None, body }
    }

    pub(super) const fn first(mut self, first: Chars) -> Text {
        self.first = Some(first);
        self
    }

    pub(super) const fn last(mut self, last: Chars) -> Text {
        self.last = Some(last);
        self
    }

    pub(super) const fn bytes(mut self) -> Text {
        self.unit = Unit::Bytes;
        self
    }

    /// What is wrong with a non-empty value, if anything.
    fn problem(&self, s: &str) -> Option<String> {
        let (n, unit) = match self.unit {
            Unit::Chars => (s.chars().count(), "characters"),
            Unit::Bytes => (s.len(), "bytes"),
        };
        if n < self.min || n > self.max {
            return Some(if self.min <= 1 {
                format!("must be at most {} {unit} long, got {n}", self.max)
            } else {
                format!("must be {}-{} {unit} long, got {n}", self.min, self.max)
            });
        }
        let edge = |chars: Option<Chars>, ch: Option<char>, which: &str| match (chars, ch) {
            (Some(set @ Chars::AnyBut(_)), Some(ch)) if !set.contains(ch) => {
                Some(format!("must not {which} with {}, got `{ch}`", set.describe(true)))
            }
            (Some(set), Some(ch)) if !set.contains(ch) => {
                Some(format!("must {which} with {}, got `{ch}`", set.describe(true)))
            }
            _ => None,
        };
        let body = |ch: char| match self.body {
            Chars::AnyBut(_) => format!("must not contain {}, got `{ch}`", self.body.describe(false)),
            set => format!("may contain only {}, got `{ch}`", set.describe(false)),
        };
        edge(self.first, s.chars().next(), "start")
            .or_else(|| edge(self.last, s.chars().next_back(), "end"))
            .or_else(|| s.chars().find(|&ch| !self.body.contains(ch)).map(body))
    }
}

/// A required string: Missing when blank.
pub(super) fn required(c: &mut Collector, path: &str, s: &str) -> bool {
    if s.trim().is_empty() {
        c.missing(path);
        return false;
    }
    true
}

/// A required string with a rule: Missing when empty, Invalid when the rule fails.
pub(super) fn text(c: &mut Collector, path: &str, s: &str, rule: &Text) -> bool {
    if s.is_empty() {
        c.missing(path);
        return false;
    }
    opt_text(c, path, Some(s), rule)
}

/// An optional string with a rule: absent or empty is fine (the cloud APIs treat both as not set).
pub(super) fn opt_text(c: &mut Collector, path: &str, s: Option<&str>, rule: &Text) -> bool {
    match s.filter(|s| !s.is_empty()).and_then(|s| rule.problem(s)) {
        Some(msg) => {
            c.invalid(path, msg);
            false
        }
        None => true,
    }
}

/// An integer within `lo..=hi`.
pub(super) fn range(c: &mut Collector, path: &str, v: i64, lo: i64, hi: i64) -> bool {
    if (lo..=hi).contains(&v) {
        return true;
    }
    c.invalid(path, format!("must be within {lo}-{hi}, got {v}"));
    false
}

/// An optional integer within `lo..=hi`.
pub(super) fn opt_range(c: &mut Collector, path: &str, v: Option<i64>, lo: i64, hi: i64) -> bool {
    match v {
        Some(v) => range(c, path, v, lo, hi),
        None => true,
    }
}

/// An integer of at least `min`.
pub(super) fn at_least(c: &mut Collector, path: &str, v: i64, min: i64) -> bool {
    if v >= min {
        return true;
    }
    c.invalid(path, format!("must be at least {min}, got {v}"));
    false
}

/// An optional integer from a short list (`status`: 1 or 2).
pub(super) fn opt_one_of(c: &mut Collector, path: &str, v: Option<i64>, allowed: &[i64]) -> bool {
    match v {
        Some(v) if !allowed.contains(&v) => {
            let list: Vec<String> = allowed.iter().map(i64::to_string).collect();
            c.invalid(path, format!("must be {}, got {v}", join_or(&list, "or")));
            false
        }
        _ => true,
    }
}

/// Reports `Conflict` at every entry whose key repeats an earlier entry's key.
/// `entries` yields `(path, key)`; entries without a usable key are skipped by the caller.
pub(super) fn no_duplicates<K: PartialEq + std::fmt::Display>(
    c: &mut Collector,
    entries: impl IntoIterator<Item = (String, K)>,
    what: &str,
) {
    let mut seen: Vec<(String, K)> = Vec::new();
    for (path, key) in entries {
        match seen.iter().find(|(_, k)| *k == key) {
            Some((first, _)) => {
                c.push(Problem::Conflict, path, format!("duplicate {what} `{key}`, already given at {first}"))
            }
            None => seen.push((path, key)),
        }
    }
}

/// An IPv4 or IPv6 address, in canonical form.
pub(super) fn ip(s: &str) -> Option<IpAddr> {
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Api;

    fn message(s: &str, rule: &Text) -> Option<String> {
        let mut c = Collector::new(Api::Roma);
        text(&mut c, "x", s, rule);
        c.finish().errors.first().map(|e| e.message.clone())
    }

    #[test]
    fn text_messages_say_what_is_allowed() {
        let name =
            Text::of(3, 64, Chars::set(Letters::Unicode, true, "-_.")).first(Chars::set(Letters::Unicode, false, ""));
        assert_eq!(message("ab", &name).unwrap(), "must be 3-64 characters long, got 2");
        assert_eq!(message("1ab", &name).unwrap(), "must start with a letter, got `1`");
        assert_eq!(message("ab c", &name).unwrap(), "may contain only letters, digits, `-`, `_` and `.`, got ` `");
        assert_eq!(message("名字_1", &name), None);
        assert_eq!(message("", &name).unwrap(), "the request parameter must be specified");

        let label = Text::of(1, 63, Chars::set(Letters::Ascii, true, "-")).last(Chars::set(Letters::Ascii, true, ""));
        assert_eq!(message("a-", &label).unwrap(), "must end with a letter or a digit, got `-`");

        let desc = Text::of(0, 64, Chars::AnyBut("<>")).bytes();
        assert_eq!(message("a<b", &desc).unwrap(), "must not contain `<` or `>`, got `<`");
        assert_eq!(message(&"é".repeat(33), &desc).unwrap(), "must be at most 64 bytes long, got 66");
        let nacos = Text::of(1, 512, Chars::AnyBut("")).first(Chars::AnyBut("@"));
        assert_eq!(message("@a", &nacos).unwrap(), "must not start with `@`, got `@`");
    }

    #[test]
    fn number_and_duplicate_messages() {
        let mut c = Collector::new(Api::Roma);
        range(&mut c, "w", 150, 0, 100);
        at_least(&mut c, "t", 0, 1);
        opt_one_of(&mut c, "s", Some(3), &[1, 2]);
        no_duplicates(&mut c, [("a[0]".to_string(), "k"), ("a[1]".to_string(), "j"), ("a[2]".to_string(), "k")], "key");
        let msgs: Vec<(String, String)> = c.finish().errors.into_iter().map(|e| (e.path, e.message)).collect();
        assert_eq!(
            msgs,
            [
                ("w".into(), "must be within 0-100, got 150".into()),
                ("t".into(), "must be at least 1, got 0".into()),
                ("s".into(), "must be 1 or 2, got 3".into()),
                ("a[2]".into(), "duplicate key `k`, already given at a[0]".into()),
            ]
        );
    }
}
