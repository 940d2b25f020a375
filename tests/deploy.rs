//! The deployment files in deploy/ (the Dockerfile and the Kubernetes manifests) agree with the
//! binary's defaults, with its command line and with each other. The defaults are read from the
//! crate, never repeated here.

use consent_proxy::config::{self, DEFAULT_ADMIN_LISTEN, DEFAULT_LISTEN, Overrides, Settings};
use consent_proxy::proxy::admin::{HEALTHZ, READYZ};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const SIDECAR: &str = "deploy/kubernetes/sidecar.yaml";
const STANDALONE: &str = "deploy/kubernetes/standalone.yaml";
const DOCKERFILE: &str = "deploy/Dockerfile";
/// The container running the proxy, in both manifests.
const PROXY: &str = "consent-proxy";
/// The ConfigMap holding the policy, in both manifests.
const POLICY_CONFIGMAP: &str = "consent-proxy-policy";
/// The config sections that let several replicas act as one: the client-address key, and the
/// consent records' database.
const SHARED_STATE: [&str; 2] = ["client_ip", "consent_records"];
/// The Secrets holding them in the standalone manifest.
const KEYS_SECRET: &str = "consent-proxy-keys";
const DB_SECRET: &str = "consent-proxy-db";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn port_of(addr: &str) -> u16 {
    addr.parse::<SocketAddr>()
        .unwrap_or_else(|e| panic!("{addr}: {e}"))
        .port()
}

fn listen_port() -> u16 {
    port_of(DEFAULT_LISTEN)
}

fn admin_port() -> u16 {
    port_of(DEFAULT_ADMIN_LISTEN)
}

/// Whole seconds, rounded up.
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// The environment variables `consent-proxy serve` reads, from its own `--help`.
fn serve_env_vars() -> BTreeSet<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_consent-proxy"))
        .args(["serve", "--help"])
        .output()
        .expect("run consent-proxy serve --help");
    assert!(out.status.success(), "serve --help failed");
    let help = String::from_utf8_lossy(&out.stdout);
    let vars: BTreeSet<String> = help
        .split("[env: ")
        .skip(1)
        .map(|rest| {
            rest.split(['=', ']'])
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert!(
        vars.contains("CONSENT_PROXY_LISTEN"),
        "serve --help names no environment variables:\n{help}"
    );
    vars
}

// ---- Kubernetes manifests ----------------------------------------------------------------

/// Every non-empty YAML document of a manifest.
fn documents(rel: &str) -> Vec<Value> {
    let text = read(rel);
    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
        .enumerate()
        .map(|(i, doc)| {
            Value::deserialize(doc).unwrap_or_else(|e| panic!("{rel}: document {}: {e}", i + 1))
        })
        .filter(|v| !v.is_null())
        .collect();
    for (i, d) in docs.iter().enumerate() {
        for key in ["/apiVersion", "/kind", "/metadata/name"] {
            assert!(
                d.pointer(key).and_then(Value::as_str).is_some(),
                "{rel}: document {} has no {key}",
                i + 1
            );
        }
    }
    docs
}

fn text<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

fn list<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn name(v: &Value) -> &str {
    text(v, "/name")
        .or_else(|| text(v, "/metadata/name"))
        .unwrap_or("")
}

/// How the proxy is deployed, and so what it forwards to.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Topology {
    /// In the site's pod, forwarding over loopback to another container.
    Sidecar,
    /// Alone in its pod, forwarding to a Service.
    Standalone,
}

struct Manifest {
    file: &'static str,
    docs: Vec<Value>,
}

impl Manifest {
    fn load(file: &'static str) -> Manifest {
        Manifest {
            file,
            docs: documents(file),
        }
    }

    fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.docs
            .iter()
            .filter(|d| text(d, "/kind") == Some(kind))
            .collect()
    }

    fn config_map(&self, name: &str) -> &Value {
        let found: Vec<_> = self
            .of_kind("ConfigMap")
            .into_iter()
            .filter(|d| text(d, "/metadata/name") == Some(name))
            .collect();
        assert_eq!(found.len(), 1, "{}: ConfigMaps named {name}", self.file);
        found[0]
    }

    /// The one Deployment that runs the proxy, and the proxy's container in it.
    fn proxy(&self) -> (&Value, &Value) {
        let found: Vec<(&Value, &Value)> = self
            .of_kind("Deployment")
            .into_iter()
            .flat_map(|d| {
                list(d, "/spec/template/spec/containers")
                    .iter()
                    .filter(|c| name(c) == PROXY)
                    .map(move |c| (d, c))
            })
            .collect();
        assert_eq!(
            found.len(),
            1,
            "{}: containers named {PROXY} in Deployments",
            self.file
        );
        found[0]
    }

    /// The one object of `kind` named `name`, if the manifest has it.
    fn object(&self, kind: &str, name: &str) -> Option<&Value> {
        let found: Vec<_> = self
            .of_kind(kind)
            .into_iter()
            .filter(|d| text(d, "/metadata/name") == Some(name))
            .collect();
        assert!(found.len() <= 1, "{}: {kind}s named {name}", self.file);
        found.first().copied()
    }

    /// The ConfigMap or Secret key that the pod mounts at `path` in `container`: through a
    /// `configMap` or `secret` volume, or one of the sources of a `projected` volume.
    fn mounted(&self, deployment: &Value, container: &Value, path: &str) -> Option<Mounted> {
        let volumes = list(deployment, "/spec/template/spec/volumes");
        for mount in list(container, "/volumeMounts") {
            let Some(volume) = volumes.iter().find(|v| name(v) == name(mount)) else {
                continue;
            };
            // (kind, object name, items) of each object projected into the volume.
            let mut sources: Vec<(&'static str, &str, &[Value])> = Vec::new();
            if let Some(n) = text(volume, "/configMap/name") {
                sources.push(("ConfigMap", n, list(volume, "/configMap/items")));
            }
            if let Some(n) = text(volume, "/secret/secretName") {
                sources.push(("Secret", n, list(volume, "/secret/items")));
            }
            for source in list(volume, "/projected/sources") {
                if let Some(n) = text(source, "/configMap/name") {
                    sources.push(("ConfigMap", n, list(source, "/configMap/items")));
                }
                if let Some(n) = text(source, "/secret/name") {
                    sources.push(("Secret", n, list(source, "/secret/items")));
                }
            }
            for (kind, object, items) in sources {
                // Where each key appears in the volume: as the items say, else every key of the
                // object under its own name.
                let placed: Vec<(String, String)> = if items.is_empty() {
                    self.object(kind, object)
                        .map(data_keys)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|k| (k.clone(), k))
                        .collect()
                } else {
                    items
                        .iter()
                        .filter_map(|i| Some((text(i, "/key")?.into(), text(i, "/path")?.into())))
                        .collect()
                };
                for (key, in_volume) in placed {
                    let mount_path = text(mount, "/mountPath").unwrap_or_default();
                    let at = match text(mount, "/subPath") {
                        Some(sub) if sub == in_volume => mount_path.to_string(),
                        Some(_) => continue,
                        None => format!("{}/{in_volume}", mount_path.trim_end_matches('/')),
                    };
                    if at == path {
                        return Some(Mounted {
                            kind,
                            name: object.to_string(),
                            key,
                        });
                    }
                }
            }
        }
        None
    }

    /// The text of the ConfigMap key that the pod mounts at `path` in `container`.
    fn mounted_file(&self, deployment: &Value, container: &Value, path: &str) -> Option<String> {
        let m = self.mounted(deployment, container, path)?;
        if m.kind != "ConfigMap" {
            return None;
        }
        self.config_map(&m.name)
            .pointer("/data")
            .and_then(|d| d.get(&m.key))
            .and_then(Value::as_str)
            .map(str::to_string)
    }
}

