//! Whether JSON text holds, at any depth, the object key serde_json's own
//! `Value` reader takes for the marker of a raw value (with its `raw_value`
//! feature): the strict reader refuses such text on purpose, so the check
//! that it refuses nothing `serde_json` accepts must leave it out. Keys are
//! read decoded, as both readers compare them.

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

const RAW_VALUE_KEY: &str = "$serde_json::private::RawValue";

pub fn in_text(data: &[u8]) -> bool {
    let mut de = serde_json::Deserializer::from_slice(data);
    Scan.deserialize(&mut de).unwrap_or(false)
}

#[derive(Clone, Copy)]
struct Scan;

impl<'de> DeserializeSeed<'de> for Scan {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Scan {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON")
    }

    fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_str<E>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let mut found = false;
        while let Some(inner) = seq.next_element_seed(self)? {
            found |= inner;
        }
        Ok(found)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut found = false;
        while let Some(key) = map.next_key::<String>()? {
            if key == RAW_VALUE_KEY {
                found = true;
                map.next_value::<IgnoredAny>()?;
            } else {
                found |= map.next_value_seed(self)?;
            }
        }
        Ok(found)
    }
}
