//! The Grafana dashboard and the Prometheus alert rules read only metrics the gateway exports:
//! a gateway with every front in use (HTTP USSD for the three apps, a voice callback, an SMPP
//! dialogue through the built-in operator simulator) is scraped, and every metric name in every
//! PromQL expression of `grafana/dashboards/*.json` and `grafana/prometheus/alerts.yml` must be
//! in the scrape. Expressions are parsed with `promql-parser`, not matched with patterns.

mod common;

use common::{At, Sandbox, eventually};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

/// Series Prometheus makes itself, not the gateway.
const PROMETHEUS_OWN: &[&str] = &["up", "scrape_duration_seconds", "scrape_samples_scraped"];

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Metric names of one PromQL expression, after Grafana's variables are given values.
fn names_in(expr: &str) -> BTreeSet<String> {
    use promql_parser::parser::{self, Expr};
    use promql_parser::util::{ExprVisitor, walk_expr};
    struct Names(BTreeSet<String>);
    impl ExprVisitor for Names {
        type Error = String;
        fn pre_visit(&mut self, e: &Expr) -> Result<bool, String> {
            let selector = match e {
                Expr::VectorSelector(v) => Some(v),
                Expr::MatrixSelector(m) => Some(&m.vs),
                _ => None,
            };
            if let Some(v) = selector {
                let name = v.name.clone().or_else(|| {
                    v.matchers
                        .matchers
                        .iter()
                        .find(|m| m.name == "__name__")
                        .map(|m| m.value.clone())
                });
                self.0
                    .insert(name.ok_or("a selector without a metric name")?);
            }
            Ok(true)
        }
    }
    let expr = expr
        .replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
        .replace("$instance", ".*")
        .replace("$route", ".*");
    let ast = parser::parse(&expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
    let mut v = Names(BTreeSet::new());
    walk_expr(&mut v, &ast).unwrap_or_else(|e| panic!("{expr}: {e}"));
    v.0
}

/// Every PromQL expression of the dashboards: panel targets and `label_values(metric, label)`
/// variable queries.
fn dashboard_exprs() -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(repo("grafana/dashboards")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
            match v {
                serde_json::Value::Object(m) => {
                    if let Some(serde_json::Value::String(e)) = m.get("expr") {
                        out.push(e.clone());
                    }
                    if let Some(serde_json::Value::String(d)) = m.get("definition")
                        && let Some(inner) = d
                            .strip_prefix("label_values(")
                            .and_then(|r| r.strip_suffix(')'))
                    {
                        out.push(inner.split(',').next().unwrap().trim().to_string());
                    }
                    m.values().for_each(|v| walk(v, out));
                }
                serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
                _ => {}
            }
        }
        walk(&json, &mut out);
    }
    assert!(out.len() > 20, "dashboards have their queries: {out:?}");
    out
}

/// Every `expr` of the alert rules.
fn alert_exprs() -> Vec<String> {
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(repo("grafana/prometheus/alerts.yml")).unwrap(),
    )
    .unwrap();
    let mut out = Vec::new();
    for group in yaml["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            out.push(rule["expr"].as_str().unwrap().to_string());
        }
    }
    assert!(out.len() >= 5, "alert rules: {out:?}");
    out
}

/// The metric names a scrape shows (from its sample lines, so every family with a series).
fn scraped(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect()
}

/// Cluster mode's families: a node on sled has no Redis, so they are left to tests/cluster.rs,
/// which scrapes nodes on Redis.
const REDIS_ONLY: &[&str] = &[
    "ussd_redis_up",
    "ussd_redis_reconnects_total",
    "ussd_redis_duration_seconds_bucket",
    "ussd_redis_duration_seconds_count",
    "ussd_redis_errors_total",
    // Counted from their first event, which happens only in a cluster.
    "ussd_smpp_relayed_total",
    "ussd_flow_version_mismatch_total",
    "ussd_cluster_guesses_total",
];

/// The names the dashboards and alerts read that are missing from `scrape`.
fn missing(scrape: &BTreeSet<String>, except: &[&str]) -> Vec<String> {
    let mut wanted = BTreeSet::new();
    for e in dashboard_exprs().iter().chain(alert_exprs().iter()) {
        wanted.extend(names_in(e));
    }
    wanted
        .into_iter()
        .filter(|n| !PROMETHEUS_OWN.contains(&n.as_str()) && !except.contains(&n.as_str()))
        .filter(|n| !scrape.contains(n))
        .collect()
}

async fn scrape(admin: std::net::SocketAddr) -> String {
    let a = At::new(admin).request("GET", "/metrics", &[], "").await;
    assert_eq!(a.status, 200, "{a:?}");
    a.body
}

