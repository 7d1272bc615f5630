//! DSSE envelopes and their pre-authentication encoding (PAE).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

/// The payload type of in-toto statements.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// A decoded DSSE envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The envelope's payload type.
    pub payload_type: String,
    /// The decoded payload.
    pub payload: Vec<u8>,
    /// The decoded signatures.
    pub signatures: Vec<Vec<u8>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EnvelopeJson {
    payload_type: String,
    payload: String,
    #[serde(default)]
    signatures: Vec<SignatureJson>,
}

#[derive(Deserialize)]
struct SignatureJson {
    sig: String,
}

impl Envelope {
    /// Parses the JSON envelope and decodes its payload and signatures.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let json: EnvelopeJson =
            serde_json::from_slice(bytes).map_err(|e| format!("not a DSSE envelope: {e}"))?;
        Self::from_parts(
            &json.payload_type,
            &json.payload,
            json.signatures.iter().map(|s| s.sig.as_str()),
        )
    }

    /// Builds an envelope from base64 payload and signatures.
    pub fn from_parts<'a>(
        payload_type: &str,
        payload_b64: &str,
        signatures_b64: impl Iterator<Item = &'a str>,
    ) -> Result<Self, String> {
        let payload = STANDARD
            .decode(payload_b64)
            .map_err(|e| format!("DSSE payload is not base64: {e}"))?;
        let signatures = signatures_b64
            .map(|s| {
                STANDARD
                    .decode(s)
                    .map_err(|e| format!("DSSE signature is not base64: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if signatures.is_empty() {
            return Err("DSSE envelope has no signatures".into());
        }
        Ok(Self {
            payload_type: payload_type.to_owned(),
            payload,
            signatures,
        })
    }

    /// The bytes the signatures are over.
    pub fn pae(&self) -> Vec<u8> {
        pae(&self.payload_type, &self.payload)
    }
}

/// `DSSEv1 <len(type)> <type> <len(body)> <body>`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_specification_example() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn rejects_envelopes_without_signatures() {
        let e = Envelope::parse(br#"{"payloadType":"x","payload":"eA==","signatures":[]}"#);
        assert!(e.is_err());
    }
}
