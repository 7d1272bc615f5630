//! Image layers that run: an uncompressed tar holding Debian's static busybox for the
//! image's architecture (from `hack/tools.sh`) and a seed file that makes each image's
//! digest its own.

use std::path::PathBuf;

use anyhow::{Context as _, bail};

use crate::cluster::tools_env;

/// Debian's `busybox-static` for `architecture`: the installed package for this machine's
/// amd64, the arm64 one `hack/tools.sh` fetched (`TAGPIN_BUSYBOX_ARM64`).
pub fn busybox(architecture: &str) -> anyhow::Result<PathBuf> {
    match architecture {
        "amd64" => Ok(PathBuf::from("/bin/busybox")),
        "arm64" => Ok(tools_env("TAGPIN_BUSYBOX_ARM64")),
        other => bail!("no busybox for {other}"),
    }
}

/// The command a runnable test image starts: it sleeps until told to stop, and stops at once.
pub const SLEEP_CMD: [&str; 4] = [
    "/bin/busybox",
    "sh",
    "-c",
    "trap 'exit 0' TERM INT; while true; do sleep 1; done",
];

/// A layer with `/bin/busybox` for `architecture`, `/bin/sh` linked to it, and
/// `/etc/tagpin-seed` holding `seed`.
pub fn busybox_layer(architecture: &str, seed: &str) -> anyhow::Result<Vec<u8>> {
    let path = busybox(architecture)?;
    let busybox = std::fs::read(&path).with_context(|| {
        format!(
            "reading {} (busybox-static, installed by hack/tools.sh)",
            path.display()
        )
    })?;
    let mut tar = Vec::new();
    entry(&mut tar, "bin/", b'5', 0o755, &[], "")?;
    entry(&mut tar, "bin/busybox", b'0', 0o755, &busybox, "")?;
    entry(&mut tar, "bin/sh", b'2', 0o777, &[], "busybox")?;
    entry(&mut tar, "etc/", b'5', 0o755, &[], "")?;
    entry(
        &mut tar,
        "etc/tagpin-seed",
        b'0',
        0o644,
        seed.as_bytes(),
        "",
    )?;
    tar.extend_from_slice(&[0u8; 1024]);
    Ok(tar)
}

/// Appends one ustar entry (header, content padded to 512 bytes).
fn entry(
    tar: &mut Vec<u8>,
    name: &str,
    kind: u8,
    mode: u32,
    content: &[u8],
    link: &str,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        name.len() < 100 && link.len() < 100,
        "tar name too long: {name}"
    );
    let mut header = [0u8; 512];
    header[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut header[100..108], u64::from(mode));
    octal(&mut header[108..116], 0);
    octal(&mut header[116..124], 0);
    octal(&mut header[124..136], content.len() as u64);
    octal(&mut header[136..148], 0);
    header[148..156].copy_from_slice(b"        ");
    header[156] = kind;
    header[157..157 + link.len()].copy_from_slice(link.as_bytes());
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
    octal(&mut header[148..155], u64::from(sum));
    tar.extend_from_slice(&header);
    tar.extend_from_slice(content);
    tar.resize(tar.len().div_ceil(512) * 512, 0);
    Ok(())
}

/// Writes `value` as zero-padded octal, NUL-terminated, filling `field`.
fn octal(field: &mut [u8], value: u64) {
    let digits = format!("{value:0width$o}", width = field.len() - 1);
    field[..digits.len()].copy_from_slice(digits.as_bytes());
    field[digits.len()] = 0;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn header_checksum_and_octal_fields_follow_ustar() {
        let mut tar = Vec::new();
        entry(&mut tar, "etc/seed", b'0', 0o644, b"abc", "").unwrap();
        assert_eq!(tar.len(), 1024);
        assert_eq!(&tar[124..136], b"00000000003\0");
        let stored = std::str::from_utf8(&tar[148..154]).unwrap();
        let mut blank = tar[..512].to_vec();
        blank[148..156].copy_from_slice(b"        ");
        let sum: u32 = blank.iter().map(|b| u32::from(*b)).sum();
        assert_eq!(u32::from_str_radix(stored, 8).unwrap(), sum);
        assert_eq!(&tar[512..515], b"abc");
    }
}