const ROUTES: &str = "[[routes]]\nservice_code = \"*123#\"\nflow = \"student\"\n[[routes]]\nservice_code = \"*384*303#\"\nflow = \"microfinance\"\n[[routes]]\nservice_code = \"*675#\"\nflow = \"dental\"\n";

#[test]
fn names_are_extracted_from_promql() {
    let n = names_in(
        "histogram_quantile(0.99, sum by (le, front) (rate(ussd_hop_duration_seconds_bucket{instance=~\"$instance\"}[$__rate_interval]))) / on(instance) group_left ussd_build_info",
    );
    assert_eq!(
        n,
        BTreeSet::from([
            "ussd_build_info".to_string(),
            "ussd_hop_duration_seconds_bucket".to_string()
        ])
    );
    assert_eq!(
        names_in("{__name__=\"ussd_dialogues_live\"} > 0"),
        BTreeSet::from(["ussd_dialogues_live".to_string()])
    );
}

/// The gateway's own families start with `ussd_`; the process ones have the standard
/// `process_*` names; nothing reads a family or series that was renamed away.
#[test]
fn metric_names_follow_the_conventions() {
    for e in dashboard_exprs().iter().chain(alert_exprs().iter()) {
        for n in names_in(e) {
            assert!(
                n.starts_with("ussd_")
                    || n.starts_with("process_")
                    || PROMETHEUS_OWN.contains(&n.as_str()),
                "{n} in {e}"
            );
            assert!(!n.starts_with("ussd_process_"), "{n} in {e}");
            assert_ne!(n, "ussd_evictions_total", "in {e}");
        }
        assert!(!e.contains("\"all\""), "an aggregate series in {e}");
    }
}

/// Every alert carries a `runbook_url` naming a section of docs/operations.md (by the anchor
/// GitHub gives its heading) that exists.
#[test]
fn every_alert_has_a_runbook_section() {
    let docs = std::fs::read_to_string(repo("docs/operations.md")).unwrap();
    let anchors: BTreeSet<String> = docs
        .lines()
        .filter_map(|l| l.strip_prefix("### "))
        .map(|h| {
            h.trim()
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
                .map(|c| if c == ' ' { '-' } else { c })
                .collect()
        })
        .collect();
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(repo("grafana/prometheus/alerts.yml")).unwrap(),
    )
    .unwrap();
    let mut n = 0;
    for group in yaml["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let name = rule["alert"].as_str().unwrap();
            let url = rule["annotations"]["runbook_url"]
                .as_str()
                .unwrap_or_else(|| panic!("{name} has no runbook_url"));
            let anchor = url
                .strip_prefix("docs/operations.md#")
                .unwrap_or_else(|| panic!("{name}: {url}"));
            assert_eq!(anchor, name.to_lowercase(), "{name}: {url}");
            assert!(anchors.contains(anchor), "{name}: no section {anchor}");
            n += 1;
        }
    }
    assert!(n >= 12, "alerts: {n}");
}

