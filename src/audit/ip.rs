//! Client address minimization. The raw address never leaves this module in any output: it is
//! truncated to a network prefix, or replaced by a keyed hash whose key changes every day (UTC).
//! The daily key is random and held in memory only, or, with a key file shared by several
//! replicas, derived from that file's secret and the date, so that every replica gives one
//! address the same pseudonym on the same day.

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How client addresses are minimized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpMode {
    /// Keep only the network prefix: `203.0.113.0/24`. A `key_file` keys only the banner's
    /// forms here.
    Prefix {
        ipv4_prefix: u8,
        ipv6_prefix: u8,
        key_file: Option<PathBuf>,
    },
    /// A keyed HMAC-SHA256 of the address with a key replaced daily, so the same visitor is
    /// linkable within a day. Without `key_file` the key is random and held in memory only
    /// (never linkable across days or restarts); with it, it is derived from the file's secret
    /// and the date, and whoever holds the secret can recompute any day's key.
    Hmac { key_file: Option<PathBuf> },
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
            key_file: None,
        }
    }
}

/// `client_ip.mode`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum ModeName {
    #[default]
    Prefix,
    Hmac,
}

/// The `client_ip` section exactly as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IpModeFields {
    #[serde(default)]
    mode: ModeName,
    ipv4_prefix: Option<u8>,
    ipv6_prefix: Option<u8>,
    key_file: Option<PathBuf>,
}

impl TryFrom<IpModeFields> for IpMode {
    type Error = String;

    /// Refuses a setting of the other mode, and prefixes longer than the defaults: those would
    /// keep more of the address than Google Analytics' anonymization does, up to all of it.
    fn try_from(f: IpModeFields) -> Result<IpMode, String> {
        if f.key_file
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            return Err("key_file is empty".into());
        }
        match f.mode {
            ModeName::Prefix => {
                let ipv4_prefix = f.ipv4_prefix.unwrap_or(default_v4());
                let ipv6_prefix = f.ipv6_prefix.unwrap_or(default_v6());
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
                Ok(IpMode::Prefix {
                    ipv4_prefix,
                    ipv6_prefix,
                    key_file: f.key_file,
                })
            }
            ModeName::Hmac => {
                if f.ipv4_prefix.is_some() || f.ipv6_prefix.is_some() {
                    return Err("`ipv4_prefix` and `ipv6_prefix` are for `mode: prefix`".into());
                }
                Ok(IpMode::Hmac {
                    key_file: f.key_file,
                })
            }
        }
    }
}

impl<'de> Deserialize<'de> for IpMode {
    /// Checked at the section, so that an error (an unknown key, a setting of the other mode)
    /// carries its line and column.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::located::checked_section::<D, IpModeFields, IpMode>(
            d,
            "the client_ip settings (mode, ipv4_prefix, ipv6_prefix, key_file)",
        )
    }
}

impl IpMode {
    /// The key file, if one is given: it keys the pseudonyms in keyed-hash mode and the
    /// banner's forms in either mode.
    pub fn key_file(&self) -> Option<&Path> {
        match self {
            IpMode::Hmac { key_file } | IpMode::Prefix { key_file, .. } => key_file.as_deref(),
        }
    }

    /// A mutable reference to the key file's path, to resolve it against the config's directory.
    pub fn key_file_mut(&mut self) -> Option<&mut PathBuf> {
        match self {
            IpMode::Hmac { key_file } | IpMode::Prefix { key_file, .. } => key_file.as_mut(),
        }
    }
}

/// The shortest secret a key file may hold: 256 bits.
pub const MIN_SECRET: usize = 32;

/// The secret several replicas share, read from a key file (a mounted Kubernetes Secret, say).
/// Keys are derived from it with HKDF-SHA256: the client address's daily key, and the banner's
/// form key. It is never printed: `Debug` shows only its length.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret(<{} bytes>)", self.0.len())
    }
}

impl Secret {
    /// Reads a key file: its bytes, less one trailing line end (`echo` and editors add one), at
    /// least [`MIN_SECRET`] of them. Any bytes will do: random bytes, or their base64 or hex.
    pub fn read(path: &Path) -> Result<Secret, String> {
        let bytes = std::fs::read(path)
            .map_err(|e| format!("client_ip.key_file {}: {e}", path.display()))?;
        Secret::new(bytes).map_err(|e| format!("client_ip.key_file {}: {e}", path.display()))
    }

