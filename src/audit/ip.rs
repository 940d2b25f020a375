//! Client address minimization. The raw address never leaves this module in any output: it is
//! truncated to a network prefix, or replaced by a keyed hash whose key lives only in memory and
//! changes every day (UTC).

use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// How client addresses are minimized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case", deny_unknown_fields)]
pub enum IpMode {
    /// Keep only the network prefix: `203.0.113.0/24`.
    Prefix {
        #[serde(default = "default_v4")]
        ipv4_prefix: u8,
        #[serde(default = "default_v6")]
        ipv6_prefix: u8,
    },
    /// A keyed HMAC-SHA256 of the address; the key is random, held in memory only and replaced
    /// daily, so the same visitor is linkable within a day and never across days.
    Hmac,
}

fn default_v4() -> u8 {
    24
}
fn default_v6() -> u8 {
    48
}

impl Default for IpMode {
    fn default() -> Self {
        IpMode::Prefix {
            ipv4_prefix: default_v4(),
            ipv6_prefix: default_v6(),
        }
    }
}

impl IpMode {
    /// Checks prefix lengths. A prefix longer than the default would keep more of the address
    /// than Google Analytics' anonymization does, up to the whole address: refused.
    pub fn validate(&self) -> Result<(), String> {
        if let IpMode::Prefix {
            ipv4_prefix,
            ipv6_prefix,
        } = *self
        {
            if ipv4_prefix > default_v4() {
                return Err(format!(
                    "ipv4_prefix must be at most {}, found {ipv4_prefix}",
                    default_v4()
                ));
            }
            if ipv6_prefix > default_v6() {
                return Err(format!(
                    "ipv6_prefix must be at most {}, found {ipv6_prefix}",
                    default_v6()
                ));
            }
        }
        Ok(())
    }
}

/// Minimizes addresses according to an [`IpMode`].
pub struct Minimizer {
    mode: IpMode,
    /// (UTC day number, key) for HMAC mode.
    key: Mutex<(u64, [u8; 32])>,
}

fn utc_day() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400)
}

fn fresh_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    // Without OS randomness, fall back to a key derived from the clock and the address of a
    // stack value: weaker, but never the same across restarts and never written anywhere.
    if getrandom::fill(&mut key).is_err() {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        key[..16].copy_from_slice(&t.to_le_bytes());
        let addr = &key as *const _ as usize as u64;
        key[16..24].copy_from_slice(&addr.to_le_bytes());
    }
    key
}

impl Minimizer {
    pub fn new(mode: IpMode) -> Minimizer {
        Minimizer {
            mode,
            key: Mutex::new((utc_day(), fresh_key())),
        }
    }

    /// The minimized form of an address, as the decision log shows it.
    pub fn minimize(&self, ip: IpAddr) -> String {
        self.minimize_on(ip, utc_day())
    }

    /// As [`Minimizer::minimize`], on a given UTC day (days since the epoch).
    fn minimize_on(&self, ip: IpAddr, today: u64) -> String {
        let ip = canonical(ip);
        match self.mode {
            IpMode::Prefix {
                ipv4_prefix,
                ipv6_prefix,
            } => match ip {
                IpAddr::V4(v4) => {
                    let bits = u32::from(v4) & mask32(ipv4_prefix);
                    format!("{}/{}", Ipv4Addr::from(bits), ipv4_prefix.min(32))
                }
                IpAddr::V6(v6) => {
                    let bits = u128::from(v6) & mask128(ipv6_prefix);
                    format!("{}/{}", Ipv6Addr::from(bits), ipv6_prefix.min(128))
                }
            },
            IpMode::Hmac => {
                let key = {
                    let mut guard = self.key.lock().unwrap_or_else(|e| e.into_inner());
                    if guard.0 != today {
                        *guard = (today, fresh_key());
                    }
                    guard.1
                };
                let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key)
                    .expect("HMAC accepts any key length");
                match ip {
                    IpAddr::V4(v4) => mac.update(&v4.octets()),
                    IpAddr::V6(v6) => mac.update(&v6.octets()),
                }
                let digest = mac.finalize().into_bytes();
                let mut out = String::with_capacity(5 + 32);
                out.push_str("hmac:");
                for b in &digest[..16] {
                    out.push_str(&format!("{b:02x}"));
                }
                out
            }
        }
    }
}

