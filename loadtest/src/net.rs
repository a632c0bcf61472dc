//! Where connections come from: source-address spreading over 127.0.0.0/8 and the open-files
//! limit (raised to the hard limit; a clear error when one process cannot hold the run).

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

/// The source address of connection `i`, or `None` to let the kernel choose (targets off
/// IPv4 loopback).
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

/// Checks that this process can open `conns` connections (raising the soft open-files limit
/// to the hard one first); the error says how many processes the run needs and how to ask.
pub fn check_fds(conns: u64) -> anyhow::Result<()> {
    let (soft, hard) = raise_nofile();
    if conns > conns_per_process(soft) {
        let need = procs_needed(conns, soft);
        bail!(
            "{conns} connections need {need} processes at the open-files limit of {soft} \
             (hard {hard}; {} connections per process): start {need} herald-loadtest processes \
             in parallel with {} connections each (same flags otherwise), or raise the hard \
             limit (ulimit -Hn, as root) and retry",
            conns_per_process(soft),
            conns.div_ceil(need)
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
