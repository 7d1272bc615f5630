//! A misbehaving registry the tests control: plain HTTP on loopback, answering each
//! manifest request with scripted raw bytes (or never), and `/v2/` pings with 200.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A digest no manifest has.
pub const DIGEST_A: &str =
    "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
/// The media type of [`MANIFEST`].
pub const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// A valid, empty OCI image manifest.
pub const MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0},"layers":[]}"#;

/// What to answer to the n-th manifest request, given its request line.
pub type Script = Arc<dyn Fn(usize, &str) -> Reply + Send + Sync>;

/// One scripted answer.
pub enum Reply {
    /// Write these bytes and close.
    Raw(Vec<u8>),
    /// Accept and never answer.
    Silence,
}

/// An HTTP/1.1 answer that closes the connection; `head` leaves the body out.
pub fn http(status: &str, headers: &[(&str, String)], body: &[u8], head: bool) -> Reply {
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

/// True for a HEAD request line.
pub fn is_head(line: &str) -> bool {
    line.starts_with("HEAD")
}

/// A running fake registry.
pub struct FakeRegistry {
    /// `127.0.0.1:<port>`.
    pub addr: String,
    /// Manifest requests received so far.
    pub manifest_requests: Arc<AtomicUsize>,
    accepting: Option<tokio::task::JoinHandle<()>>,
}

impl FakeRegistry {
    /// Starts a registry answering manifest requests with `script`.
    pub async fn start(script: Script) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("bound address").to_string();
        let count = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&count);
        let accepting = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(conn, Arc::clone(&script), Arc::clone(&counter)));
            }
        });
        Self {
            addr,
            manifest_requests: count,
            accepting: Some(accepting),
        }
    }

    /// Stops listening, as a registry that went down: its address refuses connections
    /// once this returns.
    pub async fn stop(&mut self) {
        if let Some(accepting) = self.accepting.take() {
            accepting.abort();
            // The listener is closed when the aborted task has been dropped.
            let _ = accepting.await;
        }
    }

    /// An address where nothing listens.
    pub fn refusing() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("bound address").to_string();
        drop(listener);
        Self {
            addr,
            manifest_requests: Arc::default(),
            accepting: None,
        }
    }

    /// Manifest requests received so far.
    pub fn requests(&self) -> usize {
        self.manifest_requests.load(Ordering::SeqCst)
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
        // A TLS handshake record: answer as a plain HTTP server does, so a client that
        // tries TLS first on loopback falls back to HTTP.
        if buf.first() == Some(&0x16) {
            let _ = conn
                .write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
                .await;
            let _ = conn.shutdown().await;
            return;
        }
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let line = head.lines().next().unwrap_or_default().to_owned();
    let reply = if line.contains("/manifests/") {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        script(n, &line)
    } else {
        http("200 OK", &[], b"{}", is_head(&line))
    };
    match reply {
        Reply::Raw(bytes) => {
            let _ = conn.write_all(&bytes).await;
            let _ = conn.shutdown().await;
        }
        Reply::Silence => tokio::time::sleep(Duration::from_secs(60)).await,
    }
}

/// Registry faults as scripts, shared by the resolver's and the webhook's fault tests.
pub mod faults {
    use std::sync::Arc;

    use super::{DIGEST_A, MANIFEST, MANIFEST_TYPE, Reply, Script, http, is_head};

    /// Accepts every connection and never answers.
    pub fn silence() -> Script {
        Arc::new(|_, _| Reply::Silence)
    }

    /// Answers every manifest request with `status` (e.g. `503 Service Unavailable`).
    pub fn status_forever(status: &'static str) -> Script {
        Arc::new(move |_, line| {
            http(
                status,
                &[],
                br#"{"errors":[{"code":"UNAVAILABLE","message":"backend down"}]}"#,
                is_head(line),
            )
        })
    }

    /// 429 with `Retry-After: seconds` on every attempt.
    pub fn rate_limited(seconds: &'static str) -> Script {
        Arc::new(move |_, line| {
            http(
                "429 Too Many Requests",
                &[("Retry-After", seconds.into())],
                b"",
                is_head(line),
            )
        })
    }

    /// 401 with a Basic challenge on every attempt.
    pub fn unauthorized() -> Script {
        Arc::new(|_, line| {
            http(
                "401 Unauthorized",
                &[("WWW-Authenticate", r#"Basic realm="fake""#.into())],
                b"",
                is_head(line),
            )
        })
    }

    /// 200 with `value` as the `Docker-Content-Digest` header.
    pub fn malformed_digest(value: &'static str) -> Script {
        Arc::new(move |_, _| {
            http(
                "200 OK",
                &[("Docker-Content-Digest", value.into())],
                b"",
                true,
            )
        })
    }

    /// No digest on HEAD; the GET's digest header names other content than its body.
    pub fn contradicting_digest() -> Script {
        Arc::new(|_, line| {
            if is_head(line) {
                http(
                    "200 OK",
                    &[("Content-Type", MANIFEST_TYPE.into())],
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
        })
    }

    /// A 5 MiB manifest, without a digest header.
    pub fn oversized_manifest() -> Script {
        Arc::new(|_, line| {
            http(
                "200 OK",
                &[("Content-Type", MANIFEST_TYPE.into())],
                &vec![b' '; 5 * 1024 * 1024],
                is_head(line),
            )
        })
    }

    /// Redirects every manifest request to itself.
    pub fn redirect_loop() -> Script {
        Arc::new(|_, line| {
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
            http(
                "307 Temporary Redirect",
                &[("Location", path)],
                b"",
                is_head(line),
            )
        })
    }

    /// HEAD without a digest; the GET promises 5000 bytes and closes after 40.
    pub fn dropped_mid_body() -> Script {
        Arc::new(|_, line| {
            if is_head(line) {
                http("200 OK", &[], b"", true)
            } else {
                let mut bytes = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: {MANIFEST_TYPE}\r\nContent-Length: 5000\r\n\r\n"
                )
                .into_bytes();
                bytes.extend_from_slice(&MANIFEST.as_bytes()[..40]);
                Reply::Raw(bytes)
            }
        })
    }
}
