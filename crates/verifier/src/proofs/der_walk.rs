//! Walking DER structures that no typed decoder covers (CMS timestamps,
//! certificate extensions that must be rewritten): one element at a time,
//! with errors naming what was being read.

use x509_cert::der::asn1::{AnyRef, ObjectIdentifier};
use x509_cert::der::{Decode, Encode, Reader, SliceReader, Tag, TagNumber, Tagged};

pub(crate) fn err(what: &str) -> impl Fn(x509_cert::der::Error) -> String + '_ {
    move |e| format!("{what} is malformed: {e}")
}

pub(crate) fn one<'a>(bytes: &'a [u8], what: &str) -> Result<AnyRef<'a>, String> {
    AnyRef::from_der(bytes).map_err(err(what))
}

/// The elements of a constructed value, in order.
pub(crate) fn items<'a>(value: &'a [u8], what: &str) -> Result<Vec<AnyRef<'a>>, String> {
    let mut reader = SliceReader::new(value).map_err(err(what))?;
    let mut out = Vec::new();
    while !reader.is_finished() {
        out.push(AnyRef::decode(&mut reader).map_err(err(what))?);
    }
    Ok(out)
}

pub(crate) fn expect(a: &AnyRef<'_>, tag: Tag, what: &str) -> Result<(), String> {
    if a.tag() == tag {
        Ok(())
    } else {
        Err(format!("{what} has tag {}, expected {tag}", a.tag()))
    }
}

pub(crate) fn context(number: u32, constructed: bool) -> Tag {
    Tag::ContextSpecific {
        constructed,
        number: TagNumber(number),
    }
}

pub(crate) fn oid(a: &AnyRef<'_>, what: &str) -> Result<ObjectIdentifier, String> {
    a.decode_as::<ObjectIdentifier>().map_err(err(what))
}

/// The algorithm OID of an AlgorithmIdentifier.
pub(crate) fn algorithm(a: &AnyRef<'_>, what: &str) -> Result<ObjectIdentifier, String> {
    expect(a, Tag::Sequence, what)?;
    let parts = items(a.value(), what)?;
    let first = parts.first().ok_or_else(|| format!("{what} is empty"))?;
    oid(first, what)
}

/// Encodes `content` under `tag`.
pub(crate) fn encode(tag: Tag, content: &[u8], what: &str) -> Result<Vec<u8>, String> {
    AnyRef::new(tag, content)
        .and_then(|a| a.to_der())
        .map_err(err(what))
}
