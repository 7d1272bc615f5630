//! Registry faults: a misbehaving registry the test controls, one scenario per fault.
//! Each lookup must end before its deadline with an error naming the cause, and never
//! yield a digest the registry did not confirm.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tagpin_resolver::{
    ImageReference, Keychain, RegistrySettings, ResolveError, Resolver, ResolverConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const DIGEST_A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0},"layers":[]}"#;

/// What the fake registry answers to the n-th manifest request (`/v2/` pings get 200).
type Script = Arc<dyn Fn(usize, &str) -> Reply + Send + Sync>;

enum Reply {
    /// Write these bytes and close.
    Raw(Vec<u8>),
    /// Accept and never answer.
    Silence,
}

fn http(status: &str, headers: &[(&str, String)], body: &[u8], head: bool) -> Reply {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if !head {
        bytes.extend_from_slice(body);
    }
    Reply::Raw(bytes)
}

struct FakeRegistry {
    addr: String,
    manifest_requests: Arc<AtomicUsize>,
}

async fn fake_registry(script: Script) -> FakeRegistry {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let count = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&count);
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let (script, counter) = (Arc::clone(&script), Arc::clone(&counter));
            tokio::spawn(serve(conn, script, counter));
        }
    });
    FakeRegistry {
        addr,
        manifest_requests: count,
    }
}

