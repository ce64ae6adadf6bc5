//! Finding duplicate keys in an alert body. JSON allows them and `serde_json` keeps the last
//! one silently, so `"quantity":1,"quantity":100` would place 100 and `"action":"buy",
//! "action":"sell"` a SELL: an alert that says two things is refused instead, naming the key.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// The path of the first key that appears twice in one object (`quantity`,
/// `order_legs[0].price`), or `None` when there is none (or the body is not JSON: the caller
/// has already parsed it leniently and reports that on its own).
pub fn first_duplicate_key(body: &[u8]) -> Option<String> {
    let mut de = serde_json::Deserializer::from_slice(body);
    match (Walk {
        path: String::new(),
    })
    .deserialize(&mut de)
    {
        Ok(()) => None,
        Err(e) => {
            let text = e.to_string();
            text.strip_prefix(MARK)
                .map(|rest| rest.split(" at line ").next().unwrap_or(rest).to_owned())
        }
    }
}

const MARK: &str = "duplicate key: ";

/// Walks a JSON value, failing at the first object that repeats a key.
struct Walk {
    path: String,
}

impl<'de> DeserializeSeed<'de> for Walk {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0usize;
        while seq
            .next_element_seed(Walk {
                path: format!("{}[{i}]", self.path),
            })?
            .is_some()
        {
            i += 1;
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = if self.path.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", self.path)
            };
            if !seen.insert(key) {
                // Drain nothing more: the first duplicate is the answer.
                return Err(de::Error::custom(format!("{MARK}{path}")));
            }
            map.next_value_seed(Walk { path })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_found_anywhere_with_their_path() {
        assert_eq!(
            first_duplicate_key(br#"{"quantity":1,"quantity":100}"#).as_deref(),
            Some("quantity")
        );
        assert_eq!(
            first_duplicate_key(
                br#"{"order_legs":[{"price":"1"},{"price":"1","symbol":"A","price":"2"}]}"#
            )
            .as_deref(),
            Some("order_legs[1].price")
        );
        assert_eq!(
            first_duplicate_key(br#"{"meta":{"timenow":"a","timenow":"b"}}"#).as_deref(),
            Some("meta.timenow")
        );
        assert_eq!(first_duplicate_key(br#"{"a":{"x":1},"b":{"x":1}}"#), None);
        assert_eq!(first_duplicate_key(b"not json"), None);
    }
}
