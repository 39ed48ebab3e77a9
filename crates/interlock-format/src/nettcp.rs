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

/// `NETLINK_SOCK_DIAG`'s message types and flags
/// (`include/uapi/linux/netlink.h`, `sock_diag.h`, `inet_diag.h`).
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
/// `struct nlmsghdr`.
const NLMSG_HEADER: usize = 16;
/// `struct inet_diag_req_v2`.
const INET_DIAG_REQ: usize = 56;
/// `struct inet_diag_msg`.
const INET_DIAG_MSG: usize = 72;
const IPPROTO_TCP: u8 = 6;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// The request of a `SOCK_DIAG_BY_FAMILY` dump of the listening TCP
/// sockets of one family (IPv6 if `ipv6`), numbered `seq`: a `nlmsghdr`,
/// then an `inet_diag_req_v2` asking for state `TCP_LISTEN` only, with an
/// all-zero `inet_diag_sockid` (any address and port). What `ss -lt`
/// sends; the kernel then walks its listening table alone
/// (`inet_diag_dump_icsk` in `net/ipv4/inet_diag.c`).
pub fn inet_diag_listen_request(seq: u32, ipv6: bool) -> Vec<u8> {
    let len = NLMSG_HEADER + INET_DIAG_REQ;
    let mut req = Vec::with_capacity(len);
    req.extend_from_slice(&(len as u32).to_ne_bytes());
    req.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    req.extend_from_slice(&seq.to_ne_bytes());
    req.extend_from_slice(&0u32.to_ne_bytes());
    let family = if ipv6 { AF_INET6 } else { AF_INET };
    req.extend_from_slice(&[family, IPPROTO_TCP, 0, 0]);
    req.extend_from_slice(&(1u32 << TCP_LISTEN).to_ne_bytes());
    req.resize(len, 0);
    req
}

/// What one datagram of a `SOCK_DIAG_BY_FAMILY` dump says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InetDiagReply {
    /// The sockets it lists (messages of another `seq` are skipped).
    pub sockets: Vec<TcpSocket>,
    /// It ends the dump (`NLMSG_DONE`).
    pub done: bool,
}