/// A file in a pod: a key of a ConfigMap or Secret.
#[derive(Debug, PartialEq)]
struct Mounted {
    kind: &'static str,
    name: String,
    key: String,
}

/// The keys of a ConfigMap or Secret.
fn data_keys(object: &Value) -> Vec<String> {
    ["/data", "/stringData", "/binaryData"]
        .into_iter()
        .filter_map(|p| object.pointer(p).and_then(Value::as_object))
        .flat_map(|m| m.keys().cloned())
        .collect()
}

fn env<'a>(container: &'a Value, var: &str) -> Option<&'a str> {
    list(container, "/env")
        .iter()
        .find(|e| name(e) == var)
        .and_then(|e| text(e, "/value"))
}

fn named_port(container: &Value, port_name: &str) -> Option<u16> {
    list(container, "/ports")
        .iter()
        .find(|p| name(p) == port_name)
        .and_then(|p| p.pointer("/containerPort"))
        .and_then(Value::as_u64)
        .and_then(|n| u16::try_from(n).ok())
}

/// A probe's or a Service's port: a number, or the name of one of the container's ports.
fn resolve_port(container: &Value, port: &Value) -> Option<u16> {
    match port {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(s) => named_port(container, s),
        _ => None,
    }
}

fn pre_stop_sleep(container: &Value) -> u64 {
    container
        .pointer("/lifecycle/preStop/sleep/seconds")
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// The settings the proxy container starts with: its environment, and the config file it is
/// pointed at, resolved by the crate itself.
fn proxy_settings(m: &Manifest, deployment: &Value, container: &Value) -> Settings {
    let file = m.file;
    let addr = |var: &str| -> Option<SocketAddr> {
        let v = env(container, var)?;
        Some(
            v.parse()
                .unwrap_or_else(|e| panic!("{file}: {var}={v} is not an address: {e}")),
        )
    };
    let config_file = env(container, "CONSENT_PROXY_CONFIG").map(|path| {
        let text = m
            .mounted_file(deployment, container, path)
            .unwrap_or_else(|| panic!("{file}: nothing is mounted at CONSENT_PROXY_CONFIG {path}"));
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().join("config.yaml");
        std::fs::write(&local, text).unwrap();
        config::load_file(&local).unwrap_or_else(|e| panic!("{file}: config {path}: {e}"))
    });
    config::resolve(
        config_file,
        Overrides {
            listen: addr("CONSENT_PROXY_LISTEN"),
            admin_listen: addr("CONSENT_PROXY_ADMIN_LISTEN"),
            upstream: env(container, "CONSENT_PROXY_UPSTREAM").map(str::to_string),
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("{file}: the proxy's settings do not resolve: {e}"))
}

/// A Service selects the pod if its selector is a non-empty subset of the pod's labels.
fn selects(service: &Value, pod_labels: &serde_json::Map<String, Value>) -> bool {
    service
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .is_some_and(|sel| !sel.is_empty() && sel.iter().all(|(k, v)| pod_labels.get(k) == Some(v)))
}

fn is_loopback_host(authority: &str) -> bool {
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(h, _)| h)
        .trim_matches(['[', ']']);
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether a label selector (`matchLabels`, `matchExpressions`) selects a pod with `labels`. An
/// empty selector is refused: it would select every pod in the namespace.
fn selector_matches(selector: &Value, labels: &serde_json::Map<String, Value>) -> bool {
    let match_labels = selector.pointer("/matchLabels").and_then(Value::as_object);
    let expressions = list(selector, "/matchExpressions");
    if match_labels.is_none_or(|m| m.is_empty()) && expressions.is_empty() {
        return false;
    }
    match_labels
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v))
        && expressions.iter().all(|e| {
            let value = text(e, "/key")
                .and_then(|k| labels.get(k))
                .and_then(Value::as_str);
            let values: Vec<&str> = list(e, "/values")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            match text(e, "/operator") {
                Some("In") => value.is_some_and(|v| values.contains(&v)),
                Some("NotIn") => value.is_none_or(|v| !values.contains(&v)),
                Some("Exists") => value.is_some(),
                Some("DoesNotExist") => value.is_none(),
                _ => false,
            }
        })
}

fn pod_labels(deployment: &Value) -> &serde_json::Map<String, Value> {
    deployment
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object)
        .expect("the pod template has labels")
}

/// The HorizontalPodAutoscalers that scale `deployment`.
fn autoscalers<'a>(m: &'a Manifest, deployment: &Value) -> Vec<&'a Value> {
    m.of_kind("HorizontalPodAutoscaler")
        .into_iter()
        .filter(|h| {
            text(h, "/spec/scaleTargetRef/apiVersion") == Some("apps/v1")
                && text(h, "/spec/scaleTargetRef/kind") == Some("Deployment")
                && text(h, "/spec/scaleTargetRef/name") == text(deployment, "/metadata/name")
        })
        .collect()
}

