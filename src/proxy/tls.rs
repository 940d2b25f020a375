//! TLS termination on the main listener: certificates from PEM files, chosen by SNI, replaceable
//! while running.
//!
//! Each certificate covers the DNS names in its end-entity certificate's subjectAltName
//! extension (exact names, and `*.example.com` wildcards matching one label). rustls does not
//! expose those names, so `san_dns_names` reads them with a small bounds-checked DER walker.
//! A client that sends no SNI (for instance one connecting to an IP address), or a name no
//! certificate covers, gets the first certificate.

use crate::config::{CertificateFiles, TlsFiles};
use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{InconsistentKeys, ServerConfig};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::PathBuf;
use std::sync::Arc;

/// The crypto provider for both directions, chosen explicitly rather than through the
/// process-wide default.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Turns a PEM reading error into words, for a message that already names the file.
pub(crate) fn pem_problem(e: pem::Error) -> String {
    match e {
        pem::Error::Io(e) => format!("cannot read it: {e}"),
        e => format!("it is not valid PEM: {e}"),
    }
}

/// Reads every certificate chain and its key, checking that each key matches its certificate.
pub fn load_certified_keys(files: &TlsFiles) -> Result<Vec<Arc<CertifiedKey>>, String> {
    if files.certificates.is_empty() {
        return Err("tls.certificates: list at least one certificate".into());
    }
    let provider = provider();
    files
        .certificates
        .iter()
        .map(|f| load_one(f, &provider).map(Arc::new))
        .collect()
}

fn load_one(files: &CertificateFiles, provider: &CryptoProvider) -> Result<CertifiedKey, String> {
    let cert_file = files.cert.display();
    let key_file = files.key.display();
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| format!("TLS certificate {cert_file}: {}", pem_problem(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("TLS certificate {cert_file}: {}", pem_problem(e)))?;
    if chain.is_empty() {
        return Err(format!(
            "TLS certificate {cert_file}: no certificate in it (expected a PEM block \
             `-----BEGIN CERTIFICATE-----`)"
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| match e {
        pem::Error::NoItemsFound => format!(
            "TLS key {key_file}: no private key in it (expected a PEM block `BEGIN PRIVATE KEY`, \
             `BEGIN RSA PRIVATE KEY` or `BEGIN EC PRIVATE KEY`)"
        ),
        e => format!("TLS key {key_file}: {}", pem_problem(e)),
    })?;
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("TLS key {key_file}: unsupported or invalid private key: {e}"))?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        // Unknown: the key cannot tell its public half; rustls accepts that too.
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(_)) => {
            return Err(format!(
                "TLS key {key_file} does not match the certificate in {cert_file} (the \
                 certificate file must start with the server's own certificate, followed by \
                 its intermediates)"
            ));
        }
        Err(e) => {
            return Err(format!(
                "TLS certificate {cert_file}: the first certificate cannot be parsed: {e}"
            ));
        }
    }
    Ok(certified)
}

/// One certificate and the names it is chosen for.
#[derive(Debug)]
struct Entry {
    /// Lowercase; exact names and `*.` wildcards.
    names: Vec<String>,
    key: Arc<CertifiedKey>,
}

/// The certificates in use; never empty.
#[derive(Debug)]
struct CertSet {
    entries: Vec<Entry>,
}

impl CertSet {
    fn load(files: &TlsFiles) -> Result<CertSet, String> {
        let entries: Vec<Entry> = load_certified_keys(files)?
            .into_iter()
            .map(|key| Entry {
                names: key
                    .end_entity_cert()
                    .map(|c| san_dns_names(c))
                    .unwrap_or_default(),
                key,
            })
            .collect();
        for (entry, files) in entries.iter().zip(&files.certificates).skip(1) {
            if entry.names.is_empty() {
                tracing::warn!(
                    cert = %files.cert.display(),
                    "this TLS certificate names no DNS host in subjectAltName, so SNI never \
                     chooses it; only the first certificate serves clients without a match"
                );
            }
        }
        Ok(CertSet { entries })
    }

    /// Whether a certificate names `host` (exactly or by a wildcard).
    fn covers(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        self.entries.iter().any(|e| {
            e.names
                .iter()
                .any(|n| *n == host || wildcard_covers(n, &host))
        })
    }