    fn new(mut bytes: Vec<u8>) -> Result<Secret, String> {
        if bytes.ends_with(b"\n") {
            bytes.pop();
            if bytes.ends_with(b"\r") {
                bytes.pop();
            }
        }
        if bytes.len() < MIN_SECRET {
            return Err(format!(
                "holds {} bytes; a secret needs at least {MIN_SECRET} \
                 (e.g. `head -c 32 /dev/urandom | base64 > FILE`)",
                bytes.len()
            ));
        }
        Ok(Secret(bytes))
    }

    /// The key for `purpose` (HKDF-SHA256 expand, with this project's salt).
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let hk = Hkdf::<Sha256>::new(Some(b"consent-proxy v1"), &self.0);
        let mut key = [0u8; 32];
        hk.expand(purpose.as_bytes(), &mut key)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        key
    }

    /// The client address's key on a UTC day (days since the epoch): derived with the date,
    /// `client-ip 2026-11-30`, as its purpose.
    pub fn daily_key(&self, day: u64) -> [u8; 32] {
        self.derive(&format!("client-ip {}", utc_date(day)))
    }
}

/// A UTC day (days since the epoch) as `YYYY-MM-DD`.
fn utc_date(day: u64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(day.saturating_mul(86_400));
    let mut s = humantime::format_rfc3339_seconds(t).to_string();
    s.truncate(10);
    s
}

/// Minimizes addresses according to an [`IpMode`].
pub struct Minimizer {
    mode: IpMode,
    /// The key file's secret, when keyed-hash mode has one.
    secret: Option<Secret>,
    /// (UTC day number, key) for HMAC mode.
    key: Mutex<(u64, [u8; 32])>,
}

fn utc_day() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400)
}

