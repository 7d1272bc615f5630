//! A loopback TCP proxy that makes a local registry behave like a distant one: every byte
//! takes a fixed time to cross it in each direction, and a new connection waits one round
//! trip before its first byte, as TCP's handshake would. Bytes are only delayed, never
//! throttled, and TLS passes through untouched.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A running proxy; it stops when dropped.
pub struct DelayProxy {
    /// `127.0.0.1:<port>` to connect to instead of the upstream.
    pub addr: SocketAddr,
    connections: Arc<AtomicU64>,
    /// The one-way delay in nanoseconds, read as each connection opens and each chunk passes.
    one_way: Arc<AtomicU64>,
    accepting: tokio::task::JoinHandle<()>,
}

impl DelayProxy {
    /// Listens on a free loopback port and relays every connection to `upstream` (a
    /// loopback address), delaying each direction by `one_way`.
    pub async fn start(upstream: SocketAddr, one_way: Duration) -> std::io::Result<Self> {
        if !upstream.ip().is_loopback() {
            return Err(std::io::Error::other(format!(
                "the delay proxy only relays to loopback, not {upstream}"
            )));
        }
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let connections = Arc::new(AtomicU64::new(0));
        let delay = Arc::new(AtomicU64::new(nanos(one_way)));
        let (counted, delays) = (connections.clone(), delay.clone());
        let accepting = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(relay(client, upstream, delays.clone()));
            }
        });
        Ok(Self {
            addr,
            connections,
            one_way: delay,
            accepting,
        })
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Changes the one-way delay of every byte from now on.
    pub fn set_delay(&self, one_way: Duration) {
        self.one_way.store(nanos(one_way), Ordering::Relaxed);
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn delay_of(one_way: &AtomicU64) -> Duration {
    Duration::from_nanos(one_way.load(Ordering::Relaxed))
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

async fn relay(client: TcpStream, upstream: SocketAddr, one_way: Arc<AtomicU64>) {
    // Nothing crosses before the emulated SYN and SYN-ACK have.
    let open = Instant::now() + 2 * delay_of(&one_way);
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::join!(
        pipe(client_read, server_write, one_way.clone(), open),
        pipe(server_read, client_write, one_way, open),
    );
}

/// Copies `from` to `to`, each chunk written one delay after it was read (and not before
/// `open`), in order.
async fn pipe(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    delay: Arc<AtomicU64>,
    open: Instant,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reading = async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = from.read(&mut buf).await {
            if n == 0 {
                break;
            }
            let due = Instant::now().max(open) + delay_of(&delay);
            if tx.send((due, buf[..n].to_vec())).is_err() {
                break;
            }
        }
    };
    let writing = async move {
        while let Some((due, bytes)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reading, writing);
}
