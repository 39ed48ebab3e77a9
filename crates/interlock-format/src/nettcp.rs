//! The kernel's TCP socket tables, `/proc/net/tcp` and `/proc/net/tcp6`
//! (written by `tcp4_seq_show` / `tcp6_seq_show` in the kernel's
//! `net/ipv4/tcp_ipv4.c` and `net/ipv6/tcp_ipv6.c`).
//!
//! One header line, then one line per socket:
//! `  sl  local_address rem_address   st tx_queue:rx_queue tr:tm->when retrnsmt   uid  timeout inode …`.
//! An address is the raw `__be32` words of the address printed with `%08X`
//! as the host's `u32`s (so on a little-endian host each group of 8 hex
//! digits is the 4 address bytes reversed); the port is printed in host
//! order with `%04X`. The state is the kernel's `TCP_*` number in hex
//! (`0A` = `TCP_LISTEN`). Only little-endian hosts are decoded (x86_64,
//! aarch64), where each word's bytes are reversed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::ParseError;

/// `TCP_LISTEN` (`include/net/tcp_states.h`).
pub const TCP_LISTEN: u8 = 0x0A;

/// One socket line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpSocket {
    /// Local address.
    pub local: IpAddr,
    /// Local port.
    pub local_port: u16,
    /// Remote address.
    pub remote: IpAddr,
    /// Remote port.
    pub remote_port: u16,
    /// The kernel's state number (`TCP_LISTEN` = 0x0A).
    pub state: u8,
    /// The owner's uid.
    pub uid: u32,
    /// The socket's inode number.
    pub inode: u64,
}

impl TcpSocket {
    /// Whether it is a listening socket.
    pub fn listens(&self) -> bool {
        self.state == TCP_LISTEN
    }
}

/// Parse a whole `/proc/net/tcp` or `/proc/net/tcp6` text (the first line
/// is the header, and skipped; a malformed socket line is an error naming the line).
pub fn parse_net_tcp(text: &str) -> Result<Vec<TcpSocket>, ParseError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let t = raw.trim();
        if i == 0 || t.is_empty() {
            continue;
        }
        out.push(parse_line(raw, line)?);
    }
    Ok(out)
}

fn parse_line(raw: &str, line: usize) -> Result<TcpSocket, ParseError> {
    let mut f = raw.split_whitespace();
    let bad = |field: &'static str, expected: &str, found: &str| {
        ParseError::quoting(Some(line), field, expected, found.as_bytes())
    };
    let slot = f.next().unwrap_or("");
    if !slot.ends_with(':') || slot[..slot.len() - 1].parse::<u64>().is_err() {
        return Err(bad("slot", "a number and a colon (\"0:\")", raw));
    }
    let (local, local_port) = endpoint(f.next().unwrap_or(""))
        .ok_or_else(|| bad("local address", "HEXADDR:HEXPORT", raw))?;
    let (remote, remote_port) = endpoint(f.next().unwrap_or(""))
        .ok_or_else(|| bad("remote address", "HEXADDR:HEXPORT", raw))?;
    let st = f.next().unwrap_or("");
    let state = (st.len() == 2)
        .then(|| u8::from_str_radix(st, 16).ok())
        .flatten()
        .ok_or_else(|| bad("state", "two hex digits", st))?;
    // tx_queue:rx_queue, tr:tm->when, retrnsmt
    for _ in 0..3 {
        f.next()
            .ok_or_else(|| bad("queues and timers", "three fields", raw))?;
    }
    let uid_s = f.next().unwrap_or("");
    let uid = uid_s
        .parse()
        .map_err(|_| bad("uid", "a decimal uid", uid_s))?;
    f.next().ok_or_else(|| bad("timeout", "a number", raw))?;
    let inode_s = f.next().unwrap_or("");
    let inode = inode_s
        .parse()
        .map_err(|_| bad("inode", "a decimal inode number", inode_s))?;
    Ok(TcpSocket {
        local,
        local_port,
        remote,
        remote_port,
        state,
        uid,
        inode,
    })
}

/// `0100007F:1538` → 127.0.0.1, 5432; 32 hex digits for IPv6.
fn endpoint(s: &str) -> Option<(IpAddr, u16)> {
    let (addr, port) = s.split_once(':')?;
    if port.len() != 4 || !port.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let port = u16::from_str_radix(port, 16).ok()?;
    if !addr.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let words = |n: usize| -> Option<Vec<u8>> {
        let mut bytes = Vec::with_capacity(n * 4);
        for w in 0..n {
            let word = u32::from_str_radix(&addr[w * 8..w * 8 + 8], 16).ok()?;
            bytes.extend_from_slice(&word.to_le_bytes());
        }
        Some(bytes)
    };
    let ip = match addr.len() {
        8 => {
            let b = words(1)?;
            IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
        }
        32 => {
            let b: [u8; 16] = words(4)?.try_into().ok()?;
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some((ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000   108        0 48262 1 0000000000000000 100 0 0 10 0
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 20134 1 0000000000000000 100 0 0 10 0
   2: 0100007F:1538 0100007F:D3C2 06 00000000:00000000 03:00000F3A 00000000     0        0 0 3 0000000000000000
";

    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1538 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000   108        0 48263 1 0000000000000000 100 0 0 10 0
   1: 0000000000000000FFFF00000100007F:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn ipv4_lines() {
        let v = parse_net_tcp(TCP).unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].local, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(v[0].local_port, 5432);
        assert!(v[0].listens());
        assert_eq!(v[0].uid, 108);
        assert_eq!(v[0].inode, 48262);
        assert_eq!(v[1].local, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(v[1].local_port, 22);
        // TIME_WAIT (06) is not a listener.
        assert!(!v[2].listens());
        assert_eq!(v[2].remote_port, 0xD3C2);
    }

    #[test]
    fn ipv6_lines() {
        let v = parse_net_tcp(TCP6).unwrap();
        assert_eq!(v[0].local, IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert_eq!(v[0].local_port, 5432);
        assert_eq!(
            v[1].local,
            IpAddr::V6("::ffff:127.0.0.1".parse::<Ipv6Addr>().unwrap())
        );
    }

    #[test]
    fn malformed_lines_name_the_line() {
        let e = parse_net_tcp("header\n   0: 0100007F:15 x\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(parse_net_tcp("h\n 0: 0100007F:1538 00000000:0000 ZZ a b c 0 0 1\n").is_err());
        assert!(parse_net_tcp("h\n 0: 0100007:1538 00000000:0000 0A a b c 0 0 1\n").is_err());
        assert_eq!(parse_net_tcp("").unwrap(), vec![]);
    }
}