/// The fewest replicas `deployment` runs: its autoscaler's minimum, else its `replicas`
/// (Kubernetes' defaults are 1 for both).
fn min_replicas(m: &Manifest, deployment: &Value) -> u64 {
    let count = |v: &Value, pointer: &str| v.pointer(pointer).and_then(Value::as_u64).unwrap_or(1);
    match autoscalers(m, deployment).as_slice() {
        [] => count(deployment, "/spec/replicas"),
        hpas => hpas
            .iter()
            .map(|h| count(h, "/spec/minReplicas"))
            .min()
            .unwrap_or(1),
    }
}

/// Checks one manifest against the binary; returns nothing, panics on the first disagreement.
fn check_manifest(file: &'static str, topology: Topology) {
    let m = Manifest::load(file);
    let (deployment, proxy) = m.proxy();
    let pod = deployment.pointer("/spec/template/spec").unwrap();
    let settings = proxy_settings(&m, deployment, proxy);

    // The image and how it is started.
    let image = text(proxy, "/image").unwrap_or_default();
    assert_eq!(
        image.rsplit_once(':').map(|(_, tag)| tag),
        Some(env!("CARGO_PKG_VERSION")),
        "{file}: the proxy image {image} should be tagged with the crate's version"
    );
    assert!(
        proxy.pointer("/command").is_none(),
        "{file}: `command` would replace the image's entrypoint"
    );
    let args = list(proxy, "/args");
    assert!(
        args.is_empty() || args.first().and_then(Value::as_str) == Some("serve"),
        "{file}: the proxy's args must run `serve`: {args:?}"
    );

    // Environment: only variables the binary reads; listeners on every interface (the
    // Service and the kubelet's probes connect to the pod's address) at the default ports.
    let known = serve_env_vars();
    for e in list(proxy, "/env") {
        let var = name(e);
        if var.starts_with("CONSENT_PROXY_") {
            assert!(
                known.contains(var),
                "{file}: {var} is not read by `consent-proxy serve` (it reads {known:?})"
            );
        }
    }
    for (var, port) in [
        ("CONSENT_PROXY_LISTEN", listen_port()),
        ("CONSENT_PROXY_ADMIN_LISTEN", admin_port()),
    ] {
        let value = env(proxy, var).unwrap_or_else(|| panic!("{file}: the proxy sets no {var}"));
        let addr: SocketAddr = value.parse().unwrap();
        assert!(
            addr.ip().is_unspecified(),
            "{file}: {var}={value} is not reachable from outside the pod"
        );
        assert_eq!(
            addr.port(),
            port,
            "{file}: {var}={value}: not the default port"
        );
    }
    assert_eq!(
        pod.pointer("/enableServiceLinks"),
        Some(&Value::Bool(false)),
        "{file}: service links would put CONSENT_PROXY_* variables of a Service named \
         consent-proxy into the proxy's environment"
    );

    // Ports: `http` is the listener, `admin` the admin listener, at the default ports.
    let http = named_port(proxy, "http");
    let admin = named_port(proxy, "admin");
    assert_eq!(http, Some(settings.listen.port()), "{file}: port http");
    assert_eq!(http, Some(listen_port()), "{file}: port http");
    assert_eq!(
        admin,
        Some(settings.admin_listen.port()),
        "{file}: port admin"
    );
    assert_eq!(admin, Some(admin_port()), "{file}: port admin");

    // Probes: the admin endpoints, over plain HTTP on the admin port.
    for (probe, path) in [("livenessProbe", HEALTHZ), ("readinessProbe", READYZ)] {
        let get = proxy
            .pointer(&format!("/{probe}/httpGet"))
            .unwrap_or_else(|| panic!("{file}: the proxy has no {probe}.httpGet"));
        assert_eq!(text(get, "/path"), Some(path), "{file}: {probe} path");
        let port = get.pointer("/port").unwrap_or(&Value::Null);
        assert_eq!(
            resolve_port(proxy, port),
            Some(admin_port()),
            "{file}: {probe} port {port} is not the admin port"
        );
        assert!(
            matches!(text(get, "/scheme"), None | Some("HTTP")),
            "{file}: {probe}: the admin listener speaks plain HTTP"
        );
    }

    // The policy: the ConfigMap's policy.yaml compiles and is the file the proxy loads.
    let policy_text = text(m.config_map(POLICY_CONFIGMAP), "/data/policy.yaml")
        .unwrap_or_else(|| panic!("{file}: {POLICY_CONFIGMAP} has no policy.yaml"));
    if let Err(e) = consent_proxy::policy::compile("policy.yaml", policy_text) {
        panic!("{file}: policy.yaml does not compile: {e}");
    }
    let policy_path = env(proxy, "CONSENT_PROXY_POLICY")
        .unwrap_or_else(|| panic!("{file}: the proxy sets no CONSENT_PROXY_POLICY"));
    assert_eq!(
        m.mounted_file(deployment, proxy, policy_path).as_deref(),
        Some(policy_text),
        "{file}: {POLICY_CONFIGMAP}'s policy.yaml is not mounted at CONSENT_PROXY_POLICY \
         {policy_path}"
    );

    // Security: non-root, read-only, no privileges. The container's settings override the
    // pod's.
    let security = |key: &str| -> Option<&Value> {
        proxy
            .pointer(&format!("/securityContext/{key}"))
            .or_else(|| pod.pointer(&format!("/securityContext/{key}")))
    };
    assert_eq!(
        security("runAsNonRoot"),
        Some(&Value::Bool(true)),
        "{file}: runAsNonRoot"
    );
    if let Some(uid) = security("runAsUser") {
        assert_ne!(uid.as_u64(), Some(0), "{file}: runAsUser is root");
    }
    let container_security = |key: &str| proxy.pointer(&format!("/securityContext/{key}"));
    assert_eq!(
        container_security("readOnlyRootFilesystem"),
        Some(&Value::Bool(true)),
        "{file}: readOnlyRootFilesystem"
    );
    assert_eq!(
        container_security("allowPrivilegeEscalation"),
        Some(&Value::Bool(false)),
        "{file}: allowPrivilegeEscalation"
    );
    assert!(
        list(proxy, "/securityContext/capabilities/drop")
            .iter()
            .any(|c| c.as_str() == Some("ALL")),
        "{file}: capabilities are not all dropped"
    );
    assert!(
        list(proxy, "/securityContext/capabilities/add").is_empty(),
        "{file}: capabilities added"
    );
    assert!(
        text(proxy, "/resources/limits/memory").is_some()
            && text(proxy, "/resources/requests/memory").is_some(),
        "{file}: the proxy needs a memory request and limit"
    );

    // Drain: the preStop sleep (endpoints removed), then shutdown_grace for requests in
    // flight, all within terminationGracePeriodSeconds, with a second to spare.
    let grace = ceil_secs(settings.timeouts.shutdown_grace);
    let sleep = pre_stop_sleep(proxy);
    let termination = pod
        .pointer("/terminationGracePeriodSeconds")
        .and_then(Value::as_u64)
        .unwrap_or(30); // Kubernetes' default
    assert!(
        sleep > 0,
        "{file}: the proxy needs a preStop sleep so that endpoints are removed before SIGTERM"
    );
    assert!(
        termination > sleep + grace,
        "{file}: terminationGracePeriodSeconds {termination} < preStop {sleep} s + \
         shutdown_grace {grace} s + 1"
    );

    // The pod's labels select it, and its Service sends visitors to the proxy's listener.
    let labels = deployment
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("{file}: the pod template has no labels"));
    let match_labels = deployment
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("{file}: the Deployment has no selector"));
    assert!(
        match_labels.iter().all(|(k, v)| labels.get(k) == Some(v)),
        "{file}: the Deployment's selector does not match its pod template"
    );
    let services: Vec<&Value> = m
        .of_kind("Service")
        .into_iter()
        .filter(|s| selects(s, labels))
        .collect();
    assert!(
        !services.is_empty(),
        "{file}: no Service selects the proxy's pod"
    );
    // One site: the manifests configure a single upstream, not `sites`.
    assert_eq!(
        settings.sites.len(),
        1,
        "{file}: the proxy serves one site ({:?})",
        settings.sites.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    let site = &settings.sites[0].upstream;
    let upstream = site.authority.as_str();
    let upstream_port =
        site.authority
            .port_u16()
            .unwrap_or(if site.scheme == http::uri::Scheme::HTTPS {
                443
            } else {
                80
            });
    let others: Vec<&Value> = list(pod, "/containers")
        .iter()
        .filter(|c| name(c) != PROXY)
        .collect();
    for service in services {
        let ports = list(service, "/spec/ports");
        assert!(
            !ports.is_empty(),
            "{file}: Service {} has no ports",
            name(service)
        );
        for p in ports {
            let target = p
                .pointer("/targetPort")
                .or_else(|| p.pointer("/port"))
                .unwrap();
            assert_eq!(
                resolve_port(proxy, target),
                Some(settings.listen.port()),
                "{file}: Service {} targets {target}, not the proxy's listener",
                name(service)
            );
            if let Value::String(port_name) = target {
                for other in &others {
                    assert!(
                        named_port(other, port_name).is_none(),
                        "{file}: container {} also has a port named {port_name}",
                        name(other)
                    );
                }
            }
            if topology == Topology::Sidecar {
                assert_ne!(
                    resolve_port(proxy, target),
                    Some(upstream_port),
                    "{file}: Service {} targets the site's port, bypassing the proxy",
                    name(service)
                );
            }
        }
    }

    match topology {
        Topology::Sidecar => {
            assert!(
                is_loopback_host(upstream),
                "{file}: a sidecar forwards over loopback, not to {upstream}"
            );
            assert!(
                !others.is_empty(),
                "{file}: the sidecar's pod has no site container"
            );
            assert_ne!(
                upstream_port,
                settings.listen.port(),
                "{file}: the site and the proxy listen on the same port"
            );
            assert_ne!(
                upstream_port,
                settings.admin_listen.port(),
                "{file}: the site and the admin listener use the same port"
            );
            for other in &others {
                // The site gets SIGTERM when its own preStop ends; it must keep serving until
                // the proxy has drained.
                let other_sleep = pre_stop_sleep(other);
                assert!(
                    other_sleep >= sleep + grace,
                    "{file}: container {} stops after {other_sleep} s, before the proxy has \
                     drained ({sleep} s + {grace} s)",
                    name(other)
                );
                assert!(
                    termination > other_sleep,
                    "{file}: container {} is killed during its preStop sleep",
                    name(other)
                );
                for p in list(other, "/ports") {
                    assert_ne!(
                        p.pointer("/containerPort").and_then(Value::as_u64),
                        Some(u64::from(settings.listen.port())),
                        "{file}: container {} declares the proxy's port",
                        name(other)
                    );
                }
            }
        }
        Topology::Standalone => {
            assert!(
                others.is_empty(),
                "{file}: the standalone pod runs only the proxy"
            );
            assert!(
                !is_loopback_host(upstream),
                "{file}: a standalone proxy cannot reach a site on loopback ({upstream})"
            );
            assert!(
                min_replicas(&m, deployment) >= 2,
                "{file}: run at least two replicas, so that a rollout or a node drain never \
                 leaves the site unreachable"
            );
        }
    }
}

