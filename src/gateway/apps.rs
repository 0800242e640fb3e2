//! The first phases of a start, and a reload: the apps that answer hops (routes and their
//! flows or upstreams), the voice IVRs, and the sample records of an empty store.

use crate::app::flow::FlowApp;
use crate::app::upstream::{UpstreamApp, UpstreamConfig};
use crate::app::{App, Route, RouteTable};
use crate::config::Config;
use crate::flow::{Diagnostic, Flow, Severity};
use crate::front::http::ussd;
use crate::session::Registry;
use crate::store::Store;
use crate::text::Limit;
use crate::voice::IvrSet;
use std::sync::Arc;
use std::time::Duration;

/// What answers hops and calls, loaded at start.
pub(super) struct Apps {
    /// The routes in force.
    pub routes: RouteTable,
    /// The voice IVRs.
    pub ivrs: IvrSet,
    /// The number outbound calls are placed from (see [`IvrSet::calling_number`]).
    pub calling_number: Option<String>,
}

/// Loads the routes (every flow checked; warnings logged), the IVRs, and the sample records
/// when the store is empty.
pub(super) fn load(config: &Config, store: &Store) -> anyhow::Result<Apps> {
    let (routes, diagnostics) = load_routes(config, Some(store));
    for d in diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning)
    {
        tracing::warn!("{d}");
    }
    let Some(routes) = routes else {
        let errors: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
        anyhow::bail!("invalid flows:\n{}", errors.join("\n"));
    };
    crate::metrics::routes(routes.routes().iter().map(|r| &*r.service_code));
    journey_series(&routes);
    let (ivrs, calling_number) = load_ivrs(config)
        .map_err(|errors| anyhow::anyhow!("invalid IVRs:\n{}", errors.join("\n")))?;
    if calling_number.is_none() && ivrs.len() > 1 {
        tracing::warn!(
            "several IVRs and no africastalking.voice_number: outbound calls are not placed"
        );
    }
    crate::seed::at_start(store, config)?;
    Ok(Apps {
        routes,
        ivrs,
        calling_number,
    })
}

/// The journey series (arrivals and exits per shown screen) of every flow route, at zero.
fn journey_series(routes: &RouteTable) {
    for r in routes.routes() {
        if let Some(graph) = r.app.graph() {
            let shown = graph
                .nodes
                .iter()
                .filter(|n| n.shown)
                .map(|n| n.id.as_str());
            crate::metrics::screens(&r.service_code, shown);
        }
    }
}

/// Loads the IVRs of the config's IVR folder (none when there is no such folder) and decides
/// the number outbound calls are placed from: `[africastalking] voice_number`, which one of
/// the IVRs must answer, else the only IVR's number.
///
/// # Errors
/// Every problem of the IVR files, or a calling number no IVR answers.
pub fn load_ivrs(config: &Config) -> Result<(IvrSet, Option<String>), Vec<String>> {
    let ivr_dir = config.ivr_path();
    let ivrs = if ivr_dir.is_dir() {
        IvrSet::load_dir(&ivr_dir)?
    } else {
        IvrSet::default()
    };
    let calling = ivrs
        .calling_number(config.africastalking.voice_number.as_deref())
        .map_err(|e| vec![e])?;
    Ok((ivrs, calling))
}

