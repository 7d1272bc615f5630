//! Decoding X.509 certificates in DER. Shared by trust roots (which check the
//! CA files they load), signing certificates and SCTs, so none of them needs
//! another for it.

use x509_cert::Certificate;
use x509_cert::der::Decode;

/// Parses a DER certificate.
pub fn parse(der: &[u8]) -> Result<Certificate, String> {
    Certificate::from_der(der).map_err(|e| format!("not an X.509 certificate: {e}"))
}