#[test]
fn sidecar_manifest_matches_the_binary() {
    check_manifest(SIDECAR, Topology::Sidecar);
}

#[test]
fn standalone_manifest_matches_the_binary() {
    check_manifest(STANDALONE, Topology::Standalone);
}

#[test]
fn manifests_agree_with_each_other() {
    let sidecar = Manifest::load(SIDECAR);
    let standalone = Manifest::load(STANDALONE);
    let (sd, sc) = sidecar.proxy();
    let (td, tc) = standalone.proxy();
    for key in [
        "/image",
        "/args",
        "/ports",
        "/livenessProbe",
        "/readinessProbe",
        "/lifecycle",
        "/securityContext",
        // The same process needs the same memory; the CPU requests differ (the shared tier's is
        // the autoscaler's yardstick).
        "/resources/limits",
        "/resources/requests/memory",
        "/volumeMounts",
    ] {
        assert_eq!(
            sc.pointer(key),
            tc.pointer(key),
            "the proxy containers differ at {key}"
        );
    }
    let env_without_upstream = |c: &Value| -> Vec<Value> {
        list(c, "/env")
            .iter()
            .filter(|e| name(e) != "CONSENT_PROXY_UPSTREAM")
            .cloned()
            .collect()
    };
    assert_eq!(
        env_without_upstream(sc),
        env_without_upstream(tc),
        "the proxy containers' environments differ"
    );
    let term = "/spec/template/spec/terminationGracePeriodSeconds";
    assert_eq!(
        sd.pointer(term),
        td.pointer(term),
        "terminationGracePeriodSeconds differ"
    );
    let data = |m: &Manifest, key: &str| -> String {
        text(m.config_map(POLICY_CONFIGMAP), &format!("/data/{key}"))
            .unwrap_or_else(|| panic!("{}: {POLICY_CONFIGMAP} has no {key}", m.file))
            .to_string()
    };
    assert_eq!(
        data(&sidecar, "policy.yaml"),
        data(&standalone, "policy.yaml"),
        "the {POLICY_CONFIGMAP} ConfigMaps' policies differ"
    );
    // The configs differ only in what several replicas share.
    let config_without_shared_state = |m: &Manifest| -> Value {
        let mut config: Value = serde_yaml::from_str(&data(m, "config.yaml"))
            .unwrap_or_else(|e| panic!("{}: config.yaml: {e}", m.file));
        if let Some(map) = config.as_object_mut() {
            for key in SHARED_STATE {
                map.remove(key);
            }
        }
        config
    };
    assert_eq!(
        config_without_shared_state(&sidecar),
        config_without_shared_state(&standalone),
        "the {POLICY_CONFIGMAP} ConfigMaps' configs differ in more than {SHARED_STATE:?}"
    );
    assert_ne!(
        env(sc, "CONSENT_PROXY_UPSTREAM"),
        env(tc, "CONSENT_PROXY_UPSTREAM"),
        "a sidecar and a standalone proxy cannot forward to the same place"
    );
}

