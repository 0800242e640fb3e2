//! Compiled screens: what the engine walks at runtime.
//!
//! Produced by [`super::load`] from the YAML model once all checks passed, so every target named
//! here exists and every template here compiled.

use super::template::{Expr, Tpl, ValueTpl};
use regex::Regex;

/// A value per language; a plain text is stored under the key `""`.
#[derive(Debug, Clone)]
pub(crate) struct Localized<T>(pub Vec<(String, T)>);

impl<T> Localized<T> {
    /// The entry for `lang`, else for `default`, else the first one.
    pub(crate) fn pick(&self, lang: &str, default: &str) -> &T {
        let find = |l: &str| self.0.iter().find(|(k, _)| k == l).map(|(_, v)| v);
        // index: a Localized is never empty (the loader builds at least one entry).
        match find(lang).or_else(|| find(default)) {
            Some(v) => v,
            None => &self.0[0].1,
        }
    }
}

/// A fixed option of a menu or input screen.
#[derive(Debug)]
pub(crate) struct Choice {
    pub label: Localized<Tpl>,
    pub next: String,
    pub set: Vec<(String, ValueTpl)>,
}

/// Dynamic menu entries.
#[derive(Debug)]
pub(crate) struct Items {
    pub from: Expr,
    pub label: Localized<Tpl>,
    pub value: Option<Expr>,
    pub into: String,
    pub next: String,
}

#[derive(Debug)]
pub(crate) struct Menu {
    pub text: Localized<Tpl>,
    pub items: Option<Items>,
    pub options: Vec<Choice>,
    pub invalid_end: Option<Localized<Tpl>>,
}

/// What a validator checks.
#[derive(Debug)]
pub(crate) enum Check {
    /// Anchored to match the whole input.
    Regex(Regex),
    Range(Option<f64>, Option<f64>),
    Length(Option<usize>, Option<usize>),
    Expr(Expr),
}

#[derive(Debug)]
pub(crate) struct Validator {
    pub check: Check,
    pub error: Localized<Tpl>,
}

#[derive(Debug)]
pub(crate) struct Input {
    pub text: Localized<Tpl>,
    pub into: String,
    pub next: String,
    pub validators: Vec<Validator>,
    pub options: Vec<Choice>,
    /// What is typed here is masked in everything kept after the hop.
    pub sensitive: bool,
}

#[derive(Debug)]
pub(crate) struct Router {
    pub routes: Vec<(Expr, String)>,
    pub default: String,
}

#[derive(Debug)]
pub(crate) struct SetVars {
    pub values: Vec<(String, ValueTpl)>,
    pub next: String,
}

#[derive(Debug)]
pub(crate) struct Load {
    pub record: Tpl,
    pub into: String,
    pub found: String,
    pub missing: String,
}

#[derive(Debug)]
pub(crate) struct WriteTpl {
    pub record: Tpl,
    pub fields: Vec<(String, ValueTpl)>,
    pub merge: bool,
}

#[derive(Debug)]
pub(crate) struct Save {
    pub writes: Vec<WriteTpl>,
    pub next: String,
    pub failed: Option<String>,
}

/// One compiled transaction operation.
#[derive(Debug)]
pub(crate) enum Op {
    Transfer {
        from: Option<Tpl>,
        to: Option<Tpl>,
        amount: ValueTpl,
        kind: String,
        otherwise: Option<String>,
    },
    Add {
        record: Tpl,
        field: String,
        amount: ValueTpl,
        min: Option<ValueTpl>,
        max: Option<ValueTpl>,
        otherwise: Option<String>,
    },
    Require {
        record: Tpl,
        exists: Option<bool>,
        field: Option<String>,
        equals: Option<ValueTpl>,
        otherwise: Option<String>,
    },
    Put(WriteTpl),
    Sms {
        to: Tpl,
        message: Tpl,
        not_before: Option<ValueTpl>,
    },
    Airtime {
        to: Tpl,
        amount: ValueTpl,
        currency: String,
    },
    Call {
        to: Tpl,
    },
    Push {
        to: Tpl,
        message: Tpl,
        bind: Option<String>,
        not_before: Option<ValueTpl>,
    },
    Dialogue {
        to: Tpl,
        service_code: String,
        bind: Option<String>,
        not_before: Option<ValueTpl>,
    },
}

impl Op {
    /// Where a failure of this op goes, if it names a screen.
    pub(crate) fn otherwise(&self) -> Option<&String> {
        match self {
            Op::Transfer { otherwise, .. }
            | Op::Add { otherwise, .. }
            | Op::Require { otherwise, .. } => otherwise.as_ref(),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Transact {
    pub ops: Vec<Op>,
    pub into: Option<String>,
    pub next: String,
    pub failed: Option<String>,
}

#[derive(Debug)]
pub(crate) struct List {
    pub collection: String,
    pub into: String,
    pub next: String,
}

/// One compiled screen.
#[derive(Debug)]
pub(crate) enum Screen {
    Menu(Menu),
    Input(Input),
    Router(Router),
    Set(SetVars),
    End(Localized<Tpl>),
    Load(Load),
    Save(Save),
    Transact(Transact),
    List(List),
    Http(Http),
}

/// The body of an `http` screen's request.
#[derive(Debug)]
pub(crate) enum HttpBody {
    None,
    /// A JSON object of these fields.
    Json(Vec<(String, ValueTpl)>),
    /// `application/x-www-form-urlencoded` fields.
    Form(Vec<(String, ValueTpl)>),
    /// A raw text body.
    Text(Tpl),
}

/// A compiled `http` screen.
#[derive(Debug)]
pub(crate) struct Http {
    pub method: http::Method,
    pub url: Tpl,
    pub headers: Vec<(String, Tpl)>,
    pub body: HttpBody,
    pub expect_json: bool,
    pub retries: u32,
    pub cache_ttl_secs: Option<u64>,
    pub into: String,
    pub next: String,
    pub failed: String,
    pub timeout: String,
    /// The request carries a secret: never cached, never in a log line.
    pub sensitive: bool,
}

/// A flow's `resume:` policy, compiled.
#[derive(Debug)]
pub(crate) struct ResumePolicy {
    pub window_secs: u64,
    pub ask: bool,
    pub prompt: Localized<String>,
    pub continue_label: Localized<String>,
    pub restart_label: Localized<String>,
}

/// Navigation keys and labels, labels per language.
#[derive(Debug)]
pub(crate) struct Navigation {
    pub next: String,
    pub back: String,
    pub home: Option<String>,
    pub more_label: Localized<String>,
    pub back_label: Localized<String>,
    pub history: bool,
}