/// 32 random bytes, for a key held in memory only.
pub fn fresh_key() -> [u8; 32] {
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
    /// `secret`: the key file's, in keyed-hash mode with a key file (ignored otherwise).
    pub fn new(mode: IpMode, secret: Option<Secret>) -> Minimizer {
        let secret = secret.filter(|_| matches!(mode, IpMode::Hmac { .. }));
        let today = utc_day();
        let key = match &secret {
            Some(s) => s.daily_key(today),
            None => fresh_key(),
        };
        Minimizer {
            mode,
            secret,
            key: Mutex::new((today, key)),
        }
    }

    /// Whether this minimizer works as one built from `mode` and `secret` would.
    pub fn same(&self, mode: &IpMode, secret: Option<&Secret>) -> bool {
        self.mode == *mode
            && (!matches!(mode, IpMode::Hmac { .. }) || self.secret.as_ref() == secret)
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
                ..
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
            IpMode::Hmac { .. } => {
                let key = {
                    let mut guard = self.key.lock().unwrap_or_else(|e| e.into_inner());
                    if guard.0 != today {
                        let key = match &self.secret {
                            Some(s) => s.daily_key(today),
                            None => fresh_key(),
                        };
                        *guard = (today, key);
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
        let m = Minimizer::new(IpMode::default(), None);
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
        let m = Minimizer::new(
            IpMode::Prefix {
                ipv4_prefix: 16,
                ipv6_prefix: 32,
                key_file: None,
            },
            None,
        );
        assert_eq!(m.minimize("203.0.113.77".parse().unwrap()), "203.0.0.0/16");
        assert_eq!(
            m.minimize("2001:db8:abcd::1".parse().unwrap()),
            "2001:db8::/32"
        );
        let mode = |yaml: &str| {
            crate::located::read_yaml::<IpMode>("c.yaml", yaml).map_err(|e| e.to_string())
        };
        assert!(mode("ipv4_prefix: 24\nipv6_prefix: 48\n").is_ok());
        assert!(mode("ipv4_prefix: 0\nipv6_prefix: 0\n").is_ok());
        for (yaml, expected) in [
            ("ipv4_prefix: 25\n", "at most 24"),
            ("ipv4_prefix: 32\n", "at most 24"),
            ("ipv6_prefix: 64\n", "at most 48"),
            ("mode: hmac\nipv4_prefix: 16\n", "are for `mode: prefix`"),
            ("mode: hmac\nkey_file: ''\n", "key_file is empty"),
            ("mode: hmac\nkeyfile: /k\n", "unknown field `keyfile`"),
            ("mode: sha1\n", "unknown variant `sha1`"),
        ] {
            let e = mode(yaml).unwrap_err();
            assert!(e.contains(expected), "{yaml}: {e}");
        }
        assert_eq!(
            mode("key_file: /k\n").unwrap().key_file(),
            Some(Path::new("/k"))
        );
        assert_eq!(
            mode("mode: hmac\nkey_file: /run/k\n").unwrap(),
            IpMode::Hmac {
                key_file: Some("/run/k".into())
            }
        );
    }

    #[test]
    fn hmac_key_changes_with_the_day() {
        let m = Minimizer::new(IpMode::Hmac { key_file: None }, None);
        let ip = "203.0.113.77".parse().unwrap();
        let day1 = m.minimize_on(ip, 20_000);
        assert_eq!(day1, m.minimize_on(ip, 20_000));
        let day2 = m.minimize_on(ip, 20_001);
        assert_ne!(day1, day2);
        assert_eq!(day2, m.minimize_on(ip, 20_001));
    }

    #[test]
    fn hmac_is_stable_within_a_process_and_hides_the_address() {
        let m = Minimizer::new(IpMode::Hmac { key_file: None }, None);
        let a = m.minimize("203.0.113.77".parse().unwrap());
        assert_eq!(a, m.minimize("203.0.113.77".parse().unwrap()));
        assert_ne!(a, m.minimize("203.0.113.78".parse().unwrap()));
        assert!(a.starts_with("hmac:") && a.len() == 37, "{a}");
        assert!(!a.contains("203.0"));
        // Another process (another key) gives another value.
        assert_ne!(
            a,
            Minimizer::new(IpMode::Hmac { key_file: None }, None)
                .minimize("203.0.113.77".parse().unwrap())
        );
    }

    fn secret(byte: u8) -> Secret {
        Secret::new(vec![byte; 32]).unwrap()
    }

    fn keyed(s: Secret) -> Minimizer {
        Minimizer::new(
            IpMode::Hmac {
                key_file: Some("k".into()),
            },
            Some(s),
        )
    }

    #[test]
    fn a_shared_secret_gives_every_process_the_same_pseudonym_for_a_day() {
        let ip = "203.0.113.77".parse().unwrap();
        let (a, b) = (keyed(secret(7)), keyed(secret(7)));
        assert_eq!(a.minimize_on(ip, 20_000), b.minimize_on(ip, 20_000));
        assert_eq!(a.minimize(ip), b.minimize(ip));
        // The next day, another pseudonym, the same on both.
        assert_ne!(a.minimize_on(ip, 20_000), a.minimize_on(ip, 20_001));
        assert_eq!(b.minimize_on(ip, 20_001), a.minimize_on(ip, 20_001));
        // Another secret (a rotation), another pseudonym.
        assert_ne!(
            keyed(secret(8)).minimize_on(ip, 20_000),
            a.minimize_on(ip, 20_000)
        );
        // The key is HKDF-SHA256 of the secret with the date: fixed by the algorithm alone.
        assert_eq!(utc_date(20_000), "2024-10-04");
        let hk = Hkdf::<Sha256>::new(Some(b"consent-proxy v1"), &[7u8; 32]);
        let mut okm = [0u8; 32];
        hk.expand(b"client-ip 2024-10-04", &mut okm).unwrap();
        assert_eq!(secret(7).daily_key(20_000), okm);
        // Prefix mode ignores a secret.
        let p = Minimizer::new(IpMode::default(), Some(secret(7)));
        assert_eq!(p.minimize_on(ip, 20_000), "203.0.113.0/24");
    }

    #[test]
    fn key_files_are_read_whole_less_one_line_end() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("k");
        std::fs::write(
            &f,
            [b'x'; 32].iter().chain(b"\n").copied().collect::<Vec<u8>>(),
        )
        .unwrap();
        assert_eq!(Secret::read(&f).unwrap(), Secret(vec![b'x'; 32]));
        std::fs::write(&f, b"short\n").unwrap();
        let e = Secret::read(&f).unwrap_err();
        assert!(
            e.contains("holds 5 bytes") && e.contains("at least 32"),
            "{e}"
        );
        let e = Secret::read(&dir.path().join("missing")).unwrap_err();
        assert!(
            e.contains("client_ip.key_file") && e.contains("missing"),
            "{e}"
        );
        // Never printed.
        assert_eq!(format!("{:?}", secret(7)), "Secret(<32 bytes>)");
    }
}