// ---- The standalone proxy as a shared tier ------------------------------------------------

#[test]
fn standalone_autoscaler_scales_the_proxy_deployment() {
    let m = Manifest::load(STANDALONE);
    let (deployment, _) = m.proxy();
    let all = m.of_kind("HorizontalPodAutoscaler");
    assert_eq!(all.len(), 1, "{STANDALONE}: HorizontalPodAutoscalers");
    let hpa = all[0];
    assert_eq!(
        text(hpa, "/apiVersion"),
        Some("autoscaling/v2"),
        "{STANDALONE}: the autoscaler's API"
    );
    let target = hpa.pointer("/spec/scaleTargetRef").unwrap_or(&Value::Null);
    assert_eq!(
        autoscalers(&m, deployment),
        [hpa],
        "{STANDALONE}: the autoscaler's scaleTargetRef {target} is not the proxy's Deployment \
         (apps/v1, Deployment, {})",
        name(deployment)
    );

    let min = min_replicas(&m, deployment);
    let max = hpa
        .pointer("/spec/maxReplicas")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    assert!(
        min >= 2,
        "{STANDALONE}: minReplicas {min}: a single replica leaves the site unreachable while it \
         restarts"
    );
    assert!(
        max > min,
        "{STANDALONE}: maxReplicas {max} leaves nothing to scale above minReplicas {min}"
    );
    assert!(
        deployment.pointer("/spec/replicas").is_none(),
        "{STANDALONE}: with an autoscaler the Deployment must not set replicas: every \
         `kubectl apply` would reset the count the autoscaler chose"
    );

    // CPU utilization is a percentage of the CPU request: without a request on every container
    // of the pod the autoscaler cannot compute it and never scales.
    let cpu: Vec<&Value> = list(hpa, "/spec/metrics")
        .iter()
        .filter(|x| {
            text(x, "/type") == Some("Resource") && text(x, "/resource/name") == Some("cpu")
        })
        .collect();
    assert!(
        !cpu.is_empty(),
        "{STANDALONE}: the autoscaler has no CPU metric"
    );
    for metric in cpu {
        if text(metric, "/resource/target/type") == Some("Utilization") {
            assert!(
                metric
                    .pointer("/resource/target/averageUtilization")
                    .and_then(Value::as_u64)
                    .is_some_and(|u| u > 0),
                "{STANDALONE}: the CPU target has no averageUtilization"
            );
            for c in list(deployment, "/spec/template/spec/containers") {
                assert!(
                    c.pointer("/resources/requests/cpu").is_some(),
                    "{STANDALONE}: container {} has no CPU request, which the autoscaler's \
                     utilization target needs",
                    name(c)
                );
            }
        }
    }

    // Scaling down waits for the load to stay low, so that a dip does not drain replicas that
    // the next minute needs again.
    let window = hpa
        .pointer("/spec/behavior/scaleDown/stabilizationWindowSeconds")
        .and_then(Value::as_u64);
    assert!(
        window.is_some_and(|w| w >= 60),
        "{STANDALONE}: the autoscaler's scale-down stabilization window ({window:?}) should be \
         at least a minute"
    );
}

#[test]
fn standalone_disruption_budget_and_spread_select_the_proxy_pods() {
    let m = Manifest::load(STANDALONE);
    let (deployment, _) = m.proxy();
    let labels = pod_labels(deployment);

    let budgets = m.of_kind("PodDisruptionBudget");
    assert_eq!(budgets.len(), 1, "{STANDALONE}: PodDisruptionBudgets");
    let pdb = budgets[0];
    assert_eq!(text(pdb, "/apiVersion"), Some("policy/v1"));
    let selector = pdb.pointer("/spec/selector").unwrap_or(&Value::Null);
    assert!(
        selector_matches(selector, labels),
        "{STANDALONE}: the PodDisruptionBudget's selector {selector} does not select the proxy's \
         pods {labels:?}"
    );
    let max_unavailable = pdb.pointer("/spec/maxUnavailable");
    assert_eq!(
        max_unavailable.and_then(Value::as_u64),
        Some(1),
        "{STANDALONE}: the PodDisruptionBudget should let one replica at a time go \
         (maxUnavailable: 1), found {max_unavailable:?}"
    );
    assert!(
        min_replicas(&m, deployment) > 1,
        "{STANDALONE}: with maxUnavailable 1 a single replica may be evicted, taking the site down"
    );

    let constraints = list(deployment, "/spec/template/spec/topologySpreadConstraints");
    for c in constraints {
        let selector = c.pointer("/labelSelector").unwrap_or(&Value::Null);
        assert!(
            selector_matches(selector, labels),
            "{STANDALONE}: the topology spread constraint over {} selects {selector}, not the \
             proxy's pods {labels:?}: it would spread nothing",
            text(c, "/topologyKey").unwrap_or("?")
        );
        assert!(
            c.pointer("/maxSkew")
                .and_then(Value::as_u64)
                .is_some_and(|s| s >= 1),
            "{STANDALONE}: maxSkew"
        );
    }
    let on = |key: &str| -> &Value {
        constraints
            .iter()
            .find(|c| text(c, "/topologyKey") == Some(key))
            .unwrap_or_else(|| panic!("{STANDALONE}: the pods are not spread over {key}"))
    };
    on("kubernetes.io/hostname");
    assert_eq!(
        text(on("topology.kubernetes.io/zone"), "/whenUnsatisfiable"),
        Some("ScheduleAnyway"),
        "{STANDALONE}: spreading over zones must not keep a replica from starting in a \
         cluster with a single zone or a full one"
    );
}

