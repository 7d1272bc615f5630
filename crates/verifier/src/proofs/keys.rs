//! Public keys (ECDSA P-256/P-384, Ed25519, RSA) and their fingerprints.

use sha2::{Digest as _, Sha256};
use sigstore::crypto::{CosignVerificationKey, Signature};

/// A parsed public key with the SPKI DER it came from.
#[derive(Debug, Clone)]
pub struct PublicKey {
    key: CosignVerificationKey,
    spki_der: Vec<u8>,
}

/// Why a public key could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(String);

impl PublicKey {
    /// Parses one PEM `PUBLIC KEY` block (SubjectPublicKeyInfo).
    pub fn from_pem(pem_text: &str) -> Result<Self, KeyError> {
        let block = pem::parse(pem_text.trim())
            .map_err(|e| KeyError(format!("not a PEM public key: {e}")))?;
        if block.tag() != "PUBLIC KEY" {
            return Err(KeyError(format!(
                "PEM block is {:?}, expected \"PUBLIC KEY\" (SubjectPublicKeyInfo)",
                block.tag()
            )));
        }
        Self::from_spki_der(block.contents())
    }

    /// Parses a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let key = CosignVerificationKey::try_from_der(der).map_err(|e| {
            KeyError(format!(
                "unsupported public key (want ECDSA P-256/P-384, Ed25519 or RSA): {e}"
            ))
        })?;
        Ok(Self {
            key,
            spki_der: der.to_vec(),
        })
    }

    /// `sha256:<hex>` of the SPKI DER, the signer name tagpin reports for keys.
    pub fn fingerprint(&self) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(&self.spki_der)))
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// True when `signature` is this key's signature over a message whose
    /// SHA-256 or SHA-384 is `digest` (ECDSA and RSA PKCS#1; Ed25519 signs
    /// whole messages and never verifies this way).
    pub fn verifies_prehashed(&self, digest: &[u8], signature: &[u8]) -> bool {
        use aws_lc_rs::{digest, signature as sig};
        let (hash, algs): (_, [&'static dyn sig::VerificationAlgorithm; 3]) = match digest.len() {
            32 => (
                &digest::SHA256,
                [
                    &sig::ECDSA_P256_SHA256_ASN1,
                    &sig::ECDSA_P384_SHA256_ASN1,
                    &sig::RSA_PKCS1_2048_8192_SHA256,
                ],
            ),
            48 => (
                &digest::SHA384,
                [
                    &sig::ECDSA_P384_SHA384_ASN1,
                    &sig::ECDSA_P256_SHA384_ASN1,
                    &sig::RSA_PKCS1_2048_8192_SHA384,
                ],
            ),
            _ => return false,
        };
        let Ok(d) = digest::Digest::import_less_safe(digest, hash) else {
            return false;
        };
        algs.iter().any(|alg| {
            sig::UnparsedPublicKey::new(*alg, &self.spki_der)
                .verify_digest(&d, signature)
                .is_ok()
        })
    }

    /// True when `signature` is this key's signature over `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        self.key
            .verify_signature(Signature::Raw(signature), message)
            .is_ok()
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.spki_der == other.spki_der
    }
}

impl Eq for PublicKey {}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{self as sig, KeyPair as _};

    fn spki(key: &sig::EcdsaKeyPair) -> Vec<u8> {
        use aws_lc_rs::encoding::AsDer as _;
        let der: aws_lc_rs::encoding::PublicKeyX509Der<'_> = key.public_key().as_der().unwrap();
        der.as_ref().to_vec()
    }

    #[test]
    fn prehashed_verification_matches_whole_message_verification() {
        let rng = SystemRandom::new();
        for (alg, hash) in [
            (
                &sig::ECDSA_P256_SHA256_ASN1_SIGNING,
                &aws_lc_rs::digest::SHA256,
            ),
            (
                &sig::ECDSA_P384_SHA384_ASN1_SIGNING,
                &aws_lc_rs::digest::SHA384,
            ),
        ] {
            let pkcs8 = sig::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
            let pair = sig::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref()).unwrap();
            let key = PublicKey::from_spki_der(&spki(&pair)).unwrap();
            let message = b"the artifact";
            let signature = pair.sign(&rng, message).unwrap();
            let digest = aws_lc_rs::digest::digest(hash, message);
            assert!(key.verifies(message, signature.as_ref()));
            assert!(key.verifies_prehashed(digest.as_ref(), signature.as_ref()));
            let other = aws_lc_rs::digest::digest(hash, b"another artifact");
            assert!(!key.verifies_prehashed(other.as_ref(), signature.as_ref()));
            assert!(!key.verifies_prehashed(&digest.as_ref()[1..], signature.as_ref()));
        }
    }

    #[test]
    fn ed25519_never_verifies_a_prehashed_message() {
        let rng = SystemRandom::new();
        let pkcs8 = sig::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = sig::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let mut der = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        der.extend_from_slice(pair.public_key().as_ref());
        let key = PublicKey::from_spki_der(&der).unwrap();
        let message = b"the artifact";
        let signature = pair.sign(message);
        assert!(key.verifies(message, signature.as_ref()));
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, message);
        assert!(!key.verifies_prehashed(digest.as_ref(), signature.as_ref()));
    }
}
