//! Prometheus metrics, served on the admin listener in the OpenMetrics text format.

use crate::audit::Decision;
use crate::category::Category;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Duration;

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The site a request was for (`sites[].name`, `default` without `sites`); empty for a request
/// refused as for no site.
type Site = Option<Arc<str>>;

/// The `decisions` series of one site, `[granted, denied]` per non-necessary category.
type DecisionSeries = Vec<(Category, [Counter; 2])>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    site: Site,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    site: Site,
    category: &'static str,
    /// `granted` or `denied`.
    action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabel {
    site: Site,
    /// `request` (withheld from the site) or `response` (a dropped `Set-Cookie`).
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SiteLabel {
    site: Site,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    /// `accept`, `reject`, `settings` or `withdrawal`.
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// Every metric the proxy keeps.
pub struct Metrics {
    registry: Registry,
    requests: Family<StatusLabel, Counter>,
    decisions: Family<DecisionLabels, Counter>,
    /// Per site, the `decisions` series, `[granted, denied]` per non-necessary category (in
    /// `Category::ALL` order), looked up once instead of per request.
    /// Sites added on a reload join it.
    decision_series: arc_swap::ArcSwap<Vec<(Site, DecisionSeries)>>,
    cookies_stripped: Family<DirectionLabel, Counter>,
    tags_neutralized: Family<SiteLabel, Counter>,
    blocked: Family<SiteLabel, Counter>,
    upstream_latency: Histogram,
    in_flight: Gauge,
    reloads: Family<ResultLabel, Counter>,
    memo: Family<ResultLabel, Counter>,
    headers_dropped: Family<ReasonLabel, Counter>,
    connections_failed: Family<ReasonLabel, Counter>,
    consent_choices: Family<KindLabel, Counter>,
    consent_record_failures: Counter,
    /// 1 while a site's banner is on and no store of consent records could be opened for it.
    banner_hidden: Gauge,
    started: std::sync::atomic::AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(&[])
    }
}

impl Metrics {
    /// Metrics with the `decisions` series of these sites looked up in advance.
    pub fn new(sites: &[Arc<str>]) -> Metrics {
        let mut registry = Registry::with_prefix("consent_proxy");
        let m = Metrics {
            requests: Family::default(),
            decisions: Family::default(),
            decision_series: Default::default(),
            cookies_stripped: Family::default(),
            tags_neutralized: Family::default(),
            blocked: Family::default(),
            // 1 ms to about 33 s.
            upstream_latency: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            in_flight: Gauge::default(),
            reloads: Family::default(),
            memo: Family::default(),
            headers_dropped: Family::default(),
            connections_failed: Family::default(),
            consent_choices: Family::default(),
            consent_record_failures: Counter::default(),
            banner_hidden: Gauge::default(),
            started: Default::default(),
            registry: Registry::default(),
        };
        registry.register(
            "requests",
            "Requests answered, by status",
            m.requests.clone(),
        );
        registry.register(
            "decisions",
            "Consent decisions per request and category: granted or denied",
            m.decisions.clone(),
        );
        registry.register(
            "cookies_stripped",
            "Cookies withheld from the site (request) or dropped from Set-Cookie (response)",
            m.cookies_stripped.clone(),
        );
        registry.register(
            "tags_neutralized",
            "HTML tags neutralized or removed",
            m.tags_neutralized.clone(),
        );
        registry.register(
            "requests_blocked",
            "Requests to tracking endpoints answered locally",
            m.blocked.clone(),
        );
        registry.register(
            "upstream_response_seconds",
            "Time from sending a request upstream to its response headers",
            m.upstream_latency.clone(),
        );
        registry.register(
            "in_flight_requests",
            "Requests being handled, bodies included",
            m.in_flight.clone(),
        );
        registry.register(
            "policy_reloads",
            "Policy and config reloads, by result",
            m.reloads.clone(),
        );
        registry.register(
            "rewrite_memo",
            "HTML documents small enough to remember: answered from the rewrite memo (hit) or rewritten (miss)",
            m.memo.clone(),
        );
        registry.register(
            "request_headers_dropped",
            "Request header lines removed before the request went upstream, by reason",
            m.headers_dropped.clone(),
        );
        registry.register(
            "connections_failed",
            "Client connections that ended in an error or were refused, by reason",
            m.connections_failed.clone(),
        );
        registry.register(
            "consent_choices",
            "Consent choices recorded from the banner and the preference centre, by kind",
            m.consent_choices.clone(),
        );
        registry.register(
            "consent_record_failures",
            "Consent choices refused because their record could not be stored",
            m.consent_record_failures.clone(),
        );
        registry.register(
            "banner_hidden",
            "1 while a banner is switched on but the store of consent records cannot be opened, so that it is not shown",
            m.banner_hidden.clone(),
        );
        registry.register(
            "log_lines_suppressed",
            "Diagnostic lines not written because their place wrote too many in 10 s",
            crate::logs::suppressed_lines().clone(),
        );
        let m = Metrics { registry, ..m };
        for site in sites {
            m.show_site(site);
        }
        m
    }

    /// Shows a site's series at 0 before its first request, as for a proxy without sites, and
    /// looks up its `decisions` series once for all its requests.
    pub fn show_site(&self, site: &str) {
        let site: Site = Some(Arc::from(site));
        self.decision_series.rcu(|known| {
            let mut known = Vec::clone(known);
            if !known.iter().any(|(s, _)| *s == site) {
                known.push((
                    site.clone(),
                    Metrics::decision_series(&self.decisions, &site),
                ));
            }
            known
        });
        let label = SiteLabel { site };
        let _ = self.tags_neutralized.get_or_create(&label);
        let _ = self.blocked.get_or_create(&label);
    }

    /// Drops a site removed by a reload: its series leave `/metrics`, and a request to it that
    /// was still under way is not counted when it ends (it would bring them back).
    pub fn forget_site(&self, site: &str) {
        let site: Site = Some(Arc::from(site));
        self.decision_series.rcu(|known| {
            known
                .iter()
                .filter(|(s, _)| *s != site)
                .cloned()
                .collect::<Vec<_>>()
        });
        self.remove_series(&site);
    }

    /// Removes every series of `site` from the families.
    fn remove_series(&self, site: &Site) {
        for c in Category::ALL {
            for action in ["granted", "denied"] {
                self.decisions.remove(&DecisionLabels {
                    site: site.clone(),
                    category: c.as_str(),
                    action,
                });
            }
        }
        // Every status an HTTP response can have.
        for status in 100..=999 {
            self.requests.remove(&StatusLabel {
                site: site.clone(),
                status,
            });
        }
        for direction in ["request", "response"] {
            self.cookies_stripped.remove(&DirectionLabel {
                site: site.clone(),
                direction,
            });
        }
        let label = SiteLabel { site: site.clone() };
        self.tags_neutralized.remove(&label);
        self.blocked.remove(&label);
    }

    /// The `decisions` series of one site.
    fn decision_series(decisions: &Family<DecisionLabels, Counter>, site: &Site) -> DecisionSeries {
        Category::ALL
            .into_iter()
            .filter(|c| *c != Category::Necessary)
            .map(|c| {
                let series = |action| {
                    decisions
                        .get_or_create(&DecisionLabels {
                            site: site.clone(),
                            category: c.as_str(),
                            action,
                        })
                        .clone()
                };
                (c, [series("granted"), series("denied")])
            })
            .collect()
    }

    /// Counts a finished request from its decision record.
    pub fn record(&self, d: &Decision) {
        let site = &d.site;
        let looked_up;
        let known = self.decision_series.load();
        let series = match known.iter().find(|(s, _)| s == site) {
            Some((_, series)) => series,
            // A site removed by a reload while this request was under way.
            None if site.is_some() => return,
            None => {
                looked_up = Metrics::decision_series(&self.decisions, site);
                &looked_up
            }
        };
        self.requests
            .get_or_create(&StatusLabel {
                site: site.clone(),
                status: d.status,
            })
            .inc();
        for (c, [granted, denied]) in series {
            if d.granted.contains(*c) {
                granted.inc();
            } else {
                denied.inc();
            }
        }
        let stripped = [
            ("request", d.cookies.stripped_request_cookies.len()),
            ("response", d.cookies.stripped_set_cookies.len()),
        ];
        for (direction, n) in stripped {
            if n > 0 {
                self.cookies_stripped
                    .get_or_create(&DirectionLabel {
                        site: site.clone(),
                        direction,
                    })
                    .inc_by(n as u64);
            }
        }
        if d.tags_neutralized > 0 {
            self.tags_neutralized
                .get_or_create(&SiteLabel { site: site.clone() })
                .inc_by(d.tags_neutralized as u64);
        }
        if d.blocked {
            self.blocked
                .get_or_create(&SiteLabel { site: site.clone() })
                .inc();
        }
        // Removed while this request was counted: what it brought back goes again.
        if site.is_some() && !self.decision_series.load().iter().any(|(s, _)| s == site) {
            self.remove_series(site);
        }
    }

    pub fn upstream_latency(&self, d: Duration) {
        self.upstream_latency.observe(d.as_secs_f64());
    }

    pub fn request_started(&self) {
        self.in_flight.inc();
        self.started
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Requests started since the process started.
    pub fn started(&self) -> u64 {
        self.started.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn request_ended(&self) {
        self.in_flight.dec();
    }

    /// Requests being handled now.
    pub fn in_flight(&self) -> i64 {
        self.in_flight.get()
    }

    /// The rewrite memo's `hit` and `miss` counters.
    pub fn memo_counters(&self) -> (Counter, Counter) {
        let series = |result| self.memo.get_or_create(&ResultLabel { result }).clone();
        (series("hit"), series("miss"))
    }

    pub fn reloaded(&self, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        self.reloads.get_or_create(&ResultLabel { result }).inc();
    }

    /// Counts `n` request header lines removed for `reason`.
    pub fn headers_dropped(&self, reason: &'static str, n: usize) {
        if n > 0 {
            self.headers_dropped
                .get_or_create(&ReasonLabel { reason })
                .inc_by(n as u64);
        }
    }

    /// Whether a banner is on with no store of consent records to record its choices in.
    pub fn banner_hidden(&self, hidden: bool) {
        self.banner_hidden.set(i64::from(hidden));
    }

    /// Counts a recorded consent choice of `kind`.
    pub fn consent_choice(&self, kind: &'static str) {
        self.consent_choices
            .get_or_create(&KindLabel { kind })
            .inc();
    }

    /// Counts a choice refused because its record could not be stored.
    pub fn consent_record_failed(&self) {
        self.consent_record_failures.inc();
    }

    /// Counts a client connection that ended in an error, for `reason`.
    pub fn connection_failed(&self, reason: &'static str) {
        self.connections_failed
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::category::CategorySet;

    #[test]
    fn a_record_moves_the_counters() {
        let m = Metrics::new(&["shop".into()]);
        let mut d = Decision {
            ts: String::new(),
            site: Some("shop".into()),
            client: String::new(),
            method: "GET".into(),
            host: String::new(),
            path: "/".into(),
            status: 204,
            granted: CategorySet::NECESSARY.with(Category::Analytics),
            source: "default",
            sources: Vec::new(),
            region: None,
            signals: vec![],
            cookies: Default::default(),
            blocked: true,
            tags_neutralized: 3,
            tag_vendors: vec![],
            mode: "enforce",
            duration_ms: 0.0,
            error: None,
        };
        d.cookies.stripped_set_cookies = vec!["_fbp".into(), "_gcl_au".into()];
        m.request_started();
        m.record(&d);
        m.reloaded(false);
        m.upstream_latency(Duration::from_millis(3));
        let text = m.encode();
        for line in [
            "consent_proxy_requests_total{site=\"shop\",status=\"204\"} 1",
            "consent_proxy_decisions_total{site=\"shop\",category=\"analytics\",action=\"granted\"} 1",
            "consent_proxy_decisions_total{site=\"shop\",category=\"marketing\",action=\"denied\"} 1",
            "consent_proxy_cookies_stripped_total{site=\"shop\",direction=\"response\"} 2",
            "consent_proxy_tags_neutralized_total{site=\"shop\"} 3",
            "consent_proxy_requests_blocked_total{site=\"shop\"} 1",
            "consent_proxy_in_flight_requests 1",
            "consent_proxy_policy_reloads_total{result=\"failure\"} 1",
            "consent_proxy_upstream_response_seconds_count 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));

        // A site removed by a reload leaves; a request to it still under way is not counted.
        let other = Decision {
            site: Some("blog".into()),
            ..d.clone()
        };
        m.show_site("blog");
        m.record(&other);
        m.forget_site("shop");
        m.record(&d);
        let text = m.encode();
        assert!(!text.contains("site=\"shop\""), "{text}");
        for line in [
            "consent_proxy_requests_total{site=\"blog\",status=\"204\"} 1",
            "consent_proxy_decisions_total{site=\"blog\",category=\"analytics\",action=\"granted\"} 1",
            "consent_proxy_tags_neutralized_total{site=\"blog\"} 3",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