/// Every front in use, then every name the dashboard and the alerts read is in the scrape, and
/// no label carries a subscriber's number or a session id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_and_alerts_read_only_exported_metrics() {
    let sim = common::operator_sim().await;
    let sb = Sandbox::with_repo_flows(&format!(
        "{ROUTES}[[smpp.binds]]\nname = \"op\"\nhost = \"127.0.0.1\"\nport = {}\nsystem_id = \"gw\"\npassword = \"pw\"\nprofile = \"its_session_info\"\nsource_addr = \"123\"\nreconnect_cap_ms = 500\n[smpp.listener]\nlisten = \"127.0.0.1:0\"\n[[smpp.listener.peers]]\nsystem_id = \"agg\"\npassword = \"pw\"\n",
        sim.addr().port()
    ));
    let gw = sb.start().await;
    assert!(sim.wait_bound(Duration::from_secs(10)).await, "bound");
    let smpp = gw.smpp().unwrap();
    assert!(eventually(5, || async { smpp.binds_up() == 1 }).await);

    // HTTP: the three apps.
    let at = At::new(gw.public_addr);
    let phone = "+254700000001";
    let s = at.hop("m-student", "*123#", phone, "").await;
    assert!(s.starts_with("CON "), "{s}");
    let s = at.hop("m-student", "*123#", phone, "1").await;
    assert!(s.starts_with("CON ") || s.starts_with("END "), "{s}");
    let s = at.hop("m-mf", "*384*303#", phone, "").await;
    assert!(s.starts_with("CON "), "{s}");
    at.hop("m-mf", "*384*303#", phone, "2").await;
    let s = at.hop("m-dental", "*675#", phone, "").await;
    assert!(s.starts_with("CON "), "{s}");
    // A voice call, answered and then finished with its cost.
    let voice = |body: &'static str| {
        let at = at.clone();
        async move {
            at.request(
                "POST",
                "/voice/callback",
                &[("content-type", "application/x-www-form-urlencoded")],
                body,
            )
            .await
        }
    };
    let a = voice("isActive=1&sessionId=ATVId_m&direction=Inbound&callerNumber=%2B254700000001&destinationNumber=%2B254711000000").await;
    assert_eq!(a.status, 200, "{a:?}");
    let a = voice("isActive=0&sessionId=ATVId_m&direction=Inbound&callerNumber=%2B254700000001&destinationNumber=%2B254711000000&durationInSeconds=42&currencyCode=KES&amount=1.50&hangupCause=NORMAL_CLEARING").await;
    assert_eq!(a.status, 200, "{a:?}");
    // SMPP: a dialogue through the simulated operator.
    let (mut d, s) = sim.dial("254700000002", "*123#").await.unwrap();
    assert!(!s.end, "{s:?}");
    d.reply("1").await.unwrap();

    let registry = gw.registry().clone();
    assert!(eventually(5, || async { registry.live() > 0 }).await);
    ussd_gateway::metrics::upkeep();
    let text = scrape(gw.admin_addr).await;
    let names = scraped(&text);
    let missing = missing(&names, REDIS_ONLY);
    assert!(
        missing.is_empty(),
        "read by the dashboard or the alerts but not exported: {missing:?}"
    );
    // Traffic went through every front and the per-bind SMPP families.
    for needle in [
        "ussd_hops_total{front=\"http\",dialect=\"africastalking\",route=\"*123#\",outcome=\"con\"}",
        "ussd_hops_total{front=\"smpp\",dialect=\"smpp\",route=\"*123#\",outcome=\"con\"}",
        "ussd_voice_callbacks_total{kind=\"final\"} 1",
        "ussd_voice_call_cost_cents_total{currency=\"KES\"} 150",
        "ussd_smpp_bind_up{bind=\"op\"} 1",
        "ussd_smpp_listener_connections{peer=\"agg\"} 0",
        "ussd_smpp_binds_up 1",
        "ussd_smpp_binds_configured 1",
        "ussd_smpp_pdus_total{bind=\"op\",direction=\"in\",command=\"deliver_sm\",status=\"ok\"}",
        "ussd_smpp_pdus_total{bind=\"op\",direction=\"out\",command=\"submit_sm\",status=\"ok\"}",
        "ussd_smpp_window_in_use{bind=\"op\"}",
        "ussd_smpp_reconnects_total{bind=\"op\"}",
    ] {
        assert!(text.contains(needle), "{needle} not in\n{text}");
    }
    // The standard process families, under their standard names.
    for family in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        assert!(names.contains(family), "{family} not in\n{text}");
    }
    // One series per bind and no aggregate beside them, so sum() counts each PDU once; the
    // idle timeout's endings are counted once, as a reason of the ended family.
    assert!(!text.contains("bind=\"all\""), "{text}");
    assert!(!text.contains("ussd_process_"), "{text}");
    assert!(!text.contains("ussd_evictions_total"), "{text}");
    // Fixed label sets: no MSISDN, no session id.
    for secret in ["254700000001", "254700000002", "m-student", "ATVId_m"] {
        assert!(!text.contains(secret), "{secret} appears in the scrape");
    }
    gw.shutdown().await;
}

/// A fresh gateway with no SMPP bind and no traffic (a child process: a recorder of its own)
/// already exports every family the dashboard and the alerts read; only the per-bind SMPP
/// families wait for a configured bind or listener peer (they have one series per bind, from
/// start-up, and no aggregate).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_family_exists_from_start_up_without_smpp() {
    let sb = Sandbox::with_repo_flows(ROUTES);
    let child = sb.spawn();
    let text = scrape(child.admin).await;
    let missing = missing(
        &scraped(&text),
        &[
            "ussd_smpp_bind_up",
            "ussd_smpp_listener_connections",
            "ussd_smpp_pdus_total",
            "ussd_smpp_window_in_use",
            "ussd_smpp_reconnects_total",
        ]
        .iter()
        .chain(REDIS_ONLY)
        .copied()
        .collect::<Vec<_>>(),
    );
    assert!(
        missing.is_empty(),
        "not exported at start-up: {missing:?}\n{text}"
    );
    assert!(text.contains("ussd_smpp_binds_configured 0"), "{text}");
}
