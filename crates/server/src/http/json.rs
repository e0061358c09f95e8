//! JSON text from clients (REST bodies, WebSocket frames) into
//! `serde_json::Value`, refusing a key given twice in any object, at any
//! depth. serde_json keeps the last of duplicate keys silently, while other
//! parsers (a proxy, a WAF, the tenant's backend) may keep the first: a
//! request that means one thing to them and another to us. It must not
//! accept anything `serde_json::from_slice::<Value>` refuses.

use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::fmt;

/// Why a text is not acceptable JSON.
#[derive(Debug, PartialEq)]
pub enum JsonProblem {
    /// Not JSON at all (1-based line and column of the first error).
    Syntax { line: usize, column: usize },
    /// A key given twice; the path of the repeated key (`context.page`,
    /// `items[2].sku`).
    Duplicate { path: String },
}

/// Parses `text`, refusing duplicate keys anywhere in it.
pub fn parse(text: &[u8]) -> Result<Value, JsonProblem> {
    // Filled from the inside out while the error unwinds: the repeated key
    // first, then each enclosing key or index.
    let path = RefCell::new(Vec::new());
    let mut de = serde_json::Deserializer::from_slice(text);
    let parsed = Strict { path: &path }.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    match parsed {
        Ok(value) => Ok(value),
        Err(_) if !path.borrow().is_empty() => {
            Err(JsonProblem::Duplicate { path: joined(&path.into_inner()) })
        }
        Err(e) => Err(JsonProblem::Syntax { line: e.line(), column: e.column() }),
    }
}

/// The key that `serde_json`'s own `Value` reader takes for the marker of a
/// raw value (its `raw_value` feature, which a dependency turns on): it reads
/// such an object as the JSON text inside, or refuses it. Kept as a plain key
/// here, a stored `context` or `metadata` would mean something else, or fail,
/// when read back.
const RAW_VALUE_KEY: &str = "$serde_json::private::RawValue";

enum Step {
    Key(String),
    Index(usize),
}

fn joined(reversed: &[Step]) -> String {
    let mut out = String::new();
    for step in reversed.iter().rev() {
        match step {
            Step::Key(k) if out.is_empty() => out.push_str(k),
            Step::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// One value; `path` collects where a duplicate was found.
#[derive(Clone, Copy)]
struct Strict<'p> {
    path: &'p RefCell<Vec<Step>>,
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
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
        // JSON text has no NaN or infinity, so this is always a number.
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
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

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            match seq.next_element_seed(self) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => return Ok(Value::Array(items)),
                Err(e) => return Err(self.within(e, Step::Index(items.len()))),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == RAW_VALUE_KEY {
                return Err(A::Error::custom("a key serde_json reserves"));
            }
            if object.contains_key(&key) {
                self.path.borrow_mut().push(Step::Key(key));
                return Err(A::Error::custom("a key is given more than once"));
            }
            match map.next_value_seed(self) {
                Ok(value) => object.insert(key, value),
                Err(e) => return Err(self.within(e, Step::Key(key))),
            };
        }
        Ok(Value::Object(object))
    }
}

impl Strict<'_> {
    /// An error from inside a member: if it is a duplicate, note the member.
    fn within<E>(self, e: E, step: Step) -> E {
        let mut path = self.path.borrow_mut();
        if !path.is_empty() {
            path.push(step);
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dup(text: &str) -> Option<String> {
        match parse(text.as_bytes()) {
            Err(JsonProblem::Duplicate { path }) => Some(path),
            _ => None,
        }
    }

    #[test]
    fn duplicate_keys_are_named_by_their_path() {
        assert_eq!(dup(r#"{"session_id":"a","session_id":"b"}"#).as_deref(), Some("session_id"));
        assert_eq!(dup(r#"{"a":1,"context":{"page":"x","page":"y"}}"#).as_deref(), Some("context.page"));
        assert_eq!(dup(r#"{"items":[{"sku":1},{"sku":2,"sku":3}]}"#).as_deref(), Some("items[1].sku"));
        assert_eq!(dup(r#"[{"a":{"b":[0,{"c":1,"c":1}]}}]"#).as_deref(), Some("[0].a.b[1].c"));
        // Escapes are decoded before comparing: "\u0061" is "a".
        assert_eq!(dup(r#"{"a":1,"\u0061":2}"#).as_deref(), Some("a"));
    }

    #[test]
    fn what_is_not_json_is_a_syntax_problem() {
        for bad in ["", "{", r#"{"a":1,}"#, r#"{"a":1} x"#, "NaN", r#"{"a":1,"b""#] {
            assert!(matches!(parse(bad.as_bytes()), Err(JsonProblem::Syntax { .. })), "{bad}");
        }
        // The first problem in reading order is the one reported.
        assert_eq!(dup(r#"{"a":1,"a""#).as_deref(), Some("a"));
        // Where serde_json itself would say.
        let text = b"{\n  \"a\": [1,\n  2,, 3]\n}";
        let e = serde_json::from_slice::<Value>(text).unwrap_err();
        assert_eq!(parse(text), Err(JsonProblem::Syntax { line: e.line(), column: e.column() }));
        assert_eq!(e.line(), 3);
    }

    /// Found by fuzzing (`fuzz/corpus/json_bodies/raw_value_key`): the
    /// reader kept an object that serde_json reads as raw JSON text, or refuses.
    #[test]
    fn the_key_serde_json_reserves_for_raw_values_is_refused() {
        for text in
            [r#"{"$serde_json::private::RawValue":8e7}"#, r#"{"a":[{"$serde_json::private::RawValue":"1"}]}"#]
        {
            assert!(matches!(parse(text.as_bytes()), Err(JsonProblem::Syntax { .. })), "{text}");
        }
    }

    #[test]
    fn the_same_key_in_different_objects_is_fine() {
        let v = parse(br#"{"a":{"x":1},"b":{"x":2},"c":[{"x":3},{"x":4}]}"#).unwrap();
        assert_eq!(v["c"][1]["x"], 4);
    }

    #[test]
    fn depth_is_still_bounded() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(matches!(parse(deep.as_bytes()), Err(JsonProblem::Syntax { .. })));
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-1e300f64..1e300).prop_map(Value::from),
            "\\PC{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("\\PC{0,6}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Without duplicates, it reads exactly what serde_json reads.
        #[test]
        fn agrees_with_serde_json_without_duplicates(v in json_value()) {
            let text = serde_json::to_vec(&v).unwrap();
            prop_assert_eq!(parse(&text).ok(), serde_json::from_slice::<Value>(&text).ok());
        }
    }
}