#[test]
fn standalone_rollout_keeps_capacity_and_drains_within_the_grace_period() {
    let m = Manifest::load(STANDALONE);
    let (deployment, proxy) = m.proxy();

    // A new pod is ready before an old one goes.
    let strategy = deployment.pointer("/spec/strategy").unwrap_or(&Value::Null);
    assert_eq!(
        text(strategy, "/type"),
        Some("RollingUpdate"),
        "{STANDALONE}: strategy"
    );
    assert_eq!(
        strategy.pointer("/rollingUpdate/maxUnavailable"),
        Some(&Value::from(0)),
        "{STANDALONE}: a rollout must not take a replica away before its replacement is ready"
    );
    assert_eq!(
        strategy.pointer("/rollingUpdate/maxSurge"),
        Some(&Value::from(1)),
        "{STANDALONE}: with maxUnavailable 0 a rollout needs maxSurge to make progress"
    );

    // The kubelet kills the pod terminationGracePeriodSeconds after the preStop hook starts:
    // the hook's sleep and the proxy's shutdown_grace (from its config, as the crate reads it)
    // must both fit, with a second to spare.
    let settings = proxy_settings(&m, deployment, proxy);
    let grace = ceil_secs(settings.timeouts.shutdown_grace);
    let sleep = pre_stop_sleep(proxy);
    let termination = deployment
        .pointer("/spec/template/spec/terminationGracePeriodSeconds")
        .and_then(Value::as_u64)
        .unwrap_or(30);
    assert!(sleep > 0, "{STANDALONE}: the proxy has no preStop sleep");
    assert!(
        termination > sleep + grace,
        "{STANDALONE}: terminationGracePeriodSeconds {termination} <= preStop {sleep} s + \
         shutdown_grace {grace} s"
    );
}

/// The bytes of a Secret's key as the pod sees them: `stringData` as written, `data` decoded.
fn secret_bytes(secret: &Value, key: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    if let Some(s) = secret.pointer("/stringData").and_then(|d| d.get(key)) {
        return s.as_str().map(|s| s.as_bytes().to_vec());
    }
    let encoded = secret.pointer("/data").and_then(|d| d.get(key))?.as_str()?;
    Some(
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap_or_else(|e| panic!("Secret {}: data.{key} is not base64: {e}", name(secret))),
    )
}

#[test]
fn standalone_replicas_share_the_key_and_the_records() {
    use consent_proxy::audit::ip::{IpMode, Secret};
    use consent_proxy::config::{PostgresUrl, RecordBackend};

    let m = Manifest::load(STANDALONE);
    let (deployment, proxy) = m.proxy();
    let settings = proxy_settings(&m, deployment, proxy);

    // The file at `path` comes from the Secret `secret`, which the manifest gives with that key.
    let from_secret = |what: &str, path: &Path, secret: &str| -> Vec<u8> {
        let at = path.to_str().unwrap();
        let mounted = m
            .mounted(deployment, proxy, at)
            .unwrap_or_else(|| panic!("{STANDALONE}: nothing is mounted at {what} {at}"));
        assert_eq!(
            (mounted.kind, mounted.name.as_str()),
            ("Secret", secret),
            "{STANDALONE}: {what} {at} should come from the Secret {secret}"
        );
        let object = m
            .object("Secret", secret)
            .unwrap_or_else(|| panic!("{STANDALONE}: no Secret {secret}"));
        secret_bytes(object, &mounted.key).unwrap_or_else(|| {
            panic!(
                "{STANDALONE}: the Secret {secret} has no key {} (mounted at {at})",
                mounted.key
            )
        })
    };

    // One client-address key for all replicas: the same visitor, the same pseudonym, and a
    // banner form rendered by one replica accepted by another.
    assert!(
        matches!(settings.client_ip, IpMode::Hmac { .. }),
        "{STANDALONE}: client_ip should be `mode: hmac` with a shared key_file, found {:?}",
        settings.client_ip
    );
    let key_file = settings.client_ip.key_file().unwrap_or_else(|| {
        panic!(
            "{STANDALONE}: client_ip has no key_file: each replica would draw its own key, so \
             one visitor gets a pseudonym per replica and banner forms fail across replicas"
        )
    });
    let placeholder = from_secret("client_ip.key_file", key_file, KEYS_SECRET);
    // The manifest's placeholder is public: the proxy must refuse it rather than run with it.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("client-ip.key");
    std::fs::write(&copy, &placeholder).unwrap();
    assert!(
        Secret::read(&copy).is_err(),
        "{STANDALONE}: the placeholder in the Secret {KEYS_SECRET} is accepted as a key; it must \
         be too short to be used by mistake"
    );

    // One database for the consent records of all replicas.
    match &settings.consent_records.backend {
        RecordBackend::Postgres {
            url: PostgresUrl::File(url_file),
        } => {
            let url = from_secret("consent_records.url_file", url_file, DB_SECRET);
            let url = String::from_utf8(url).unwrap();
            assert!(
                url.trim().starts_with("postgres://") || url.trim().starts_with("postgresql://"),
                "{STANDALONE}: the Secret {DB_SECRET} should hold a postgres:// URL"
            );
        }
        other => panic!(
            "{STANDALONE}: consent_records should be `store: postgres` with a url_file from the \
             Secret {DB_SECRET}, so that every replica records into one database; found {other:?}"
        ),
    }
}

