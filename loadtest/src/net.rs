//! Where connections come from: source-address spreading over 127.0.0.0/8, the open-files
//! limit (raised to the hard limit; it sets how many connections one process holds) and the
//! ephemeral port range (a clear error when the run would exhaust it).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::{Context, bail};

/// Loopback source addresses connections are spread over, round robin (127.0.0.2, .3, …).
/// Linux picks a connection's ephemeral port by scanning for one not yet used towards the same
/// destination from the same source address: from a single address, a storm of 15,000 connects
/// spent 29% of the generator's CPU in that scan (`__inet_hash_connect`). Sixteen addresses
/// shorten every scan sixteenfold and allow 16 × ~28k connections to one server port.
pub const SOURCES: usize = 16;

/// File descriptors a process keeps for itself (stdio, runtime, publisher connections, /proc).
pub const FD_RESERVE: u64 = 200;

/// Turns on a boolean socket option (`setsockopt` with an int 1); a failure only loses the
/// option's effect, so it is ignored.
pub fn enable_socket_option(socket: &impl std::os::fd::AsRawFd, level: i32, name: i32) {
    let on: libc::c_int = 1;
    // SAFETY: setsockopt on a valid socket with a pointer to a local int and its size.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// The source address of connection `i`, or `None` to let the kernel choose (targets off
/// IPv4 loopback).
pub fn source_for(target: SocketAddr, i: usize) -> Option<IpAddr> {
    if !target.ip().is_loopback() || !target.is_ipv4() {
        return None;
    }
    let n = 2 + (i % SOURCES) as u8;
    Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)))
}

/// Refuses any target outside 127.0.0.0/8 (and ::1): a load test never leaves this machine.
pub fn check_loopback(addr: SocketAddr) -> anyhow::Result<()> {
    if !addr.ip().is_loopback() {
        bail!("{addr} is not a loopback address: herald-loadtest only sends to 127.0.0.0/8");
    }
    Ok(())
}

/// Resolves `http://host:port[/…]` (or `ws://`) to a socket address on loopback.
pub fn resolve(url: &str) -> anyhow::Result<SocketAddr> {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let hostport = rest.split('/').next().unwrap_or(rest);
    let hostport = if hostport.starts_with("localhost") {
        hostport.replacen("localhost", "127.0.0.1", 1)
    } else {
        hostport.to_owned()
    };
    let addr: SocketAddr = hostport
        .parse()
        .with_context(|| format!("{url}: expected http://IP:PORT (a 127.x.x.x address)"))?;
    check_loopback(addr)?;
    Ok(addr)
}

/// (soft, hard) RLIMIT_NOFILE after raising the soft limit to the hard one.
pub fn raise_nofile() -> (u64, u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return (1024, 1024);
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    (lim.rlim_cur, lim.rlim_max)
}

/// Connections one process can hold under an open-files limit.
pub fn conns_per_process(nofile: u64) -> u64 {
    nofile.saturating_sub(FD_RESERVE)
}

/// Processes needed for `conns` connections under an open-files limit.
pub fn procs_needed(conns: u64, nofile: u64) -> u64 {
    let per = conns_per_process(nofile).max(1);
    conns.div_ceil(per).max(1)
}

/// The kernel's ephemeral port range (`net.ipv4.ip_local_port_range`), inclusive.
pub fn ephemeral_ports() -> (u64, u64) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(str::parse::<u64>);
            Some((it.next()?.ok()?, it.next()?.ok()?))
        })
        .unwrap_or((32_768, 60_999))
}

/// Connections to one server address the source addresses can carry: one ephemeral port per
/// (source, destination) pair, [`SOURCES`] sources.
pub fn port_capacity((lo, hi): (u64, u64)) -> u64 {
    SOURCES as u64 * (hi + 1).saturating_sub(lo)
}

/// Fails, saying why, when `conns` connections to one node would run out of source ports.
pub fn check_ports(conns: u64) -> anyhow::Result<()> {
    let range = ephemeral_ports();
    let cap = port_capacity(range);
    if conns > cap {
        bail!(
            "{conns} connections to one node need more source ports than {SOURCES} source \
             addresses × the ephemeral range {}–{} hold ({cap}): widen \
             net.ipv4.ip_local_port_range or spread the subscribers over more --url nodes",
            range.0,
            range.1
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_arithmetic() {
        assert_eq!(conns_per_process(20_000), 19_800);
        assert_eq!(procs_needed(15_000, 20_000), 1);
        assert_eq!(procs_needed(19_800, 20_000), 1);
        assert_eq!(procs_needed(19_801, 20_000), 2);
        assert_eq!(procs_needed(100_000, 20_000), 6);
        assert_eq!(procs_needed(0, 20_000), 1);
        assert_eq!(procs_needed(10, 100), 10); // reserve eats the limit: one per process
    }

    #[test]
    fn port_arithmetic() {
        assert_eq!(port_capacity((32_768, 60_999)), 16 * 28_232);
        assert_eq!(port_capacity((10, 9)), 0);
        let (lo, hi) = ephemeral_ports();
        assert!(lo <= hi, "{lo} {hi}");
        assert!(check_ports(1_000).is_ok());
        let err = check_ports(port_capacity((lo, hi)) + 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("ip_local_port_range"), "{err}");
    }

    #[test]
    fn source_spreading() {
        let t: SocketAddr = "127.0.0.1:8000".parse().unwrap();
        assert_eq!(source_for(t, 0), Some("127.0.0.2".parse().unwrap()));
        assert_eq!(source_for(t, 5), Some("127.0.0.7".parse().unwrap()));
        assert_eq!(source_for(t, SOURCES), Some("127.0.0.2".parse().unwrap()));
        let v6: SocketAddr = "[::1]:8000".parse().unwrap();
        assert_eq!(source_for(v6, 5), None);
    }

    #[test]
    fn urls() {
        assert_eq!(
            resolve("http://127.0.0.1:8000").unwrap(),
            "127.0.0.1:8000".parse().unwrap()
        );
        assert_eq!(
            resolve("http://localhost:9/x").unwrap(),
            "127.0.0.1:9".parse().unwrap()
        );
        assert!(resolve("http://10.0.0.1:8000").is_err());
    }
}