/// Loads every routed flow and builds the route table. Errors and warnings are returned as
/// diagnostics; any error means the table is not built.
pub fn load_routes(
    config: &Config,
    store: Option<&Store>,
) -> (Option<RouteTable>, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let mut flows: std::collections::HashMap<String, Arc<Flow>> = Default::default();
    for name in config.routes.iter().filter_map(|r| r.flow.as_ref()) {
        if flows.contains_key(name) {
            continue;
        }
        let path = config.flows_path().join(format!("{name}.yaml"));
        match Flow::load(&path) {
            Ok(flow) => {
                diagnostics.extend(flow.warnings().iter().cloned());
                flows.insert(name.clone(), Arc::new(flow));
            }
            Err(errors) => diagnostics.extend(errors),
        }
    }
    if diagnostics.iter().any(|d| d.severity == Severity::Error) {
        return (None, diagnostics);
    }
    let Some(store) = store else {
        return (None, diagnostics);
    };
    // The one outgoing client, shared by every route (its settings were checked with the
    // config; rustls refusing them is still reported, not a panic).
    let client = match crate::net::client(&config.http_client) {
        Ok(c) => c,
        Err(message) => {
            diagnostics.push(Diagnostic {
                severity: Severity::Error,
                file: "[http_client]".into(),
                screen: None,
                field: None,
                message,
            });
            return (None, diagnostics);
        }
    };
    let mut routes = Vec::new();
    for rc in &config.routes {
        let deadline = Duration::from_millis(rc.deadline_ms.unwrap_or(config.ussd.deadline_ms));
        let app: Arc<dyn App> = match (&rc.flow, &rc.upstream) {
            // Every routed flow loaded above, or we returned.
            (Some(name), _) => match flows.get(name) {
                Some(flow) => Arc::new(
                    FlowApp::new(flow.clone(), store.clone(), client.clone())
                        .same_version_only(config.store.backend == crate::config::Backend::Redis),
                ),
                None => continue,
            },
            (None, Some(url)) => {
                // The URL was validated with the config.
                let Ok(url) = url.parse::<::http::Uri>() else {
                    continue;
                };
                Arc::new(UpstreamApp::new(
                    UpstreamConfig {
                        url,
                        route: rc.service_code.clone(),
                        style: rc.upstream_style,
                        network_code: rc.network_code.clone(),
                        apology: rc
                            .apology
                            .clone()
                            .unwrap_or_else(|| config.ussd.apology_text.clone()),
                        long_screens: rc.long_screens,
                        concurrency: rc.upstream_concurrency.unwrap_or(64),
                        breaker_failures: rc.breaker_failures.unwrap_or(5),
                        breaker_cooldown: Duration::from_millis(
                            rc.breaker_cooldown_ms.unwrap_or(10_000),
                        ),
                        session_id: ussd::at_session_id,
                    },
                    client.clone(),
                ))
            }
            (None, None) => continue,
        };
        let limit = Limit {
            septets: rc.max_septets.unwrap_or(config.ussd.max_septets),
            ucs2: rc.max_ucs2_chars.unwrap_or(config.ussd.max_ucs2_chars),
        };
        let idle = Duration::from_secs(
            rc.idle_timeout_secs
                .unwrap_or(config.sessions.idle_timeout_secs),
        );
        // Service codes were validated with the config.
        if let Some(route) = Route::new(&rc.service_code, app, idle, deadline, limit) {
            routes.push(route);
        }
    }
    (Some(RouteTable::new(routes)), diagnostics)
}

/// Re-reads the config's routes and flows and swaps them in if they are all valid. Only routes
/// and flows change on reload; listeners, store and session settings need a restart.
pub(super) fn reload_routes(
    config: &Config,
    registry: &Registry,
    store: &Store,
) -> Result<String, Vec<String>> {
    let fresh = match &config.source {
        Some(path) => Config::load(path).map_err(|e| {
            crate::metrics::reload(false);
            vec![e.to_string()]
        })?,
        None => config.clone(),
    };
    let (routes, diagnostics) = load_routes(&fresh, Some(store));
    let Some(routes) = routes else {
        let errors: Vec<String> = diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(ToString::to_string)
            .collect();
        tracing::error!(errors = errors.len(), "flow reload refused");
        crate::metrics::reload(false);
        return Err(errors);
    };
    let summary: Vec<String> = routes
        .routes()
        .iter()
        .map(|r| format!("{} {} {}", r.service_code, r.app.kind(), r.app.version()))
        .collect();
    crate::metrics::routes(routes.routes().iter().map(|r| &*r.service_code));
    journey_series(&routes);
    registry.core().routes.store(Arc::new(routes));
    crate::metrics::reload(true);
    tracing::info!("flows reloaded");
    Ok(format!("reloaded:\n{}", summary.join("\n")))
}