#[test]
fn kubernetes_schemas_accept_the_manifests_and_reject_a_broken_copy() {
    const SCRIPT: &str = "scripts/kube-validate";
    let run = |files: &[&Path]| -> (Option<i32>, String) {
        let out = Command::new(root().join(SCRIPT))
            .arg("--no-install")
            .args(files)
            .output()
            .unwrap_or_else(|e| panic!("run {SCRIPT}: {e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() == Some(3) {
            panic!(
                "{stderr}\nThe Kubernetes schema validator (kubernetes-validate, from PyPI) is not \
                 installed. Run scripts/kube-validate once (it installs the pinned version), or \
                 scripts/test."
            );
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        (out.status.code(), format!("{stdout}{stderr}"))
    };

    // The manifests as they are (the script's default: deploy/kubernetes/*.yaml).
    let (code, output) = run(&[]);
    assert_eq!(code, Some(0), "{SCRIPT} rejects the manifests:\n{output}");
    for file in [SIDECAR, STANDALONE] {
        assert!(
            output.contains(&format!("ok    {file}:")),
            "{SCRIPT} did not check {file}:\n{output}"
        );
    }

    // Broken copies: each mistake is caught, and named.
    let original = read(STANDALONE);
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("standalone.yaml");
    for (mistake, from, to, named) in [
        (
            "a misspelt field",
            "minReplicas: 2",
            "minReplica: 2",
            "'minReplica' was unexpected",
        ),
        (
            "a field in the wrong place",
            "    rollingUpdate:\n      maxUnavailable: 0\n",
            "    maxUnavailable: 0\n    rollingUpdate:\n",
            "spec.strategy: Additional properties are not allowed ('maxUnavailable'",
        ),
        (
            "a wrong type",
            "maxReplicas: 10",
            "maxReplicas: ten",
            "spec.maxReplicas",
        ),
        (
            "an API Kubernetes does not have",
            "apiVersion: autoscaling/v2",
            "apiVersion: autoscaling/v9",
            "autoscaling/v9",
        ),
    ] {
        assert!(
            original.contains(from),
            "{STANDALONE} no longer contains {from:?}: update this test"
        );
        std::fs::write(&broken, original.replacen(from, to, 1)).unwrap();
        let (code, output) = run(&[&broken]);
        assert_eq!(
            code,
            Some(1),
            "{SCRIPT} accepts {STANDALONE} with {mistake}:\n{output}"
        );
        assert!(
            output.contains(named),
            "{SCRIPT} does not name {mistake} ({named}):\n{output}"
        );
    }
}

// ---- Dockerfile ---------------------------------------------------------------------------

struct Instruction {
    keyword: String,
    args: String,
}

struct Stage {
    from: String,
    name: Option<String>,
    instructions: Vec<Instruction>,
}

impl Stage {
    fn all<'a>(&'a self, keyword: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.instructions
            .iter()
            .filter(move |i| i.keyword == keyword)
            .map(|i| i.args.as_str())
    }
}

/// The Dockerfile's stages: comments dropped, continuation lines joined.
fn dockerfile() -> Vec<Stage> {
    let text = read(DOCKERFILE);
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                logical.push(std::mem::take(&mut current));
            }
        }
    }
    assert!(
        current.trim().is_empty(),
        "{DOCKERFILE} ends in a continuation"
    );
    let mut stages: Vec<Stage> = Vec::new();
    for line in logical.iter().filter(|l| !l.trim().is_empty()) {
        let (keyword, args) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let keyword = keyword.to_ascii_uppercase();
        let args = args.trim().to_string();
        if keyword == "FROM" {
            let words: Vec<&str> = args.split_whitespace().collect();
            let from = words
                .iter()
                .find(|w| !w.starts_with("--"))
                .unwrap_or_else(|| panic!("{DOCKERFILE}: FROM without an image"));
            let name = words
                .iter()
                .position(|w| w.eq_ignore_ascii_case("AS"))
                .and_then(|i| words.get(i + 1));
            stages.push(Stage {
                from: from.to_string(),
                name: name.map(|n| n.to_string()),
                instructions: Vec::new(),
            });
        } else {
            stages
                .last_mut()
                .unwrap_or_else(|| panic!("{DOCKERFILE}: {keyword} before FROM"))
                .instructions
                .push(Instruction { keyword, args });
        }
    }
    stages
}

/// `ENV K=V K2=V2` or the old `ENV K V`.
fn env_pairs(args: &str) -> Vec<(String, String)> {
    let first = args.split_whitespace().next().unwrap_or_default();
    if !first.contains('=') {
        let (k, v) = args.split_once(char::is_whitespace).unwrap_or((args, ""));
        return vec![(k.to_string(), v.trim().to_string())];
    }
    args.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect()
}

fn json_form(keyword: &str, args: &str) -> Vec<String> {
    serde_json::from_str(args).unwrap_or_else(|e| {
        panic!("{DOCKERFILE}: {keyword} {args}: use the JSON (exec) form, so that signals reach the proxy: {e}")
    })
}

/// Directories outside src/ that the library's sources embed (`include_str!`,
/// `include_bytes!`), relative to the repository root. Fixtures under tests/ are only
/// embedded by `#[cfg(test)]` modules and are not needed for a release build.
fn embedded_dirs() -> BTreeSet<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&root().join("src"), &mut files);
    let mut dirs = BTreeSet::new();
    for file in files {
        let source = std::fs::read_to_string(&file).unwrap();
        for macro_name in ["include_str!(\"", "include_bytes!(\""] {
            for rest in source.split(macro_name).skip(1) {
                let relative = rest.split('"').next().unwrap_or_default();
                let mut path = PathBuf::new();
                for c in file.parent().unwrap().join(relative).components() {
                    match c {
                        Component::ParentDir => {
                            path.pop();
                        }
                        Component::CurDir => {}
                        c => path.push(c),
                    }
                }
                let within = path.strip_prefix(root()).unwrap_or_else(|_| {
                    panic!("{}: embeds {relative}, outside the crate", file.display())
                });
                let top = within.components().next().unwrap();
                let top = top.as_os_str().to_string_lossy().into_owned();
                if top != "src" && top != "tests" {
                    dirs.insert(top);
                }
            }
        }
    }
    dirs
}