    /// An exact name wins over a wildcard; without SNI or a match, the first certificate.
    fn choose(&self, server_name: Option<&str>) -> Option<&Arc<CertifiedKey>> {
        let first = self.entries.first().map(|e| &e.key);
        let Some(host) = server_name else {
            return first;
        };
        let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        let exact = self.entries.iter().find(|e| e.names.contains(&host));
        let wildcard = || {
            self.entries
                .iter()
                .find(|e| e.names.iter().any(|n| wildcard_covers(n, &host)))
        };
        exact.or_else(wildcard).map(|e| &e.key).or(first)
    }
}

/// `*.example.com` covers `a.example.com`, not `example.com` nor `a.b.example.com`.
fn wildcard_covers(pattern: &str, host: &str) -> bool {
    let Some(suffix) = pattern.strip_prefix("*.") else {
        return false;
    };
    host.split_once('.')
        .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix)
}

/// Certificates loaded, not yet in use.
#[derive(Debug)]
pub struct Certificates(CertSet);

/// Chooses among the certificates by SNI; the set is swapped whole on reload.
#[derive(Debug)]
struct SniResolver {
    set: ArcSwap<CertSet>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.set.load().choose(client_hello.server_name()).cloned()
    }
}

/// TLS on the main listener.
pub struct Tls {
    resolver: Arc<SniResolver>,
    config: Arc<ServerConfig>,
}

impl Tls {
    /// Loads the certificates; TLS 1.2 and 1.3, ALPN `h2` and `http/1.1`, no client
    /// certificates.
    pub fn new(files: &TlsFiles) -> Result<Tls, String> {
        let resolver = Arc::new(SniResolver {
            set: ArcSwap::from_pointee(CertSet::load(files)?),
        });
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| format!("TLS: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls {
            resolver,
            config: Arc::new(config),
        })
    }

    /// An acceptor for new connections. Acceptors share the certificates, so one made before
    /// an [`install`](Tls::install) serves the new ones after it.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.clone())
    }

    /// Loads certificates to [`install`](Tls::install) later, all or none: on an error the
    /// certificates in use stay.
    pub fn prepare(files: &TlsFiles) -> Result<Certificates, String> {
        CertSet::load(files).map(Certificates)
    }

    /// Puts certificates loaded by [`prepare`](Tls::prepare) in use for new handshakes.
    /// Connections already established keep theirs.
    pub fn install(&self, certificates: Certificates) {
        self.resolver.set.store(Arc::new(certificates.0));
    }

    /// Whether one of the certificates in use names `host`; a client asking for a name none
    /// covers gets the first certificate, which it refuses.
    pub fn covers(&self, host: &str) -> bool {
        self.resolver.set.load().covers(host)
    }

    /// The certificate and key files, each once, in configuration order.
    pub fn files_to_watch(files: &TlsFiles) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        for f in &files.certificates {
            for p in [&f.cert, &f.key] {
                if !out.iter().any(|o| o == p) {
                    out.push(p.clone());
                }
            }
        }
        out
    }
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = self.resolver.set.load();
        let names: Vec<&[String]> = set.entries.iter().map(|e| e.names.as_slice()).collect();
        f.debug_struct("Tls").field("names", &names).finish()
    }
}

// --- subjectAltName -------------------------------------------------------------------------

const SEQUENCE: u8 = 0x30;
const OBJECT_IDENTIFIER: u8 = 0x06;
const BOOLEAN: u8 = 0x01;
const OCTET_STRING: u8 = 0x04;
/// `[3] EXPLICIT Extensions` in TBSCertificate.
const EXTENSIONS: u8 = 0xa3;
/// `dNSName [2] IMPLICIT IA5String` in GeneralName.
const DNS_NAME: u8 = 0x82;
/// 2.5.29.17
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];

/// Reads one DER element: its tag, its contents, and what follows it. `None` when the input is
/// cut short or is not DER this walker reads (multi-byte tags, indefinite or huge lengths).
fn der_next(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, after) = rest.split_at(count);
        rest = after;
        let mut len = 0usize;
        for &b in bytes {
            len = len.checked_mul(256)?.checked_add(usize::from(b))?;
        }
        len
    };
    if rest.len() < len {
        return None;
    }
    let (contents, after) = rest.split_at(len);
    Some((tag, contents, after))
}

/// Reads one element that must have `tag`.
fn der_expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (t, contents, after) = der_next(input)?;
    (t == tag).then_some((contents, after))
}

