//! `tagpin certs`: a self-signed CA and a serving certificate for bootstrapping the webhook.

mod kustomization;

pub use kustomization::Options as KustomizeOptions;

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use base64::Engine as _;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// Writes `ca.crt`, `tls.crt` and `tls.key` (and `client.crt`, `client.key` for `client`)
/// into `out` and prints the base64 `caBundle`. With `kustomize`, also `ca-bundle.crt` and a
/// `kustomization.yaml` installing tagpin with them.
pub fn run(
    out: &Path,
    dns_names: &[String],
    ips: &[IpAddr],
    client: Option<&str>,
    days: u32,
    kustomize: Option<KustomizeOptions<'_>>,
) -> anyhow::Result<()> {
    if dns_names.is_empty() && ips.is_empty() {
        anyhow::bail!("the serving certificate needs at least one --dns-name or --ip");
    }
    let template = validity(days)?;
    let (ca_cert, issuer) = ca(&template)?;
    let (cert, key) = serving(&template, dns_names, ips, &issuer)?;

    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let ca_pem = ca_cert.pem();
    if let Some(options) = kustomize {
        // Read before ca.crt is replaced: the webhook keeps trusting it during the rollout.
        let previous = std::fs::read_to_string(out.join("ca.crt")).ok();
        let not_after = template.not_after.date().to_string();
        let text = kustomization::render(options, out, &not_after)?;
        let bundle = kustomization::ca_bundle(&ca_pem, previous.as_deref());
        write(out, "ca-bundle.crt", &bundle, 0o644)?;
        write(out, "kustomization.yaml", &text, 0o644)?;
    }
    write(out, "ca.crt", &ca_pem, 0o644)?;
    write(out, "tls.crt", &cert.pem(), 0o644)?;
    write(out, "tls.key", &key.serialize_pem(), 0o600)?;
    if let Some(name) = client {
        let (cert, key) = client_cert(&template, name, &issuer)?;
        write(out, "client.crt", &cert.pem(), 0o644)?;
        write(out, "client.key", &key.serialize_pem(), 0o600)?;
    }
    println!(
        "{}",
        base64::engine::general_purpose::STANDARD.encode(ca_pem.as_bytes())
    );
    Ok(())
}

/// Empty certificate parameters valid from a minute ago for `days` days.
fn validity(days: u32) -> anyhow::Result<CertificateParams> {
    // Start a minute in the past so a slightly slow clock elsewhere still accepts them.
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .saturating_sub(Duration::from_secs(60));
    let now = rcgen::date_time_ymd(1970, 1, 1) + since_epoch;
    let mut params = CertificateParams::default();
    params.not_before = now;
    params.not_after = now + Duration::from_secs(u64::from(days) * 86_400);
    Ok(params)
}

/// The self-signed CA, and the issuer that signs the serving and client certificates.
fn ca(template: &CertificateParams) -> anyhow::Result<(Certificate, Issuer<'static, KeyPair>)> {
    let mut ca_params = template.clone();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "tagpin webhook CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().context("cannot generate the CA key")?;
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .context("cannot sign the CA certificate")?;
    Ok((ca_cert, Issuer::new(ca_params, ca_key)))
}

/// The serving certificate for the given names and addresses, and its key.
fn serving(
    template: &CertificateParams,
    dns_names: &[String],
    ips: &[IpAddr],
    issuer: &Issuer<'static, KeyPair>,
) -> anyhow::Result<(Certificate, KeyPair)> {
    let mut subject_alt_names = Vec::new();
    for name in dns_names {
        subject_alt_names.push(SanType::DnsName(
            name.clone()
                .try_into()
                .with_context(|| format!("invalid --dns-name {name:?}"))?,
        ));
    }
    subject_alt_names.extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
    let mut params = template.clone();
    params.subject_alt_names = subject_alt_names;
    let common_name = dns_names
        .first()
        .cloned()
        .or_else(|| ips.first().map(ToString::to_string))
        .unwrap_or_default();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().context("cannot generate the serving key")?;
    let cert = params
        .signed_by(&key, issuer)
        .context("cannot sign the serving certificate")?;
    Ok((cert, key))
}

/// A client certificate with common name `name`, and its key.
fn client_cert(
    template: &CertificateParams,
    name: &str,
    issuer: &Issuer<'static, KeyPair>,
) -> anyhow::Result<(Certificate, KeyPair)> {
    let mut params = template.clone();
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().context("cannot generate the client key")?;
    let cert = params
        .signed_by(&key, issuer)
        .context("cannot sign the client certificate")?;
    Ok((cert, key))
}

fn write(dir: &Path, name: &str, contents: &str, mode: u32) -> anyhow::Result<()> {
    let path = dir.join(name);
    // Write beside the target and rename, so a watching server never reads half a file.
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, contents).with_context(|| format!("cannot write {}", tmp.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot set permissions of {}", tmp.display()))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
