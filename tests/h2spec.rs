//! HTTP/2 conformance: the cases of h2spec's `generic`, `http2` and `hpack` groups
//! (tests/h2spec/h2check.py, on the PyPI packages hyperframe and hpack) against the proxy, in
//! clear (h2c) and over TLS. The cases excluded, each with its reason, are in
//! tests/h2spec/excluded.txt.

mod common;
use std::process::Command;

#[test]
fn http2_conformance_over_h2c_and_tls() {
    let run = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/h2spec/run.py");
    let out = Command::new("python3")
        .args([run, "--proxy", common::bin()])
        .output()
        .expect("python3 runs tests/h2spec/run.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("ModuleNotFoundError"),
        "{stderr}\nthe HTTP/2 checks need hyperframe and hpack: \
         pip install -r tests/h2spec/requirements.txt (scripts/test installs them)"
    );
    let summary: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("h2c: ") || l.starts_with("tls: "))
        .collect();
    println!("{}", summary.join("\n"));
    assert!(
        out.status.success(),
        "{}\n{stderr}",
        stdout
            .lines()
            .filter(|l| l.starts_with("FAIL") || l.starts_with("h2c:") || l.starts_with("tls:"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Both targets ran every case but the excluded ones.
    assert_eq!(summary.len(), 2, "{stdout}");
    for line in summary {
        assert!(line.contains(" 0 failed"), "{line}");
        let passed: usize = line
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(passed >= 145, "{line}");
    }
}
