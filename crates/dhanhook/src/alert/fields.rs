//! Reading fields out of a JSON object the way TradingView sends them.
//!
//! TradingView fills placeholders as text, so `"quantity": "{{strategy.order.contracts}}"`
//! arrives as a string and a hand-written `"quantity": 5` as a number: both are accepted. An
//! empty string is what an unknown or misspelled placeholder becomes, so it counts as absent.
//! Every problem is collected (not just the first), each naming its field, so one 422 tells the
//! user everything that is wrong with their alert template.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::FieldProblem;

/// The largest quantity accepted in one leg. Far above any real order, low enough that every
/// later multiplication (lots to units, notional) stays exact.
pub(crate) const MAX_QUANTITY: u64 = 10_000_000;

/// One JSON object being read, with the path used in error messages (e.g. `order_legs[1]`).
pub(crate) struct Fields<'a> {
    map: &'a Map<String, Value>,
    prefix: String,
    allowed: &'static [&'static str],
}

impl<'a> Fields<'a> {
    pub(crate) fn new(
        map: &'a Map<String, Value>,
        prefix: impl Into<String>,
        allowed: &'static [&'static str],
    ) -> Self {
        Self {
            map,
            prefix: prefix.into(),
            allowed,
        }
    }

    /// The full name of a field, as shown to the user.
    pub(crate) fn path(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    pub(crate) fn problem(
        &self,
        out: &mut Vec<FieldProblem>,
        key: &str,
        problem: impl Into<String>,
    ) {
        out.push(FieldProblem {
            field: self.path(key),
            problem: problem.into(),
        });
    }

    /// Reports every key that is not part of the format. Rejecting unknown keys catches typos
    /// such as `"trigger_prce"` that would otherwise silently change the order.
    pub(crate) fn reject_unknown(&self, out: &mut Vec<FieldProblem>) {
        for key in self.unknown() {
            self.problem(out, &shown_key(key), "is not a known field");
        }
    }

    /// Reports every key that is not part of the format as ignored (Dhan's format, whose
    /// upstream ignored extra keys: an alert written for it must keep working).
    pub(crate) fn ignore_unknown(&self, warnings: &mut Vec<FieldProblem>) {
        for key in self.unknown() {
            self.problem(warnings, &shown_key(key), "is not a known field; ignored");
        }
    }

    fn unknown(&self) -> BTreeSet<&'a String> {
        self.map
            .keys()
            .filter(|k| !self.allowed.contains(&k.as_str()))
            .collect()
    }

    pub(crate) fn raw(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// A text value; numbers are accepted as their decimal text. Empty means absent.
    pub(crate) fn text(&self, out: &mut Vec<FieldProblem>, key: &str) -> Option<String> {
        match self.raw(key)? {
            Value::String(s) => Some(s.trim().to_owned()).filter(|s| !s.is_empty()),
            Value::Number(n) => Some(n.to_string()),
            _ => {
                self.problem(out, key, "must be text");
                None
            }
        }
    }

    /// Like [`Fields::text`], but absence is a problem.
    pub(crate) fn required_text(&self, out: &mut Vec<FieldProblem>, key: &str) -> Option<String> {
        match self.raw(key) {
            None => {
                self.problem(out, key, "is required");
                None
            }
            Some(Value::String(s)) if s.trim().is_empty() => {
                self.problem(
                    out,
                    key,
                    "is required (it is empty: check the TradingView placeholder)",
                );
                None
            }
            Some(_) => self.text(out, key),
        }
    }

    /// A number given as a JSON number or as text. Empty text means absent.
    pub(crate) fn number(&self, out: &mut Vec<FieldProblem>, key: &str) -> Option<f64> {
        let parsed = match self.raw(key)? {
            Value::Number(n) => n.as_f64(),
            Value::String(s) if s.trim().is_empty() => return None,
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        match parsed {
            Some(v) if v.is_finite() => Some(v),
            _ => {
                self.problem(
                    out,
                    key,
                    format!("must be a number, got {}", shown(self.raw(key))),
                );
                None
            }
        }
    }

    /// A price: a finite number that is not negative.
    pub(crate) fn price(&self, out: &mut Vec<FieldProblem>, key: &str) -> Option<f64> {
        let v = self.number(out, key)?;
        if v < 0.0 {
            self.problem(
                out,
                key,
                format!("must not be negative, got {}", shown(self.raw(key))),
            );
            return None;
        }
        Some(v)
    }

    /// A quantity: a whole number from 1 to [`MAX_QUANTITY`]. `"2.0"` is accepted as 2 (some
    /// placeholders print whole numbers that way); `"1.5"`, `"0"`, `"-5"`, `"+5"`, `"1e3"`,
    /// `"0x10"` and `""` are not.
    pub(crate) fn quantity(&self, out: &mut Vec<FieldProblem>, key: &str) -> Option<u32> {
        let raw = self.raw(key);
        let is_empty_text = matches!(raw, Some(Value::String(s)) if s.trim().is_empty());
        if raw.is_none() || is_empty_text {
            self.problem(out, key, "is required (a positive whole number)");
            return None;
        }
        let number = match raw {
            Some(Value::Number(n)) => n.as_f64(),
            // Digits only (an integral "10.0" too, as some placeholders print counts): "1e3",
            // "+5" and "0x10" parse as numbers elsewhere but are not what a sender writes for a
            // quantity, so they are refused rather than read as 1,000, 5 or 16.
            Some(Value::String(s)) if is_plain_count(s.trim()) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        match number {
            Some(q)
                if q.is_finite() && q.fract() == 0.0 && q >= 1.0 && q <= MAX_QUANTITY as f64 =>
            {
                Some(q as u32)
            }
            _ => {
                self.problem(
                    out,
                    key,
                    format!(
                        "must be a positive whole number up to {MAX_QUANTITY}, got {}",
                        shown(raw)
                    ),
                );
                None
            }
        }
    }

    /// A boolean given as JSON true/false or as text ("true", "false", "1", "0", "yes", "no").
    pub(crate) fn boolean(&self, out: &mut Vec<FieldProblem>, key: &str) -> Option<bool> {
        let parsed = match self.raw(key)? {
            Value::Bool(b) => Some(*b),
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "" => return None,
                "true" | "1" | "yes" => Some(true),
                "false" | "0" | "no" => Some(false),
                _ => None,
            },
            Value::Number(n) if n.as_u64() == Some(1) => Some(true),
            Value::Number(n) if n.as_u64() == Some(0) => Some(false),
            _ => None,
        };
        if parsed.is_none() {
            self.problem(
                out,
                key,
                format!("must be true or false, got {}", shown(self.raw(key))),
            );
        }
        parsed
    }

    /// A value from a fixed list, matched case-insensitively through `parse`.
    pub(crate) fn choice<T>(
        &self,
        out: &mut Vec<FieldProblem>,
        key: &str,
        accepted: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Option<T> {
        let text = self.text(out, key)?;
        let parsed = parse(&text.to_ascii_uppercase());
        if parsed.is_none() {
            self.problem(
                out,
                key,
                format!("'{}' is not accepted; use {accepted}", clip(&text)),
            );
        }
        parsed
    }

    /// A nested object, if present.
    pub(crate) fn object(
        &self,
        out: &mut Vec<FieldProblem>,
        key: &str,
    ) -> Option<&'a Map<String, Value>> {
        match self.raw(key)? {
            Value::Object(m) => Some(m),
            _ => {
                self.problem(out, key, "must be an object");
                None
            }
        }
    }
}

/// An unknown key as a field name: clipped, and an empty key shown as `""`.
fn shown_key(key: &str) -> String {
    if key.is_empty() {
        "\"\"".to_owned()
    } else {
        clip(key)
    }
}

/// `10`, `10.0`, `10.00`: digits, optionally a point and zeros.
fn is_plain_count(s: &str) -> bool {
    let (whole, fraction) = s.split_once('.').unwrap_or((s, ""));
    !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.bytes().all(|b| b == b'0')
}

/// A value as shown in an error message: short, and never more than the user sent.
pub(crate) fn shown(v: Option<&Value>) -> String {
    match v {
        None => "nothing".to_owned(),
        Some(Value::String(s)) => format!("\"{}\"", clip(s)),
        Some(other) => clip(&other.to_string()),
    }
}

/// Cuts long user text so an error message stays one readable line.
pub fn clip(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(MAX).collect::<String>())
    }
}
