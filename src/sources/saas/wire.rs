//! Reading vendors' records as typed structs without losing any.
//!
//! Each source's `api.rs` declares the wire format with serde, its fields
//! `Option<Text>` (vendors send ids as strings or numbers, and leave out
//! fields the app may not read). A list holds [`Item`]s: a record that does
//! not fit its struct (a list where text belongs) is kept as [`Item::Bad`]
//! with what went wrong, by path, and the scalar fields it did carry, so
//! the source reports it as unreadable, by its id where it has one.
//! Vendors add fields: no struct denies unknown ones.

use crate::model::{Kind, SourceId, Unreadable, UserField};
use serde::de::{self, Deserialize, DeserializeOwned, Deserializer, Visitor};
use serde_json::Value;

/// A text field: a string or a number on the wire (vendors send ids both
/// ways). A boolean, list or table is an error naming the field.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Text(String);

impl Text {
    /// The value, trimmed; blank is no value.
    pub fn get(&self) -> Option<String> {
        Some(self.0.trim()).filter(|s| !s.is_empty()).map(str::to_owned)
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Text(s.to_owned())
    }
}

/// The value of an optional text field (missing, null and blank are none).
pub fn text(t: &Option<Text>) -> Option<String> {
    t.as_ref().and_then(Text::get)
}

impl serde::Serialize for Text {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// A field that may be missing, null, or set, told apart (a delta record
/// carries only what changed): `None` missing, `Some(None)` null. Use with
/// `#[serde(default, deserialize_with = "wire::maybe", skip_serializing_if = "Option::is_none")]`.
pub fn maybe<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("text")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Text, E> {
                Ok(Text(s.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Text, E> {
                Ok(Text(n.to_string()))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Text, E> {
                Ok(Text(n.to_string()))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Text, E> {
                Ok(Text(n.to_string()))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Text, E> {
                Err(E::custom("is a boolean, not text"))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Text, A::Error> {
                Err(de::Error::custom("is a list, not text"))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<Text, A::Error> {
                Err(de::Error::custom("is a table, not text"))
            }
        }
        d.deserialize_any(V)
    }
}

/// One record of a list: typed (with the record as the vendor sent it,
/// for `[mapping]`'s expressions), or what was wrong with it.
#[derive(Debug)]
pub enum Item<T> {
    Ok(T, Value),
    Bad(Bad),
}

/// A record that does not fit its struct.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bad {
    /// What is wrong, by path: "email is a list, not text".
    pub problem: String,
    /// Its top-level text and number fields, to find its id and name by.
    pub scalars: Vec<(String, String)>,
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Item<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let typed = serde_path_to_error::deserialize::<_, T>(&v);
        Ok(match typed {
            Ok(t) => Item::Ok(t, v),
            Err(e) => {
                let inner = e.inner().to_string();
                let path = e.path().to_string();
                let problem = match path.as_str() {
                    "." | "" => inner,
                    p if inner.starts_with("is ") => format!("{p} {inner}"),
                    p => format!("{p}: {inner}"),
                };
                let scalars = v
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter_map(|(k, x)| match x {
                        Value::String(s) => Some((k.clone(), s.clone())),
                        Value::Number(n) => Some((k.clone(), n.to_string())),
                        _ => None,
                    })
                    .collect();
                Item::Bad(Bad { problem, scalars })
            }
        })
    }
}

impl Bad {
    /// A top-level text or number field it carries.
    pub fn scalar(&self, key: &str) -> Option<&str> {
        self.scalars.iter().find(|(k, _)| k == key).map(|(_, v)| v.trim()).filter(|v| !v.is_empty())
    }

    /// The record as unreadable: by its `id_key` when it has one, else by
    /// whatever of `hints` it carries.
    pub fn unreadable(&self, kind: Kind, id_key: &str, hints: &[&str]) -> Unreadable {
        match self.scalar(id_key) {
            Some(id) => invalid(kind, SourceId(id.to_owned()), &self.problem),
            None => {
                let seen: Vec<(&str, Option<String>)> = hints.iter().map(|k| (*k, self.scalar(k).map(str::to_owned))).collect();
                let mut u = without_id(kind, id_key, &seen);
                u.message = format!("{}: {}", u.message, self.problem);
                u
            }
        }
    }
}

/// A record known by its id with something wrong in it.
pub fn invalid(kind: Kind, id: SourceId, problem: &str) -> Unreadable {
    Unreadable { kind, message: format!("{kind} {id}: {problem}"), source_id: Some(id) }
}

/// A record without its stable id: unreadable, named by whatever else it
/// carries (other ids, the name) so an admin can find it.
pub fn without_id(kind: Kind, id_key: &str, hints: &[(&str, Option<String>)]) -> Unreadable {
    let seen: Vec<String> =
        hints.iter().filter_map(|(k, v)| v.as_ref().map(|v| format!("{k} {:?}", crate::redact::excerpt(v, 80)))).collect();
    let which = if seen.is_empty() { "nothing else to tell it by".to_owned() } else { seen.join(", ") };
    Unreadable { kind, source_id: None, message: format!("a {kind} record without {id_key} ({which})") }
}

/// The fields a vendor did not provide for one record: those none of whose
/// keys is in it (missing or null). A key present with "" says the field is
/// empty; a missing key says nothing (a permission the app lacks, an app
/// created after the vendor stopped sending it). Fields mapped to no key
/// (`&[]`) are ones the vendor has no notion of: always absent.
pub fn absent_fields(map: &[(UserField, &[&Option<Text>])]) -> Vec<UserField> {
    map.iter().filter(|(_, fields)| fields.iter().all(|f| f.is_none())).map(|(f, _)| *f).collect()
}

/// A record from its JSON, as a list would hold it (for tests).
#[cfg(test)]
pub fn item<T: DeserializeOwned>(v: Value) -> Item<T> {
    serde_json::from_value(v).expect("an item always deserializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct U {
        id: Option<Text>,
        email: Option<Text>,
        #[serde(default)]
        depts: Vec<Text>,
    }

    #[test]
    fn text_is_a_string_or_a_number_and_blank_is_none() {
        let Item::Ok(u, ..) = item::<U>(serde_json::json!({"id": 7, "email": "  ", "depts": ["a", 2]})) else { panic!() };
        assert_eq!((text(&u.id), text(&u.email)), (Some("7".into()), None));
        assert_eq!(u.depts.iter().filter_map(Text::get).collect::<Vec<_>>(), ["a", "2"]);
        let Item::Ok(u, ..) = item::<U>(serde_json::json!({"email": null})) else { panic!() };
        assert!(u.id.is_none() && u.email.is_none());
    }

    #[test]
    fn a_record_that_does_not_fit_is_kept_with_its_path_and_id() {
        let Item::Bad(b) = item::<U>(serde_json::json!({"id": "u1", "email": ["a@x"], "name": "Ann"})) else { panic!() };
        assert_eq!(b.problem, "email is a list, not text");
        let u = b.unreadable(Kind::User, "id", &["name"]);
        assert_eq!(u.source_id, Some(SourceId("u1".into())));
        assert!(u.message.contains("u1") && u.message.contains("email is a list"), "{}", u.message);
        let Item::Bad(b) = item::<U>(serde_json::json!({"id": true, "depts": [{}], "name": "Bob"})) else { panic!() };
        let u = b.unreadable(Kind::User, "id", &["name"]);
        assert_eq!(u.source_id, None);
        assert!(u.message.contains("record without id") && u.message.contains("Bob"), "{}", u.message);
    }
}
