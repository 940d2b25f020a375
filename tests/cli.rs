//! End to end: the command line — check, serve start-up errors, config files, the demo.

mod common;
use common::*;
use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin()).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_accepts_the_builtin_and_a_valid_policy() {
    let (code, out, _) = run(&["check"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("policies/default.yaml: ok") && out.contains("cookie rules:"),
        "{out}"
    );
    let (_d, p) = temp_file(
        "site.yaml",
        "extends: builtin\ncookies:\n  - { name: cart, category: necessary }\n",
    );
    let (code, out, _) = run(&["check", "--policy", path_str(&p)]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("site.yaml: ok"), "{out}");
}

#[test]
fn check_reports_file_line_column() {
    let (_d, p) = temp_file(
        "bad.yaml",
        "mode: enforce\ncookies:\n  - { name: _ga, category: analytics }\n  - { name: x, category: trackers }\n",
    );
    let (code, out, _) = run(&["check", "--policy", path_str(&p)]);
    assert_eq!(code, 1);
    let want = format!("{}:4:", p.display());
    assert!(out.starts_with(&want), "{out}");
    assert!(out.contains("trackers"), "{out}");
    let (_d, p) = temp_file("bad.yaml", "mode: enforce\nsignal:\n  dnt: {}\n");
    let (code, out, _) = run(&["check", "--policy", path_str(&p)]);
    assert_eq!(code, 1);
    assert!(
        out.starts_with(&format!("{}:2:1: unknown field `signal`", p.display())),
        "{out}"
    );
    let (code, out, _) = run(&["check", "--policy", "/nonexistent/p.yaml"]);
    assert_eq!(code, 1);
    assert!(out.contains("/nonexistent/p.yaml"), "{out}");
}

#[test]
fn check_validates_the_config_file_too() {
    let (_d, c) = temp_file("c.yaml", "upstream: http://127.0.0.1:1\nlisten: nowhere\n");
    let (code, out, _) = run(&["check", "--config", path_str(&c)]);
    assert_eq!(code, 1);
    assert!(out.starts_with(&format!("{}:2:", c.display())), "{out}");
}

#[test]
fn serve_refuses_a_bad_policy_with_its_position() {
    let (_d, p) = temp_file(
        "bad.yaml",
        "cookies:\n  - { name: _ga, category: analytics, colour: red }\n",
    );
    let (code, _, err) = run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        "http://127.0.0.1:1",
        "--policy",
        path_str(&p),
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("{}:2:", p.display())) && err.contains("colour"),
        "{err}"
    );
    let (code, _, err) = run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        "127.0.0.1:1",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("needs a scheme"), "{err}");
}

#[tokio::test]
async fn flags_override_the_config_file() {
    let up = Upstream::start().await;
    let (dir, policy) = temp_file(
        "p.yaml",
        "extends: builtin\nconsent_cookie: from_config_policy\n",
    );
    let config = dir.path().join("c.yaml");
    let file_port = dead_port();
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{file_port}\nupstream: http://127.0.0.1:{}\npolicy: p.yaml\n",
            dead_port()
        ),
    )
    .unwrap();
    let _ = policy;
    let proxy = Proxy::start(&up.url(), &["--config", path_str(&config)]);
    assert_ne!(
        proxy.addr.port(),
        file_port,
        "--listen overrode the file's listen"
    );
    let got = get(
        &http1(),
        &proxy.url("/"),
        &[
            ("cookie", "from_config_policy=all"),
            ("x-set-cookie", "_ga=1"),
        ],
    )
    .await;
    assert_eq!(got.status, 200, "--upstream overrode the file's upstream");
    assert_eq!(
        got.set_cookie_names(),
        vec!["_ga"],
        "the file's policy (relative to it) applies"
    );
}

#[test]
fn demo_once_shows_tracking_cookies_stripped_without_consent() {
    let (code, _, err) = run(&["demo", "--once", "--listen", "127.0.0.1:0"]);
    assert_eq!(code, 0, "{err}");
    let line = |label: &str| {
        err.lines()
            .find(|l| l.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("no line for {label}: {err}"))
            .to_string()
    };
    let none = line("no consent");
    let (passed, stripped) = none.split_once("stripped:").unwrap();
    assert!(
        passed.contains("sessionid") && passed.contains("csrftoken"),
        "{none}"
    );
    for c in ["_ga", "_gid", "_fbp"] {
        assert!(
            stripped.contains(c) && !passed.contains(&format!(" {c} ")),
            "{none}"
        );
    }
    assert!(none.trim_end().ends_with("tags neutralized: 4"), "{none}");
    let all = line("Cookie: cookie_consent=all");
    let (passed, rest) = all.split_once("stripped:").unwrap();
    assert!(rest.trim_start().starts_with("- "), "{all}");
    assert!(passed.contains("_ga") && passed.contains("_fbp"), "{all}");
    assert!(all.trim_end().ends_with("tags neutralized: 0"), "{all}");
    // A TCF string and a OneTrust cookie granting analytics only.
    for label in ["TCF euconsent-v2", "OneTrust C0002"] {
        let l = line(label);
        let (passed, stripped) = l.split_once("stripped:").unwrap();
        assert!(passed.contains(" _ga ") && stripped.contains("_fbp"), "{l}");
        assert!(l.trim_end().ends_with("tags neutralized: 2"), "{l}");
    }
    assert!(err.contains("curl -si"), "{err}");
}

/// A command whose output pipe is closed before it writes, as in `consent-proxy check | true`.
fn run_into_closed_pipe(args: &[&str], close_stderr: bool) -> (i32, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut cmd = Command::new(bin());
    cmd.args(args);
    let out = if close_stderr {
        cmd.stderr(writer).output().unwrap()
    } else {
        cmd.stdout(writer).output().unwrap()
    };
    let text = if close_stderr { out.stdout } else { out.stderr };
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&text).into_owned(),
    )
}

#[test]
fn a_closed_output_pipe_ends_the_command_quietly_with_its_verdict() {
    let (code, err) = run_into_closed_pipe(&["check"], false);
    assert_eq!((code, err.as_str()), (0, ""));
    let (_d, bad) = temp_file("p.yaml", "cookies:\n  - { name: x, category: bogus }\n");
    let (code, err) = run_into_closed_pipe(&["check", "--policy", path_str(&bad)], false);
    assert_eq!((code, err.as_str()), (1, ""));
    // The demo writes its walkthrough on stderr.
    let (code, out) = run_into_closed_pipe(&["demo", "--once", "--listen", "127.0.0.1:0"], true);
    assert_eq!(code, 0, "{out}");
}