/// Parse one datagram of the dump requested by
/// [`inet_diag_listen_request`]`(seq, ipv6)`: a run of `nlmsghdr`-framed
/// messages, each 4-byte aligned. An `NLMSG_ERROR`, a truncated message or
/// a length that does not fit is an error: the caller then reads
/// `/proc/net/tcp*` instead.
pub fn parse_inet_diag_reply(
    data: &[u8],
    seq: u32,
    ipv6: bool,
) -> Result<InetDiagReply, ParseError> {
    const WHOLE: &str = "sock_diag reply";
    let bad = |what: &str| ParseError::quoting(None, WHOLE, what, data.get(..64).unwrap_or(data));
    let u16_at = |b: &[u8], i: usize| b.get(i..i + 2).map(|x| u16::from_ne_bytes([x[0], x[1]]));
    let u32_at = |b: &[u8], i: usize| {
        b.get(i..i + 4)
            .map(|x| u32::from_ne_bytes([x[0], x[1], x[2], x[3]]))
    };
    let mut out = InetDiagReply::default();
    let mut rest = data;
    if rest.is_empty() {
        return Err(bad("a netlink message"));
    }
    while !rest.is_empty() {
        let (Some(len), Some(kind), Some(msg_seq)) =
            (u32_at(rest, 0), u16_at(rest, 4), u32_at(rest, 8))
        else {
            return Err(bad("a whole nlmsghdr"));
        };
        let len = len as usize;
        if len < NLMSG_HEADER || len > rest.len() {
            return Err(bad("a message length within the datagram"));
        }
        if msg_seq == seq {
            match kind {
                NLMSG_DONE => {
                    out.done = true;
                    return Ok(out);
                }
                NLMSG_ERROR => return Err(bad("no NLMSG_ERROR")),
                SOCK_DIAG_BY_FAMILY => {
                    let m = &rest[NLMSG_HEADER..len];
                    if m.len() < INET_DIAG_MSG {
                        return Err(bad("a whole inet_diag_msg"));
                    }
                    // struct inet_diag_msg: family, state, timer, retrans,
                    // then inet_diag_sockid (sport, dport big-endian, src
                    // and dst addresses of 16 bytes), ..., uid at 64,
                    // inode at 68.
                    let addr = |at: usize| -> IpAddr {
                        if ipv6 {
                            let mut b = [0u8; 16];
                            b.copy_from_slice(&m[at..at + 16]);
                            IpAddr::V6(Ipv6Addr::from(b))
                        } else {
                            IpAddr::V4(Ipv4Addr::new(m[at], m[at + 1], m[at + 2], m[at + 3]))
                        }
                    };
                    let port = |at: usize| u16::from_be_bytes([m[at], m[at + 1]]);
                    out.sockets.push(TcpSocket {
                        local: addr(8),
                        local_port: port(4),
                        remote: addr(24),
                        remote_port: port(6),
                        state: m[1],
                        uid: u32_at(m, 64).unwrap_or_default(),
                        inode: u64::from(u32_at(m, 68).unwrap_or_default()),
                    });
                }
                _ => {}
            }
        }
        rest = rest
            .get(len.next_multiple_of(4).min(rest.len())..)
            .unwrap_or(&[]);
    }
    Ok(out)
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

    /// A datagram as the kernel sends it: one inet_diag_msg per socket,
    /// then NLMSG_DONE.
    fn diag_datagram(seq: u32, sockets: &[(u8, [u8; 4], u16)]) -> Vec<u8> {
        let mut d = Vec::new();
        for (state, addr, port) in sockets {
            let mut m = vec![0u8; super::INET_DIAG_MSG];
            m[0] = super::AF_INET;
            m[1] = *state;
            m[4..6].copy_from_slice(&port.to_be_bytes());
            m[8..12].copy_from_slice(addr);
            m[64..68].copy_from_slice(&101u32.to_ne_bytes());
            m[68..72].copy_from_slice(&777u32.to_ne_bytes());
            d.extend_from_slice(&((16 + m.len()) as u32).to_ne_bytes());
            d.extend_from_slice(&super::SOCK_DIAG_BY_FAMILY.to_ne_bytes());
            d.extend_from_slice(&0u16.to_ne_bytes());
            d.extend_from_slice(&seq.to_ne_bytes());
            d.extend_from_slice(&0u32.to_ne_bytes());
            d.extend_from_slice(&m);
        }
        d.extend_from_slice(&20u32.to_ne_bytes());
        d.extend_from_slice(&super::NLMSG_DONE.to_ne_bytes());
        d.extend_from_slice(&0u16.to_ne_bytes());
        d.extend_from_slice(&seq.to_ne_bytes());
        d.extend_from_slice(&[0u8; 8]);
        d
    }

    #[test]
    fn sock_diag_replies() {
        use super::{inet_diag_listen_request, parse_inet_diag_reply};
        let req = inet_diag_listen_request(7, true);
        assert_eq!(req.len(), 72);
        assert_eq!(&req[0..4], &72u32.to_ne_bytes());
        assert_eq!(req[16], 10); // AF_INET6
        assert_eq!(&req[20..24], &(1u32 << 10).to_ne_bytes());
        let d = diag_datagram(7, &[(10, [127, 0, 0, 1], 5432), (10, [0, 0, 0, 0], 22)]);
        let r = parse_inet_diag_reply(&d, 7, false).unwrap();
        assert!(r.done);
        assert_eq!(r.sockets.len(), 2);
        assert!(r
            .sockets
            .iter()
            .all(|s| s.listens() && s.uid == 101 && s.inode == 777));
        assert_eq!(r.sockets[0].local, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(r.sockets[0].local_port, 5432);
        // Another request's messages are skipped; it is not done either.
        let other = parse_inet_diag_reply(&d, 8, false).unwrap();
        assert!(other.sockets.is_empty() && !other.done);
        // Truncated anywhere: an error, never a panic or a short list.
        for cut in [1, 15, 17, 60, d.len() - 1] {
            assert!(
                parse_inet_diag_reply(&d[..cut], 7, false).is_err(),
                "cut {cut}"
            );
        }
        assert!(parse_inet_diag_reply(&[], 7, false).is_err());
    }
}
