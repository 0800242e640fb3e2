//! Service code routing: longest-prefix match by `*`-separated segments.
//!
//! A dial of `*384*303*1#` reaches the route `*384*303#` with `1` fed in as the first input:
//! pre-filled dials are common. Matching is by whole segments, so `*12#` never catches `*123#`.

use super::App;
use crate::config::routes::code_segments;
use crate::text::Limit;
use std::sync::Arc;
use std::time::Duration;

/// One routed service code and the app answering it.
pub struct Route {
    /// The service code as configured, e.g. `*384*303#`.
    pub service_code: Arc<str>,
    segments: Vec<String>,
    /// The app (it carries its own version).
    pub app: Arc<dyn App>,
    /// Idle timeout of this route's dialogues.
    pub idle_timeout: Duration,
    /// Per-hop deadline.
    pub deadline: Duration,
    /// The route's own screen limit (before the front's is applied).
    pub limit: Limit,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("service_code", &self.service_code)
            .field("app", &self.app.kind())
            .field("version", &self.app.version())
            .finish()
    }
}

impl Route {
    /// A route for `service_code` (which must satisfy [`code_segments`]).
    pub fn new(
        service_code: &str,
        app: Arc<dyn App>,
        idle_timeout: Duration,
        deadline: Duration,
        limit: Limit,
    ) -> Option<Route> {
        Some(Route {
            segments: code_segments(service_code)?,
            service_code: service_code.into(),
            app,
            idle_timeout,
            deadline,
            limit,
        })
    }
}

/// The routes in force: swapped whole on reload.
#[derive(Debug, Default)]
pub struct RouteTable {
    /// Sorted longest first, so the first match is the longest prefix.
    routes: Vec<Arc<Route>>,
}

impl RouteTable {
    /// Builds a table from routes.
    pub fn new(mut routes: Vec<Route>) -> RouteTable {
        routes.sort_by_key(|r| std::cmp::Reverse(r.segments.len()));
        RouteTable {
            routes: routes.into_iter().map(Arc::new).collect(),
        }
    }

    /// The route a dial reaches, and the inputs pre-filled in the dial.
    ///
    /// The dial is lenient about what gateways send: the trailing `#` may be missing, and
    /// pre-filled segments may be any text the subscriber typed.
    pub fn resolve(&self, dialled: &str) -> Option<(Arc<Route>, Vec<String>)> {
        let inner = dialled.trim().strip_prefix('*')?;
        let inner = inner.strip_suffix('#').unwrap_or(inner);
        let segs: Vec<&str> = inner.split('*').collect();
        self.routes.iter().find_map(|r| {
            let n = r.segments.len();
            (segs.len() >= n && segs[..n].iter().zip(&r.segments).all(|(a, b)| a == b)).then(|| {
                let prefill = segs[n..].iter().map(|s| s.to_string()).collect();
                (r.clone(), prefill)
            })
        })
    }

    /// The routes, longest first.
    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }

    /// The route configured for exactly `service_code`.
    pub fn get(&self, service_code: &str) -> Option<&Arc<Route>> {
        self.routes
            .iter()
            .find(|r| &*r.service_code == service_code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::{AppError, AppState, HopEnv, Turn};
    use futures_util::future::BoxFuture;

    struct Nothing;
    impl App for Nothing {
        fn kind(&self) -> &'static str {
            "test"
        }
        fn version(&self) -> Arc<str> {
            "1".into()
        }
        fn hop(
            self: Arc<Self>,
            _: Option<AppState>,
            _: Vec<String>,
            _: HopEnv,
        ) -> BoxFuture<'static, Result<Turn, AppError>> {
            Box::pin(async { Err(AppError::Incompatible("test".into())) })
        }
    }

    fn table(codes: &[&str]) -> RouteTable {
        RouteTable::new(
            codes
                .iter()
                .map(|c| {
                    Route::new(
                        c,
                        Arc::new(Nothing),
                        Duration::from_secs(1),
                        Duration::from_secs(1),
                        Limit::default(),
                    )
                    .unwrap()
                })
                .collect(),
        )
    }

    #[test]
    fn longest_prefix_by_whole_segments() {
        let t = table(&["*384#", "*384*303#", "*123#"]);
        let (r, pre) = t.resolve("*384*303*1#").unwrap();
        assert_eq!(
            (&*r.service_code, pre),
            ("*384*303#", vec!["1".to_string()])
        );
        let (r, pre) = t.resolve("*384*303#").unwrap();
        assert_eq!((&*r.service_code, pre.len()), ("*384*303#", 0));
        let (r, pre) = t.resolve("*384*9*2#").unwrap();
        assert_eq!(
            (&*r.service_code, pre),
            ("*384#", vec!["9".into(), "2".into()])
        );
        assert!(t.resolve("*12#").is_none());
        assert!(t.resolve("*1234#").is_none());
        assert!(t.resolve("123").is_none());
        assert_eq!(
            t.resolve("*123").unwrap().0.service_code,
            std::sync::Arc::<str>::from("*123#")
        );
    }
}
