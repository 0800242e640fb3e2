//! The `router` screen: the first route whose `when` expression is true names the next screen,
//! else `default`. Invisible: the dialogue moves on within the hop.

use super::Screen;
use crate::flow::check::Checker;
use crate::flow::engine::{Fail, Next, Run};
use crate::flow::template::Expr;
use serde::Deserialize;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteSpec {
    pub when: String,
    pub next: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouterSpec {
    pub routes: Vec<RouteSpec>,
    pub default: String,
}

#[derive(Debug)]
pub(crate) struct Router {
    pub routes: Vec<(Expr, String)>,
    pub default: String,
}

impl Checker<'_> {
    pub(crate) fn router(&mut self, screen: &str, spec: RouterSpec) -> Screen {
        let mut routes = Vec::new();
        for (i, r) in spec.routes.iter().enumerate() {
            let when = self.expr(screen, &format!("routes[{i}].when"), &r.when);
            routes.push((
                when,
                self.target(screen, &format!("routes[{i}].next"), &r.next),
            ));
        }
        Screen::Router(Router {
            routes,
            default: self.target(screen, "default", &spec.default),
        })
    }
}

impl Router {
    pub(crate) fn enter<'f>(&'f self, run: &mut Run<'f, '_>) -> Result<Next<'f>, Fail> {
        for (when, next) in &self.routes {
            if run.eval(when, None)?.is_true() {
                return Ok(Next::Go(next));
            }
        }
        Ok(Next::Go(&self.default))
    }
}