#[test]
fn dockerfile_matches_the_binary_and_the_manifests() {
    let stages = dockerfile();
    assert!(
        stages.len() >= 2,
        "{DOCKERFILE}: build and runtime stages expected"
    );
    let runtime = stages.last().unwrap();

    // The builder builds the release binary from the lock file, with every input it needs.
    let builder = stages
        .iter()
        .find(|s| {
            s.all("RUN")
                .any(|r| r.contains("cargo build --release --locked"))
        })
        .unwrap_or_else(|| panic!("{DOCKERFILE}: no stage runs cargo build --release --locked"));
    assert!(
        !std::ptr::eq(builder, runtime),
        "{DOCKERFILE}: the runtime stage must not carry the toolchain"
    );
    let mut copied = BTreeSet::new();
    for stage in &stages {
        for args in stage.all("COPY") {
            if args.contains("--from") {
                continue;
            }
            assert!(
                !args.starts_with('['),
                "{DOCKERFILE}: COPY {args}: use the plain form"
            );
            let words: Vec<&str> = args
                .split_whitespace()
                .filter(|w| !w.starts_with("--"))
                .collect();
            assert!(words.len() >= 2, "{DOCKERFILE}: COPY {args}");
            for source in &words[..words.len() - 1] {
                assert!(
                    root().join(source).exists(),
                    "{DOCKERFILE}: COPY {source}: no such file in the build context"
                );
                if std::ptr::eq(stage, builder) {
                    copied.insert(source.trim_end_matches('/').to_string());
                }
            }
        }
    }
    let mut needed: BTreeSet<String> = ["Cargo.toml", "Cargo.lock", "src"]
        .into_iter()
        .map(String::from)
        .collect();
    needed.extend(embedded_dirs());
    if read("Cargo.toml").contains("[[bench]]") {
        // Declared bench targets must exist for Cargo to read the manifest.
        needed.insert("benches".into());
    }
    assert!(
        needed.contains("policies"),
        "the built-in policy is no longer embedded?"
    );
    for n in &needed {
        assert!(
            copied.contains(n),
            "{DOCKERFILE}: the build stage does not copy {n} (copies {copied:?})"
        );
    }

    // glibc: the runtime image is the Debian release the binary was built on.
    let debian = |image: &str| -> Option<u32> {
        [("bullseye", 11), ("bookworm", 12), ("trixie", 13)]
            .into_iter()
            .find(|(codename, n)| image.contains(codename) || image.contains(&format!("debian{n}")))
            .map(|(_, n)| n)
    };
    assert!(
        debian(&builder.from).is_some() && debian(&builder.from) == debian(&runtime.from),
        "{DOCKERFILE}: built on {} but run on {}: glibc may not match",
        builder.from,
        runtime.from
    );

    // The runtime stage: the binary from the builder, run as a non-root user.
    let entrypoint = json_form(
        "ENTRYPOINT",
        runtime
            .all("ENTRYPOINT")
            .last()
            .unwrap_or_else(|| panic!("{DOCKERFILE}: no ENTRYPOINT")),
    );
    let binary = entrypoint.first().expect("ENTRYPOINT is empty").clone();
    let from_builder = format!(
        "--from={}",
        builder
            .name
            .as_deref()
            .unwrap_or_else(|| panic!("{DOCKERFILE}: name the build stage"))
    );
    assert!(
        runtime.all("COPY").any(|c| {
            c.split_whitespace().next() == Some(from_builder.as_str())
                && c.split_whitespace().last() == Some(binary.as_str())
        }),
        "{DOCKERFILE}: the runtime stage does not copy the built binary to {binary}"
    );
    let cmd = json_form(
        "CMD",
        runtime
            .all("CMD")
            .last()
            .unwrap_or_else(|| panic!("{DOCKERFILE}: no CMD")),
    );
    assert_eq!(cmd, ["serve"], "{DOCKERFILE}: CMD");
    let user = runtime
        .all("USER")
        .last()
        .unwrap_or_else(|| panic!("{DOCKERFILE}: the runtime stage sets no USER"));
    let uid = user.split(':').next().unwrap_or_default();
    assert!(
        uid == "nonroot" || uid.parse::<u32>().is_ok_and(|u| u != 0),
        "{DOCKERFILE}: USER {user} is not a non-root user of the runtime image"
    );

    // EXPOSE and ENV: the default ports, on every interface, by variables the binary reads.
    let exposed: BTreeSet<u16> = runtime
        .all("EXPOSE")
        .flat_map(str::split_whitespace)
        .map(|p| p.trim_end_matches("/tcp").parse().unwrap())
        .collect();
    for port in [listen_port(), admin_port()] {
        assert!(
            exposed.contains(&port),
            "{DOCKERFILE}: EXPOSE {exposed:?} lacks the default port {port}"
        );
    }
    let envs: Vec<(String, String)> = runtime.all("ENV").flat_map(env_pairs).collect();
    let known = serve_env_vars();
    for (k, _) in &envs {
        if k.starts_with("CONSENT_PROXY_") {
            assert!(
                known.contains(k),
                "{DOCKERFILE}: {k} is not read by `serve`"
            );
        }
    }
    for (var, port) in [
        ("CONSENT_PROXY_LISTEN", listen_port()),
        ("CONSENT_PROXY_ADMIN_LISTEN", admin_port()),
    ] {
        let value = envs
            .iter()
            .rev()
            .find(|(k, _)| k == var)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("{DOCKERFILE}: no ENV {var}"));
        let addr: SocketAddr = value
            .parse()
            .unwrap_or_else(|e| panic!("{DOCKERFILE}: {var}={value}: {e}"));
        assert!(
            addr.ip().is_unspecified(),
            "{DOCKERFILE}: {var}={value} is unreachable from outside the container"
        );
        assert_eq!(
            addr.port(),
            port,
            "{DOCKERFILE}: {var}={value}: not the default port"
        );
    }

    // The manifests' container ports are the ones the image exposes.
    for file in [SIDECAR, STANDALONE] {
        let m = Manifest::load(file);
        let (_, proxy) = m.proxy();
        let ports: BTreeSet<u16> = list(proxy, "/ports")
            .iter()
            .filter_map(|p| p.pointer("/containerPort").and_then(Value::as_u64))
            .map(|p| u16::try_from(p).unwrap())
            .collect();
        assert_eq!(ports, exposed, "{file}: container ports differ from EXPOSE");
    }
}