async fn serve(mut conn: TcpStream, script: Script, counter: Arc<AtomicUsize>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let request_line = head.lines().next().unwrap_or_default().to_owned();
    let reply = if request_line.contains("/manifests/") {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        script(n, &request_line)
    } else {
        http("200 OK", &[], b"{}", request_line.starts_with("HEAD"))
    };
    match reply {
        Reply::Raw(bytes) => {
            let _ = conn.write_all(&bytes).await;
            let _ = conn.shutdown().await;
        }
        Reply::Silence => {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
    }
}

fn resolver(addr: &str, deadline: f64) -> Resolver {
    let mut c = ResolverConfig::default();
    c.registries.insert(
        addr.to_owned(),
        RegistrySettings {
            plain_http: true,
            ..Default::default()
        },
    );
    c.timeouts.deadline_seconds = deadline;
    c.timeouts.read_seconds = 10.0;
    Resolver::new(c).unwrap()
}

async fn resolve(
    reg: &FakeRegistry,
    deadline: f64,
) -> (Result<tagpin_resolver::Resolution, ResolveError>, Duration) {
    let image = ImageReference::parse(&format!("{}/team/app:1.0", reg.addr)).unwrap();
    let started = Instant::now();
    let r = resolver(&reg.addr, deadline)
        .resolve(&image, &Keychain::anonymous())
        .await;
    (r, started.elapsed())
}

fn is_head(line: &str) -> bool {
    line.starts_with("HEAD")
}

#[tokio::test]
async fn accepted_but_never_answered_times_out_within_the_deadline() {
    let reg = fake_registry(Arc::new(|_, _| Reply::Silence)).await;
    let (r, took) = resolve(&reg, 1.0).await;
    let err = r.unwrap_err();
    assert!(matches!(err, ResolveError::TimedOut { .. }), "{err}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(err.to_string().contains(&reg.addr));
}

#[tokio::test]
async fn server_errors_are_retried_then_reported_with_the_status() {
    for status in [
        "500 Internal Server Error",
        "502 Bad Gateway",
        "503 Service Unavailable",
    ] {
        let reg = fake_registry(Arc::new(move |_, line| {
            http(
                status,
                &[],
                br#"{"errors":[{"code":"UNAVAILABLE","message":"backend down"}]}"#,
                is_head(line),
            )
        }))
        .await;
        let (r, took) = resolve(&reg, 1.5).await;
        let err = r.unwrap_err();
        let code: u16 = status[..3].parse().unwrap();
        assert!(
            matches!(err, ResolveError::Registry { status, .. } if status == code),
            "{err}"
        );
        assert!(
            reg.manifest_requests.load(Ordering::SeqCst) > 1,
            "{status} was not retried"
        );
        assert!(took < Duration::from_secs(3), "took {took:?}");
    }
}

#[tokio::test]
async fn transient_errors_recover_within_the_deadline() {
    let reg = fake_registry(Arc::new(|n, line| {
        if n < 2 {
            http("503 Service Unavailable", &[], b"", is_head(line))
        } else {
            http(
                "200 OK",
                &[
                    ("Docker-Content-Digest", DIGEST_A.into()),
                    (
                        "Content-Type",
                        "application/vnd.oci.image.manifest.v1+json".into(),
                    ),
                ],
                b"",
                true,
            )
        }
    }))
    .await;
    let (r, _) = resolve(&reg, 5.0).await;
    assert_eq!(r.unwrap().digest.to_string(), DIGEST_A);
    assert_eq!(reg.manifest_requests.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn rate_limits_honour_retry_after_only_while_the_deadline_allows() {
    let reg = fake_registry(Arc::new(|n, line| {
        if n == 0 {
            http(
                "429 Too Many Requests",
                &[("Retry-After", "1".into())],
                b"",
                is_head(line),
            )
        } else {
            http(
                "200 OK",
                &[("Docker-Content-Digest", DIGEST_A.into())],
                b"",
                true,
            )
        }
    }))
    .await;
    let (r, took) = resolve(&reg, 5.0).await;
    assert_eq!(r.unwrap().digest.to_string(), DIGEST_A);
    assert!(
        took >= Duration::from_millis(900),
        "Retry-After was not honoured: {took:?}"
    );

    let reg = fake_registry(Arc::new(|_, line| {
        http(
            "429 Too Many Requests",
            &[("Retry-After", "60".into())],
            b"",
            is_head(line),
        )
    }))
    .await;
    let (r, took) = resolve(&reg, 2.0).await;
    let err = r.unwrap_err();
    assert!(
        matches!(err, ResolveError::Registry { status: 429, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("retry after 60.0s"), "{err}");
    assert!(
        took < Duration::from_secs(1),
        "waited although Retry-After exceeds the deadline: {took:?}"
    );
}

#[tokio::test]
async fn unauthorized_on_every_attempt() {
    let reg = fake_registry(Arc::new(|_, line| {
        http(
            "401 Unauthorized",
            &[("WWW-Authenticate", r#"Basic realm="fake""#.into())],
            b"",
            is_head(line),
        )
    }))
    .await;
    let (r, _) = resolve(&reg, 2.0).await;
    let err = r.unwrap_err();
    assert!(matches!(err, ResolveError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains(&reg.addr), "{err}");
}

#[tokio::test]
async fn malformed_digest_header_is_rejected() {
    for bad in [
        "sha256:abc",
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        "SHA256:AAAA",
        "garbage",
    ] {
        let reg = fake_registry(Arc::new(move |_, _| {
            http(
                "200 OK",
                &[("Docker-Content-Digest", bad.into())],
                b"",
                true,
            )
        }))
        .await;
        let (r, _) = resolve(&reg, 2.0).await;
        let err = r.unwrap_err();
        assert!(
            matches!(err, ResolveError::InvalidResponse { .. }),
            "{bad}: {err}"
        );
        assert!(err.to_string().contains("Docker-Content-Digest"), "{err}");
    }
}

#[tokio::test]
async fn header_that_contradicts_the_body_is_rejected() {
    // No digest on HEAD, so tagpin GETs and hashes; the GET's header names another digest.
    let reg = fake_registry(Arc::new(|_, line| {
        if is_head(line) {
            http(
                "200 OK",
                &[(
                    "Content-Type",
                    "application/vnd.oci.image.manifest.v1+json".into(),
                )],
                b"",
                true,
            )
        } else {
            http(
                "200 OK",
                &[("Docker-Content-Digest", DIGEST_A.into())],
                MANIFEST.as_bytes(),
                false,
            )
        }
    }))
    .await;
    let (r, _) = resolve(&reg, 2.0).await;
    let err = r.unwrap_err();
    assert!(matches!(err, ResolveError::InvalidResponse { .. }), "{err}");
    assert!(err.to_string().contains("does not match"), "{err}");
}

#[tokio::test]
async fn missing_header_means_get_and_hash() {
    let reg = fake_registry(Arc::new(|_, line| {
        http(
            "200 OK",
            &[(
                "Content-Type",
                "application/vnd.oci.image.manifest.v1+json".into(),
            )],
            MANIFEST.as_bytes(),
            is_head(line),
        )
    }))
    .await;
    let (r, _) = resolve(&reg, 2.0).await;
    let r = r.unwrap();
    assert_eq!(
        r.digest,
        tagpin_resolver::Digest::sha256(MANIFEST.as_bytes())
    );
    assert_eq!(
        reg.manifest_requests.load(Ordering::SeqCst),
        2,
        "one HEAD, one GET"
    );
}

#[tokio::test]
async fn oversized_manifest_is_rejected() {
    let reg = fake_registry(Arc::new(|_, line| {
        let body = vec![b' '; 5 * 1024 * 1024];
        http(
            "200 OK",
            &[(
                "Content-Type",
                "application/vnd.oci.image.manifest.v1+json".into(),
            )],
            &body,
            is_head(line),
        )
    }))
    .await;
    let (r, _) = resolve(&reg, 5.0).await;
    let err = r.unwrap_err();
    assert!(matches!(err, ResolveError::InvalidResponse { .. }), "{err}");
    assert!(err.to_string().contains("larger than"), "{err}");
}

#[tokio::test]
async fn redirect_loop_is_rejected() {
    let reg = fake_registry(Arc::new(|_, line| {
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
        http(
            "307 Temporary Redirect",
            &[("Location", path)],
            b"",
            is_head(line),
        )
    }))
    .await;
    let (r, took) = resolve(&reg, 3.0).await;
    let err = r.unwrap_err();
    assert!(matches!(err, ResolveError::InvalidResponse { .. }), "{err}");
    assert!(err.to_string().contains("redirect"), "{err}");
    assert!(took < Duration::from_secs(3));
}

#[tokio::test]
async fn connection_dropped_mid_body_is_an_error() {
    let reg = fake_registry(Arc::new(|_, line| {
        if is_head(line) {
            http("200 OK", &[], b"", true)
        } else {
            let mut bytes = b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 5000\r\n\r\n".to_vec();
            bytes.extend_from_slice(&MANIFEST.as_bytes()[..40]);
            Reply::Raw(bytes)
        }
    }))
    .await;
    let (r, _) = resolve(&reg, 2.0).await;
    let err = r.unwrap_err();
    assert!(
        matches!(
            err,
            ResolveError::InvalidResponse { .. } | ResolveError::Unreachable { .. }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn refused_connection_is_unreachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let reg = FakeRegistry {
        addr,
        manifest_requests: Arc::default(),
    };
    let (r, _) = resolve(&reg, 2.0).await;
    let err = r.unwrap_err();
    assert!(matches!(err, ResolveError::Unreachable { .. }), "{err}");
}
