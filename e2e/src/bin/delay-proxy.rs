//! The bench's delaying loopback proxy on its own, for `hack/bench-pin.sh`: a registry on
//! loopback made to answer like one `2 × ONE_WAY_MS` away.
//!
//! Usage: `delay-proxy UPSTREAM ONE_WAY_MS` (UPSTREAM a loopback `ip:port`); prints the
//! address it listens on, then relays until it is killed.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use tagpin_e2e::delay_proxy::DelayProxy;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let usage = "usage: delay-proxy UPSTREAM ONE_WAY_MS";
    let mut args = std::env::args().skip(1);
    let upstream: SocketAddr = args
        .next()
        .context(usage)?
        .parse()
        .context("UPSTREAM is ip:port")?;
    let one_way: u64 = args
        .next()
        .context(usage)?
        .parse()
        .context("ONE_WAY_MS is a number of milliseconds")?;
    let proxy = DelayProxy::start(upstream, Duration::from_millis(one_way)).await?;
    println!("{}", proxy.addr);
    std::io::stdout().flush()?;
    std::future::pending::<()>().await;
    Ok(())
}
