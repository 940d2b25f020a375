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
    // The signals, a withdrawn cookie and a tracking endpoint, as the proxy answered them.
    let gpc = line("consent all + Sec-GPC: 1");
    let (passed, stripped) = gpc.split_once("stripped:").unwrap();
    assert!(
        passed.contains(" _ga ") && stripped.contains("_fbp"),
        "{gpc}"
    );
    let dnt = line("consent all + DNT: 1");
    let (passed, stripped) = dnt.split_once("stripped:").unwrap();
    assert!(
        !passed.contains("_ga") && stripped.contains("_ga _gid _fbp"),
        "{dnt}"
    );
    let echo = line("/echo");
    assert!(
        echo.contains("the site received: sessionid ")
            && echo.trim_end().ends_with("expired in the browser: _ga"),
        "{echo}"
    );
    let collect = line("/collect");
    assert!(collect.contains("204 from the proxy"), "{collect}");
    // The proxy is gone when the walkthrough is printed: no commands to try against it.
    assert!(
        !err.lines().any(|l| l.trim_start().starts_with("curl ")),
        "{err}"
    );
    assert!(err.contains("--once: the proxy has stopped"), "{err}");
}

#[tokio::test]
async fn the_demo_serves_its_admin_listener_and_the_commands_it_prints_work() {
    let mut demo = Command::new(bin());
    // Proxy::spawn gives the admin listener a port of its own (CONSENT_PROXY_ADMIN_LISTEN).
    demo.args(["demo", "--listen", "127.0.0.1:0"]);
    let proxy = Proxy::spawn(demo);
    let admin_addr = proxy
        .admin
        .expect("the demo says where its admin listener is");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let printed = loop {
        let err = proxy.stderr.lock().unwrap().join("\n");
        if err.contains("Press Ctrl-C to stop.") {
            break err;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no walkthrough: {err}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    for path in ["/healthz", "/readyz"] {
        let got = get(&http1(), &admin(&proxy, path), &[]).await;
        assert_eq!(got.status, 200, "{path}");
    }
    let cookies = get(&http1(), &admin(&proxy, "/cookies"), &[]).await;
    assert!(cookies.body.contains("\"_fbp\""), "{}", cookies.body);
    assert!(
        printed.contains(&format!("curl -s http://{admin_addr}/cookies")),
        "{printed}"
    );
    // Every command printed, run as printed, while the demo runs.
    if Command::new("curl").arg("--version").output().is_err() {
        eprintln!("no curl: the printed commands were not run");
        return;
    }
    let commands: Vec<&str> = printed
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("curl "))
        .map(|l| l.rsplit_once("  #").map_or(l, |(c, _)| c).trim_end())
        .collect();
    assert_eq!(commands.len(), 10, "{printed}");
    for c in commands {
        let out = Command::new("sh")
            .args(["-c", &format!("curl {c}")])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && !text.is_empty(),
            "curl {c}: {out:?}"
        );
        if c.contains("/collect") {
            assert!(text.starts_with("HTTP/1.1 204"), "curl {c}: {text}");
        }
        if c.contains("Sec-GPC") {
            assert!(
                text.contains("set-cookie: _ga=") && !text.contains("set-cookie: _fbp="),
                "curl {c}: {text}"
            );
        }
    }
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

#[test]
fn check_help_says_which_policy_is_checked() {
    let (code, out, _) = run(&["check", "--help"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("the policy the --config file names") && out.contains("else the built-in one"),
        "{out}"
    );
    assert!(out.contains("The policy it names is checked too"), "{out}");
}

#[test]
fn check_with_a_config_checks_the_policy_it_names() {
    let (dir, c) = temp_file("c.yaml", "upstream: http://127.0.0.1:1\npolicy: p.yaml\n");
    std::fs::write(dir.path().join("p.yaml"), "default: opt-out\n").unwrap();
    let (code, out, _) = run(&["check", "--config", path_str(&c)]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("c.yaml: ok") && out.contains("p.yaml: ok"),
        "{out}"
    );
    std::fs::write(dir.path().join("p.yaml"), "default: maybe\n").unwrap();
    let (code, out, _) = run(&["check", "--config", path_str(&c)]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("p.yaml:1:"), "{out}");
}

#[test]
fn check_says_the_default_as_the_policy_says_it() {
    let (code, out, _) = run(&["check"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("\n  default: opt-in (without consent: necessary only)\n"),
        "{out}"
    );
    let (_d, p) = temp_file(
        "p.yaml",
        "default: opt-out\nregions:\n  header: CF-IPCountry\n  opt-in: [DE, FR]\n",
    );
    let (code, out, _) = run(&["check", "--policy", path_str(&p)]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(
            "\n  default: opt-out (without consent: every category); by cf-ipcountry: opt-out in \
             0 countries, opt-in in 2\n"
        ),
        "{out}"
    );
}

#[test]
fn yaml_syntax_errors_are_reported_as_such() {
    // An unclosed `{` reads on into the next line; the YAML parser fails only there.
    let text = "mode: enforce\ncookies:\n  - { name: cart, category: necessary\n  - { name: x, category: analytics }\n";
    let (_d, p) = temp_file("p.yaml", text);
    let (code, out, _) = run(&["check", "--policy", path_str(&p)]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        out.trim_end(),
        format!(
            "{}:4:5: YAML syntax error: the flow mapping `{{` opened at line 3 column 5 is not \
             closed (expected `,` or `}}` here)",
            p.display()
        )
    );
    let (_d, c) = temp_file(
        "c.yaml",
        "upstream: http://127.0.0.1:1\ntrusted_proxies: [10.0.0.0/8\nlisten: 127.0.0.1:8080\n",
    );
    let (code, out, _) = run(&["check", "--config", path_str(&c)]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with(&format!("{}:", c.display()))
            && out.contains("YAML syntax error: the flow sequence `[` opened at line 2 column 18"),
        "{out}"
    );
    // A key indented under a value.
    let (_d, p) = temp_file("p.yaml", "mode: enforce\n  default: opt-in\n");
    let (code, out, _) = run(&["check", "--policy", path_str(&p)]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with(&format!("{}:2:", p.display())) && out.contains("YAML syntax error"),
        "{out}"
    );
}

#[test]
fn a_file_that_is_a_list_says_what_it_should_be() {
    let (_d, p) = temp_file("p.yaml", "- mode: enforce\n- default: opt-in\n");
    let (code, out, _) = run(&["check", "--policy", path_str(&p)]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with(&format!(
            "{}:1:1: a policy file is a YAML mapping of settings (`mode:`,",
            p.display()
        )) && out.contains("not a list"),
        "{out}"
    );
    assert!(!out.contains("PolicyFile"), "{out}");
    let (_d, c) = temp_file("c.yaml", "- listen: 127.0.0.1:8080\n");
    let (code, out, _) = run(&["check", "--config", path_str(&c)]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with(&format!(
            "{}:1:1: a config file is a YAML mapping of settings (`listen:`,",
            c.display()
        )) && out.contains("not a list"),
        "{out}"
    );
    // A section that must be a mapping names no type of the program either.
    let (_d, p) = temp_file("p.yaml", "signals: [dnt]\n");
    let (code, out, _) = run(&["check", "--policy", path_str(&p)]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("signals: invalid type: sequence, expected a mapping"),
        "{out}"
    );
}

#[tokio::test]
async fn listen_addresses_may_name_a_host() {
    let up = Upstream::start().await;
    let mut cmd = Command::new(bin());
    cmd.args([
        "serve",
        "--listen",
        "localhost:0",
        "--admin-listen",
        "localhost:0",
        "--upstream",
        &up.url(),
    ]);
    let proxy = Proxy::spawn(cmd);
    assert_eq!(proxy.addr.ip().to_string(), "127.0.0.1");
    assert_eq!(proxy.admin.unwrap().ip().to_string(), "127.0.0.1");
    let got = get(&http1(), &proxy.url("/"), &[]).await;
    assert_eq!(got.status, 200);
    let got = get(&http1(), &admin(&proxy, "/healthz"), &[]).await;
    assert_eq!(got.status, 200);
}

#[test]
fn a_listen_address_without_a_port_is_refused_with_a_hint() {
    for (flag, value, why) in [
        ("--listen", "localhost", "no port"),
        ("--admin-listen", "127.0.0.1", "no port"),
        ("--listen", "localhost:http", "`http` is not a port number"),
        (
            "--listen",
            "no-such-host.invalid:8080",
            "cannot resolve `no-such-host.invalid`",
        ),
    ] {
        let (code, _, err) = run(&["serve", "--upstream", "http://127.0.0.1:1", flag, value]);
        assert_eq!(code, 2, "{flag} {value}: {err}");
        assert!(
            err.contains(why) && err.contains("e.g. 127.0.0.1:8080 or [::1]:8080"),
            "{flag} {value}: {err}"
        );
    }
    let (code, _, err) = run(&["demo", "--once", "--listen", "localhost"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no port"), "{err}");
}

/// Every section of the config file refuses a key it does not know, with where it is: a
/// misspelt setting is never silently ignored.
#[test]
fn every_config_section_refuses_unknown_keys_with_their_position() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    let cert = concat!(env!("CARGO_MANIFEST_DIR"), "/certs/localhost.pem");
    let key = concat!(env!("CARGO_MANIFEST_DIR"), "/certs/localhost-key.pem");
    let site = "sites:\n  - name: a\n    server_names: [a.example]\n    upstream: http://a\n";
    // (section, the file with `bogus` in it, the position of `bogus`)
    let cases = [
        (
            "the top level",
            "upstream: http://a\nbogus: 1\n".to_string(),
            (2, 1),
        ),
        (
            "timeouts",
            "timeouts:\n  upstream_connect: 1s\n  bogus: 1s\n".into(),
            (3, 3),
        ),
        ("limits", "limits:\n  bogus: 1\n".into(), (2, 3)),
        (
            "log",
            "log:\n  retention_days: 3\n  bogus: x\n".into(),
            (3, 3),
        ),
        (
            "tls",
            format!("tls:\n  certificates: [{{cert: {cert}, key: {key}}}]\n  bogus: 1\n"),
            (3, 3),
        ),
        (
            "tls.certificates",
            format!(
                "tls:\n  certificates:\n    - cert: {cert}\n      key: {key}\n      bogus: 1\n"
            ),
            (5, 7),
        ),
        (
            "client_ip (prefix)",
            "client_ip:\n  ipv4_prefix: 16\n  bogus: 1\n".into(),
            (3, 3),
        ),
        (
            "client_ip (hmac)",
            "client_ip:\n  mode: hmac\n  keyfile: /k\n".into(),
            (3, 3),
        ),
        (
            "consent_records",
            "consent_records:\n  store: sqlite\n  bogus: 1\n".into(),
            (3, 3),
        ),
        ("sites", format!("{site}    bogus: 1\n"), (5, 5)),
        (
            "sites[].tls",
            format!(
                "{site}    tls:\n      certificates: [{{cert: {cert}, key: {key}}}]\n      bogus: 1\n"
            ),
            (7, 7),
        ),
        (
            "sites[].tls.certificates",
            format!(
                "{site}    tls:\n      certificates:\n        - {{cert: {cert}, key: {key}, bogus: 1}}\n"
            ),
            (7, 27 + cert.len() + key.len()),
        ),
    ];
    for (section, yaml, (line, column)) in cases {
        std::fs::write(&config, &yaml).unwrap();
        let (code, out, _) = run(&["check", "--config", path_str(&config)]);
        assert_eq!(code, 1, "{section}: {out}");
        let at = format!("{}:{line}:{column}: ", config.display());
        assert!(out.starts_with(&at), "{section}: expected {at} in {out}");
        assert!(
            out.contains("unknown field `bogus`") || out.contains("unknown field `keyfile`"),
            "{section}: {out}"
        );
        // Without the unknown key, the same file is accepted: the key alone was refused.
        let fixed: String = yaml
            .lines()
            .filter(|l| !l.trim_start().starts_with("bogus") && !l.contains("keyfile"))
            .map(|l| format!("{}\n", l.replace(", bogus: 1", "")))
            .collect();
        let fixed = if fixed.contains("upstream") {
            fixed
        } else {
            format!("upstream: http://a\n{fixed}")
        };
        std::fs::write(&config, &fixed).unwrap();
        let (code, out, _) = run(&["check", "--config", path_str(&config)]);
        assert_eq!(code, 0, "{section}: {fixed}\n{out}");
    }
}

/// `client_ip: {mode: hmac, key_file}` is read: the file must exist and hold a secret.
#[test]
fn the_client_address_key_file_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "upstream: http://a\nclient_ip:\n  mode: hmac\n  key_file: keys/client-ip.key\n",
    )
    .unwrap();
    let (code, out, _) = run(&["check", "--config", path_str(&config)]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("client_ip.key_file") && out.contains("keys/client-ip.key"),
        "{out}"
    );
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    std::fs::write(dir.path().join("keys/client-ip.key"), "too short\n").unwrap();
    let (code, out, _) = run(&["check", "--config", path_str(&config)]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("holds 9 bytes") && out.contains("at least 32"),
        "{out}"
    );
    std::fs::write(dir.path().join("keys/client-ip.key"), "q".repeat(44) + "\n").unwrap();
    let (code, out, _) = run(&["check", "--config", path_str(&config)]);
    assert_eq!(code, 0, "{out}");
}
