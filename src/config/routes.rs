//! `[[routes]]`: which service code reaches which app, and what a service code looks like.
//!
//! The checks here need no app; loading the flows a route names is the gateway's (its
//! `load_routes`), where the apps are.

use serde::Deserialize;

/// One `[[routes]]` entry: a service code and the app that answers it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The service code, e.g. `*384*303#`. Dials that extend it (`*384*303*1#`) reach it too.
    pub service_code: String,
    /// The flow that answers, by name: `flows_dir/<flow>.yaml`. Exactly one of `flow` and
    /// `upstream`.
    #[serde(default)]
    pub flow: Option<String>,
    /// An existing Africa's Talking-style app that answers instead (adapter mode): its
    /// callback URL.
    #[serde(default)]
    pub upstream: Option<String>,
    /// How the upstream app is spoken to: `africastalking` (default) or `hubtel`.
    #[serde(default)]
    pub upstream_style: UpstreamStyle,
    /// `networkCode` sent upstream when the front does not know it.
    #[serde(default)]
    pub network_code: Option<String>,
    /// What the subscriber is told when the upstream app fails (default `[ussd] apology_text`).
    #[serde(default)]
    pub apology: Option<String>,
    /// Upstream answers longer than a screen: `paginate` (default) or `cut`.
    #[serde(default)]
    pub long_screens: LongScreens,
    /// Upstream requests in flight at most (default 64); past it, hops fail fast.
    #[serde(default)]
    pub upstream_concurrency: Option<usize>,
    /// Consecutive upstream failures that open the circuit (default 5).
    #[serde(default)]
    pub breaker_failures: Option<u32>,
    /// How long an open circuit refuses calls before one probe (default 10000 ms).
    #[serde(default)]
    pub breaker_cooldown_ms: Option<u64>,
    /// Idle timeout for this route's dialogues; default `[sessions] idle_timeout_secs`.
    #[serde(default)]
    pub idle_timeout_secs: Option<u64>,
    /// Per-hop deadline for this route; default `[ussd] deadline_ms`.
    #[serde(default)]
    pub deadline_ms: Option<u64>,
    /// A smaller screen limit for this route, in GSM-7 septets.
    #[serde(default)]
    pub max_septets: Option<usize>,
    /// A smaller screen limit for this route when UCS-2 is needed.
    #[serde(default)]
    pub max_ucs2_chars: Option<usize>,
}

/// The style of an upstream app (docs/adapter.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamStyle {
    /// Africa's Talking's form, answered `CON `/`END ` (the default).
    #[default]
    Africastalking,
    /// Hubtel's JSON (`Type` Initiation/Response), answered `Type` Response/Release.
    Hubtel,
}

/// What to do with an upstream answer longer than one screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LongScreens {
    /// Split into pages with More/Back, handled by the gateway (the default).
    #[default]
    Paginate,
    /// Cut to the limit, with a warning logged and counted.
    Cut,
}

/// Splits a configured service code (`*384*303#`) into its segments (`["384", "303"]`).
/// `None` unless it starts with `*`, ends with `#` and has non-empty digit segments.
pub fn code_segments(code: &str) -> Option<Vec<String>> {
    let inner = code.strip_prefix('*')?.strip_suffix('#')?;
    let segs: Vec<String> = inner.split('*').map(str::to_string).collect();
    if segs
        .iter()
        .all(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
    {
        Some(segs)
    } else {
        None
    }
}

/// Checks the routes: service codes well formed and routed once, exactly one of `flow` and
/// `upstream`, limits in range.
///
/// # Errors
/// A one-line message naming the route and the field.
pub(super) fn validate(routes: &[RouteConfig]) -> Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    for (i, route) in routes.iter().enumerate() {
        let at = format!("routes[{i}] ({})", route.service_code);
        if code_segments(&route.service_code).is_none() {
            return Err(format!(
                "{at}: service_code must look like *123# or *384*303#"
            ));
        }
        if !seen.insert(code_segments(&route.service_code)) {
            return Err(format!("{at}: service_code is routed twice"));
        }
        match (&route.flow, &route.upstream) {
            (Some(flow), None) => {
                if flow.is_empty()
                    || !flow
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                {
                    return Err(format!(
                        "{at}: flow must be a flow file name (letters, digits, _ and -)"
                    ));
                }
            }
            (None, Some(url)) => {
                let ok = url.parse::<http::Uri>().ok().is_some_and(|u| {
                    matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some()
                });
                if !ok {
                    return Err(format!("{at}: upstream must be an http:// or https:// URL"));
                }
            }
            _ => return Err(format!("{at}: give exactly one of flow and upstream")),
        }
        if route.upstream_concurrency == Some(0) || route.breaker_failures == Some(0) {
            return Err(format!(
                "{at}: upstream_concurrency and breaker_failures must be at least 1"
            ));
        }
        if let Some(s) = route.max_septets
            && !(40..=182).contains(&s)
        {
            return Err(format!("{at}: max_septets must be between 40 and 182"));
        }
        if let Some(s) = route.max_ucs2_chars
            && !(20..=80).contains(&s)
        {
            return Err(format!("{at}: max_ucs2_chars must be between 20 and 80"));
        }
        if route.idle_timeout_secs == Some(0) || route.deadline_ms == Some(0) {
            return Err(format!(
                "{at}: idle_timeout_secs and deadline_ms must be at least 1"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_codes_must_be_well_formed() {
        assert_eq!(
            code_segments("*384*303#"),
            Some(vec!["384".into(), "303".into()])
        );
        for bad in ["384#", "*384", "**1#", "*a#", "*#"] {
            assert_eq!(code_segments(bad), None, "{bad}");
        }
    }
}