/// The DNS names (lowercase) in a certificate's subjectAltName extension; empty when it has
/// none or cannot be read.
fn san_dns_names(cert: &[u8]) -> Vec<String> {
    san_dns_names_inner(cert).unwrap_or_default()
}

fn san_dns_names_inner(cert: &[u8]) -> Option<Vec<String>> {
    // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { .. [3] extensions }, .. }
    let (certificate, _) = der_expect(cert, SEQUENCE)?;
    let (mut tbs, _) = der_expect(certificate, SEQUENCE)?;
    let extensions = loop {
        // Ends in `None` (no names) for a certificate without extensions.
        let (tag, contents, after) = der_next(tbs)?;
        if tag == EXTENSIONS {
            break contents;
        }
        tbs = after;
    };
    let (mut list, _) = der_expect(extensions, SEQUENCE)?;
    while !list.is_empty() {
        // Extension ::= SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }
        let (extension, after) = der_expect(list, SEQUENCE)?;
        list = after;
        let (oid, mut fields) = der_expect(extension, OBJECT_IDENTIFIER)?;
        if oid != SUBJECT_ALT_NAME {
            continue;
        }
        if let Some((_, after)) = der_expect(fields, BOOLEAN) {
            fields = after;
        }
        let (value, _) = der_expect(fields, OCTET_STRING)?;
        let (mut general_names, _) = der_expect(value, SEQUENCE)?;
        let mut names = Vec::new();
        while !general_names.is_empty() {
            let (tag, name, after) = der_next(general_names)?;
            general_names = after;
            if tag != DNS_NAME || name.is_empty() || !name.is_ascii() {
                continue;
            }
            if let Ok(name) = std::str::from_utf8(name) {
                let name = name.strip_suffix('.').unwrap_or(name);
                names.push(name.to_ascii_lowercase());
            }
        }
        return Some(names);
    }
    Some(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::ServerName;
    use std::path::Path;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    struct Made {
        cert_pem: String,
        key_pem: String,
        der: CertificateDer<'static>,
    }

    fn make(names: &[&str]) -> Made {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let ck = rcgen::generate_simple_self_signed(names).unwrap();
        Made {
            cert_pem: ck.cert.pem(),
            key_pem: ck.signing_key.serialize_pem(),
            der: ck.cert.der().clone(),
        }
    }

    fn write(dir: &Path, stem: &str, m: &Made) -> CertificateFiles {
        let cert = dir.join(format!("{stem}.pem"));
        let key = dir.join(format!("{stem}-key.pem"));
        std::fs::write(&cert, &m.cert_pem).unwrap();
        std::fs::write(&key, &m.key_pem).unwrap();
        CertificateFiles { cert, key }
    }

    fn files(list: Vec<CertificateFiles>) -> TlsFiles {
        TlsFiles { certificates: list }
    }

    fn chosen(set: &CertSet, sni: Option<&str>) -> CertificateDer<'static> {
        set.choose(sni).unwrap().cert[0].clone()
    }

    #[test]
    fn san_names_single_multi_and_wildcard() {
        assert_eq!(san_dns_names(&make(&["a.example"]).der), ["a.example"]);
        let m = make(&[
            "One.Example",
            "*.two.example",
            "127.0.0.1",
            "three.example.",
        ]);
        assert_eq!(
            san_dns_names(&m.der),
            ["one.example", "*.two.example", "three.example"]
        );
        let localhost = CertificateDer::from_pem_file(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/certs/localhost.pem"
        ))
        .unwrap();
        assert_eq!(san_dns_names(&localhost), ["localhost"]);
    }

    #[test]
    fn san_walker_never_panics_on_damaged_input() {
        let der = make(&["a.example", "*.b.example"]).der.to_vec();
        assert!(san_dns_names(&[]).is_empty());
        assert!(san_dns_names(&[0x30]).is_empty());
        assert!(san_dns_names(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_empty());
        assert!(san_dns_names(&[0x30, 0x80, 0, 0]).is_empty());
        assert!(san_dns_names(&[0x1f, 0x01, 0x00]).is_empty());
        for cut in 0..der.len() {
            let _ = san_dns_names(&der[..cut]);
        }
        for i in 0..der.len() {
            for flip in [0x00, 0xff, 0x80, 0x01] {
                let mut damaged = der.clone();
                damaged[i] ^= flip;
                let _ = san_dns_names(&damaged);
            }
        }
    }

    #[test]
    fn der_lengths() {
        assert_eq!(
            der_next(&[0x04, 0x01, 0xaa, 0xbb]),
            Some((0x04, &[0xaa][..], &[0xbb][..]))
        );
        assert_eq!(
            der_next(&[0x04, 0x81, 0x01, 0xaa]),
            Some((0x04, &[0xaa][..], &[][..]))
        );
        assert_eq!(der_next(&[0x04, 0x02, 0xaa]), None);
        assert_eq!(der_next(&[0x04, 0x85, 1, 0, 0, 0, 0]), None);
        assert_eq!(der_next(&[0x04]), None);
    }

    #[test]
    fn wildcards_match_one_label() {
        assert!(wildcard_covers("*.example.com", "a.example.com"));
        assert!(!wildcard_covers("*.example.com", "example.com"));
        assert!(!wildcard_covers("*.example.com", "a.b.example.com"));
        assert!(!wildcard_covers("*.example.com", ".example.com"));
        assert!(!wildcard_covers("a.example.com", "a.example.com"));
    }

    #[test]
    fn sni_chooses_by_name_and_falls_back_to_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let a = make(&["a.example"]);
        let b = make(&["b.example", "*.wild.example"]);
        let c = make(&["x.wild.example"]);
        let set = CertSet::load(&files(vec![
            write(dir.path(), "a", &a),
            write(dir.path(), "b", &b),
            write(dir.path(), "c", &c),
        ]))
        .unwrap();
        assert_eq!(chosen(&set, Some("a.example")), a.der);
        assert_eq!(chosen(&set, Some("b.example")), b.der);
        assert_eq!(chosen(&set, Some("B.Example")), b.der);
        assert_eq!(chosen(&set, Some("b.example.")), b.der);
        assert_eq!(chosen(&set, Some("y.wild.example")), b.der);
        // An exact name wins over an earlier wildcard.
        assert_eq!(chosen(&set, Some("x.wild.example")), c.der);
        assert_eq!(chosen(&set, Some("a.b.wild.example")), a.der);
        assert_eq!(chosen(&set, Some("unknown.example")), a.der);
        assert_eq!(chosen(&set, None), a.der);
    }

    /// A full handshake over an in-memory pipe; returns the server's certificate and the
    /// negotiated ALPN protocol.
    async fn handshake(
        acceptor: tokio_rustls::TlsAcceptor,
        trust: &CertificateDer<'static>,
        name: &str,
        sni: bool,
        alpn: &[&[u8]],
    ) -> (CertificateDer<'static>, Option<Vec<u8>>) {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(trust.clone()).unwrap();
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.enable_sni = sni;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let server = async move {
            let mut s = acceptor.accept(server_io).await.unwrap();
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(&buf).await.unwrap();
            s.flush().await.unwrap();
        };
        let name = ServerName::try_from(name.to_string()).unwrap();
        let client = async move {
            let mut c = connector.connect(name, client_io).await.unwrap();
            c.write_all(b"ping").await.unwrap();
            let mut buf = [0u8; 4];
            c.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"ping");
            let (_, conn) = c.get_ref();
            (
                conn.peer_certificates().unwrap()[0].clone(),
                conn.alpn_protocol().map(|p| p.to_vec()),
            )
        };
        tokio::join!(server, client).1
    }

    #[tokio::test]
    async fn handshakes_pick_by_sni_and_negotiate_alpn() {
        let dir = tempfile::tempdir().unwrap();
        let a = make(&["a.example"]);
        let b = make(&["b.example"]);
        let tls = Tls::new(&files(vec![
            write(dir.path(), "a", &a),
            write(dir.path(), "b", &b),
        ]))
        .unwrap();
        let (cert, alpn) = handshake(
            tls.acceptor(),
            &b.der,
            "b.example",
            true,
            &[b"h2", b"http/1.1"],
        )
        .await;
        assert_eq!(cert, b.der);
        assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
        let (cert, alpn) =
            handshake(tls.acceptor(), &a.der, "a.example", true, &[b"http/1.1"]).await;
        assert_eq!(cert, a.der);
        assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
        // No SNI: the first certificate.
        let (cert, _) = handshake(tls.acceptor(), &a.der, "a.example", false, &[]).await;
        assert_eq!(cert, a.der);
    }

    #[tokio::test]
    async fn reload_replaces_and_a_bad_reload_keeps_the_old_set() {
        let dir = tempfile::tempdir().unwrap();
        let old = make(&["site.example"]);
        let new = make(&["site.example"]);
        let tls = Tls::new(&files(vec![write(dir.path(), "old", &old)])).unwrap();
        let made_before = tls.acceptor();
        let (cert, _) = handshake(tls.acceptor(), &old.der, "site.example", true, &[]).await;
        assert_eq!(cert, old.der);

        tls.install(Tls::prepare(&files(vec![write(dir.path(), "new", &new)])).unwrap());
        let (cert, _) = handshake(made_before.clone(), &new.der, "site.example", true, &[]).await;
        assert_eq!(cert, new.der);

        let bad = files(vec![CertificateFiles {
            cert: dir.path().join("missing.pem"),
            key: dir.path().join("missing-key.pem"),
        }]);
        assert!(Tls::prepare(&bad).is_err());
        let mismatched = files(vec![CertificateFiles {
            cert: dir.path().join("old.pem"),
            key: dir.path().join("new-key.pem"),
        }]);
        assert!(Tls::prepare(&mismatched).is_err());
        let (cert, _) = handshake(tls.acceptor(), &new.der, "site.example", true, &[]).await;
        assert_eq!(cert, new.der);
    }

    #[test]
    fn errors_name_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a", &make(&["a.example"]));
        let b = write(dir.path(), "b", &make(&["b.example"]));

        let missing = dir.path().join("nope.pem");
        let e = load_certified_keys(&files(vec![CertificateFiles {
            cert: missing.clone(),
            key: a.key.clone(),
        }]))
        .unwrap_err();
        assert!(e.contains(&missing.display().to_string()), "{e}");
        assert!(e.contains("cannot read"), "{e}");

        // A key file where the certificate should be.
        let e = load_certified_keys(&files(vec![CertificateFiles {
            cert: a.key.clone(),
            key: a.key.clone(),
        }]))
        .unwrap_err();
        assert!(e.contains(&a.key.display().to_string()), "{e}");
        assert!(e.contains("no certificate"), "{e}");

        // A certificate where the key should be.
        let e = load_certified_keys(&files(vec![CertificateFiles {
            cert: a.cert.clone(),
            key: a.cert.clone(),
        }]))
        .unwrap_err();
        assert!(e.contains("no private key"), "{e}");

        let e = load_certified_keys(&files(vec![CertificateFiles {
            cert: a.cert.clone(),
            key: b.key.clone(),
        }]))
        .unwrap_err();
        assert!(e.contains(&b.key.display().to_string()), "{e}");
        assert!(e.contains(&a.cert.display().to_string()), "{e}");
        assert!(e.contains("does not match"), "{e}");

        let garbage = dir.path().join("garbage-key.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let e = load_certified_keys(&files(vec![CertificateFiles {
            cert: a.cert.clone(),
            key: garbage,
        }]))
        .unwrap_err();
        assert!(e.contains("unsupported or invalid private key"), "{e}");

        assert!(load_certified_keys(&files(vec![])).is_err());
        assert_eq!(
            load_certified_keys(&files(vec![a.clone(), b.clone()]))
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn watch_list_has_each_file_once() {
        let same = CertificateFiles {
            cert: "both.pem".into(),
            key: "both.pem".into(),
        };
        let other = CertificateFiles {
            cert: "b.pem".into(),
            key: "b-key.pem".into(),
        };
        let f = files(vec![same.clone(), other, same]);
        assert_eq!(
            Tls::files_to_watch(&f),
            [
                PathBuf::from("both.pem"),
                "b.pem".into(),
                "b-key.pem".into()
            ]
        );
    }

    #[test]
    fn the_bundled_localhost_certificate_loads() {
        let certs = files(vec![CertificateFiles {
            cert: concat!(env!("CARGO_MANIFEST_DIR"), "/certs/localhost.pem").into(),
            key: concat!(env!("CARGO_MANIFEST_DIR"), "/certs/localhost-key.pem").into(),
        }]);
        let tls = Tls::new(&certs).unwrap();
        assert_eq!(format!("{tls:?}"), r#"Tls { names: [["localhost"]] }"#);
    }
}
