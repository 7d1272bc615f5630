//! Authority lists that refuse a signer written twice while the YAML is read,
//! so the error carries the line of the repeated entry.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::config::AuthorityConfig;

/// Deserializes an optional authority list (`anyOf`, `allOf`).
pub(super) fn optional<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<AuthorityConfig>>, D::Error> {
    Option::<Distinct>::deserialize(d).map(|o| o.map(|l| l.0))
}

/// Deserializes an authority list (`threshold.of`).
pub(super) fn list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<AuthorityConfig>, D::Error> {
    Distinct::deserialize(d).map(|l| l.0)
}

/// An authority list without repeated signers.
struct Distinct(Vec<AuthorityConfig>);

impl<'de> Deserialize<'de> for Distinct {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_seq(ListVisitor)
    }
}

struct ListVisitor;

impl<'de> Visitor<'de> for ListVisitor {
    type Value = Distinct;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of authorities")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Distinct, A::Error> {
        let mut list = Vec::new();
        while let Some(a) = seq.next_element_seed(Entry(&list))? {
            list.push(a);
        }
        Ok(Distinct(list))
    }
}

/// One entry, checked against those before it. The check runs inside the
/// entry's own mapping, so the parser reports the entry's line.
struct Entry<'a>(&'a [AuthorityConfig]);

impl<'de> DeserializeSeed<'de> for Entry<'_> {
    type Value = AuthorityConfig;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<AuthorityConfig, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Entry<'_> {
    type Value = AuthorityConfig;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an authority (key or keyless)")
    }

    fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<AuthorityConfig, M::Error> {
        let a = AuthorityConfig::deserialize(de::value::MapAccessDeserializer::new(map))?;
        if let Some(i) = self.0.iter().position(|o| o.same_signer_as(&a)) {
            return Err(de::Error::custom(format!(
                "authority #{} repeats authority #{i_1} ({}) with the same annotations; \
                 one signature would count for both, so list each signer once",
                self.0.len() + 1,
                a.describe_signer(),
                i_1 = i + 1,
            )));
        }
        Ok(a)
    }
}