/// IPv6 addresses that carry an IPv4 address are minimized as that IPv4 address: IPv4-mapped
/// (`::ffff:a.b.c.d`), 6to4 (`2002:AABB:CCDD::/48`, where a /48 would keep the whole IPv4
/// address) and the NAT64 well-known prefix (`64:ff9b::a.b.c.d`).
fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    let s = v6.segments();
    if s[0] == 0x2002 {
        return IpAddr::V4(Ipv4Addr::from((u32::from(s[1]) << 16) | u32::from(s[2])));
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return IpAddr::V4(Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7])));
    }
    ip
}

fn mask32(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p if p >= 32 => u32::MAX,
        p => u32::MAX << (32 - p),
    }
}

fn mask128(prefix: u8) -> u128 {
    match prefix {
        0 => 0,
        p if p >= 128 => u128::MAX,
        p => u128::MAX << (128 - p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_prefixes_match_google_analytics_anonymization() {
        let m = Minimizer::new(IpMode::default());
        assert_eq!(
            m.minimize("203.0.113.77".parse().unwrap()),
            "203.0.113.0/24"
        );
        assert_eq!(
            m.minimize("2001:db8:abcd:1234::1".parse().unwrap()),
            "2001:db8:abcd::/48"
        );
        assert_eq!(
            m.minimize("::ffff:198.51.100.9".parse().unwrap()),
            "198.51.100.0/24"
        );
    }

    #[test]
    fn configurable_prefixes() {
        let m = Minimizer::new(IpMode::Prefix {
            ipv4_prefix: 16,
            ipv6_prefix: 32,
        });
        assert_eq!(m.minimize("203.0.113.77".parse().unwrap()), "203.0.0.0/16");
        assert_eq!(
            m.minimize("2001:db8:abcd::1".parse().unwrap()),
            "2001:db8::/32"
        );
        let mode = |v4, v6| IpMode::Prefix {
            ipv4_prefix: v4,
            ipv6_prefix: v6,
        };
        assert!(mode(24, 48).validate().is_ok());
        assert!(mode(0, 0).validate().is_ok());
        assert!(mode(25, 48).validate().is_err());
        assert!(mode(32, 48).validate().is_err());
        assert!(mode(24, 64).validate().is_err());
    }

    #[test]
    fn hmac_key_changes_with_the_day() {
        let m = Minimizer::new(IpMode::Hmac);
        let ip = "203.0.113.77".parse().unwrap();
        let day1 = m.minimize_on(ip, 20_000);
        assert_eq!(day1, m.minimize_on(ip, 20_000));
        let day2 = m.minimize_on(ip, 20_001);
        assert_ne!(day1, day2);
        assert_eq!(day2, m.minimize_on(ip, 20_001));
    }

    #[test]
    fn hmac_is_stable_within_a_process_and_hides_the_address() {
        let m = Minimizer::new(IpMode::Hmac);
        let a = m.minimize("203.0.113.77".parse().unwrap());
        assert_eq!(a, m.minimize("203.0.113.77".parse().unwrap()));
        assert_ne!(a, m.minimize("203.0.113.78".parse().unwrap()));
        assert!(a.starts_with("hmac:") && a.len() == 37, "{a}");
        assert!(!a.contains("203.0"));
        // Another process (another key) gives another value.
        assert_ne!(
            a,
            Minimizer::new(IpMode::Hmac).minimize("203.0.113.77".parse().unwrap())
        );
    }
}
