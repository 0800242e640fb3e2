//! Templates and expressions: one minijinja environment per flow, compiled once at load.
//!
//! Every template and expression of a flow is added to the flow's own [`Environment`] under a
//! generated name when the flow is loaded, so syntax errors are load diagnostics and a hop only
//! looks templates up and runs them. A text without any `{` is kept as a plain string and never
//! touches minijinja. Expressions are compiled as a one-line template `{% set result = (..) %}`
//! whose state is read back, which keeps them precompiled too (minijinja's `Expression` borrows
//! the environment, so it cannot be stored next to it).

use super::interpolate::{self, Interpolation};
use jiff::civil::{Date, DateTime};
use minijinja::{Environment, Error, ErrorKind, Value};

/// A text template: a plain string, or the name of a compiled template (and, for a text that
/// only puts variables into words, that text's parts: [`Interpolation`]).
#[derive(Debug, Clone)]
pub(crate) enum Tpl {
    Static(String),
    Compiled(String, Option<Interpolation>),
}

/// A compiled expression (the name of its wrapper template; and, for a plain variable path
/// such as `phone` or `slot.id`, that path: [`interpolate::Path`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct Expr(String, Option<interpolate::Path>);

/// A value in `fields`, `values` or `set`: a YAML literal, a template, or one `{{ expr }}`.
#[derive(Debug, Clone)]
pub(crate) enum ValueTpl {
    Literal(serde_json::Value),
    Text(Tpl),
    Expr(Expr),
}

impl Default for Tpl {
    fn default() -> Self {
        Tpl::Static(String::new())
    }
}

impl Default for ValueTpl {
    fn default() -> Self {
        ValueTpl::Literal(serde_json::Value::Null)
    }
}

/// The flow's template environment.
pub(crate) struct Templates {
    env: Environment<'static>,
    count: usize,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("count", &self.count)
            .finish()
    }
}

/// A load-time problem with one template, already phrased for a diagnostic.
pub(crate) type SyntaxError = String;

fn describe(e: &Error) -> String {
    let mut msg = format!("invalid template syntax: {}", e.kind());
    if let Some(detail) = e.detail() {
        msg.push_str(": ");
        msg.push_str(detail);
    }
    if let Some(line) = e.line() {
        msg.push_str(&format!(" (line {line})"));
    }
    msg
}

/// The inside of `{{ expr }}` when `src` is exactly one such tag, else `None`.
pub(crate) fn single_expr(src: &str) -> Option<&str> {
    let inner = src.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{") && !inner.contains("}}")).then_some(inner.trim())
}

/// The static text of a template: everything outside `{{ }}`, `{% %}` and `{# #}`.
pub(crate) fn static_parts(src: &str) -> String {
    let mut out = String::new();
    let mut rest = src;
    while let Some(start) = rest.find('{') {
        let close = match rest[start + 1..].chars().next() {
            Some('{') => "}}",
            Some('%') => "%}",
            Some('#') => "#}",
            _ => {
                out.push_str(&rest[..=start]);
                rest = &rest[start + 1..];
                continue;
            }
        };
        out.push_str(&rest[..start]);
        out.push(' ');
        rest = match rest[start + 2..].find(close) {
            Some(end) => &rest[start + 2 + end + 2..],
            None => "",
        };
    }
    out.push_str(rest);
    out
}

impl Templates {
    /// A fresh environment with the gateway's filters, keeping trailing newlines (USSD texts
    /// such as the student app's lists end in `\n`, and minijinja drops one by default).
    pub(crate) fn new() -> Self {
        let mut env = Environment::new();
        env.set_keep_trailing_newline(true);
        env.add_filter("money", money);
        env.add_filter("cents", cents);
        env.add_filter("date", date);
        env.add_filter("to_cents", to_cents);
        env.add_filter("msisdn", msisdn);
        env.add_filter("epoch_ms", epoch_ms);
        env.add_filter("add_days", add_days);
        env.add_filter("shift_hours", shift_hours);
        Templates { env, count: 0 }
    }

    /// Shows times (RFC 3339 timestamps, `now` included) in `tz` in the `date` filter: the
    /// flow's `timezone`. Without one they keep their own offset (`now` is UTC).
    pub(crate) fn set_timezone(&mut self, tz: jiff::tz::TimeZone) {
        self.env
            .add_filter("date", move |value: String, format: Option<String>| {
                date_in(&value, format, Some(&tz))
            });
    }

    fn next_name(&mut self, prefix: &str) -> String {
        self.count += 1;
        format!("{prefix}{}", self.count)
    }

    /// Compiles a text template.
    pub(crate) fn text(&mut self, src: &str) -> Result<Tpl, SyntaxError> {
        if !src.contains('{') {
            return Ok(Tpl::Static(src.to_string()));
        }
        let name = self.next_name("t");
        self.env
            .add_template_owned(name.clone(), src.to_string())
            .map_err(|e| describe(&e))?;
        Ok(Tpl::Compiled(name, Interpolation::parse(src)))
    }

    /// Compiles an expression; a `{{ }}` around it is optional.
    pub(crate) fn expr(&mut self, src: &str) -> Result<Expr, SyntaxError> {
        let src = single_expr(src).unwrap_or(src);
        // minijinja 2's expression lexer panics ("empty lexer stack") on a `}}` followed by
        // more input, and a `}}` ends an expression there anyway: refuse it before compiling.
        // (Found by the template_render fuzz target; a text template is not affected.)
        if src.contains("}}") {
            return Err("invalid template syntax: an expression cannot contain `}}`".into());
        }
        self.env.compile_expression(src).map_err(|e| describe(&e))?;
        let name = self.next_name("e");
        self.env
            .add_template_owned(name.clone(), format!("{{% set result = ({src}) %}}"))
            .map_err(|e| describe(&e))?;
        Ok(Expr(name, interpolate::Path::parse(src)))
    }

    /// Compiles a `fields`/`values`/`set` entry.
    pub(crate) fn value(&mut self, v: &serde_json::Value) -> Result<ValueTpl, SyntaxError> {
        match v {
            serde_json::Value::String(s) => match single_expr(s) {
                Some(_) => self.expr(s).map(ValueTpl::Expr),
                None => self.text(s).map(ValueTpl::Text),
            },
            other => Ok(ValueTpl::Literal(other.clone())),
        }
    }

    /// Renders a text template.
    pub(crate) fn render(&self, t: &Tpl, ctx: &Value) -> Result<String, Error> {
        match t {
            Tpl::Static(s) => Ok(s.clone()),
            Tpl::Compiled(name, quick) => match quick.as_ref().and_then(|q| q.render(ctx)) {
                Some(text) => Ok(text),
                None => self.env.get_template(name)?.render(ctx),
            },
        }
    }

    /// Evaluates an expression to its value.
    pub(crate) fn eval(&self, e: &Expr, ctx: &Value) -> Result<Value, Error> {
        if let Some(value) = e.1.as_ref().and_then(|p| p.lookup(ctx)) {
            return Ok(value);
        }
        let captured = self.env.get_template(&e.0)?.render_captured(ctx)?;
        Ok(captured
            .state()
            .lookup("result")
            .unwrap_or(Value::UNDEFINED))
    }

    /// The variables a text template reads (top-level names, declared nowhere in it).
    pub(crate) fn variables(&self, t: &Tpl) -> std::collections::HashSet<String> {
        match t {
            Tpl::Static(_) => Default::default(),
            Tpl::Compiled(name, _) => self.variables_of(name),
        }
    }

    /// The variables a `fields`/`values` entry reads.
    pub(crate) fn value_variables(&self, v: &ValueTpl) -> std::collections::HashSet<String> {
        match v {
            ValueTpl::Literal(_) => Default::default(),
            ValueTpl::Text(t) => self.variables(t),
            // The wrapper declares `result` itself.
            ValueTpl::Expr(e) => self.variables_of(&e.0),
        }
    }

    fn variables_of(&self, name: &str) -> std::collections::HashSet<String> {
        self.env
            .get_template(name)
            .map(|t| t.undeclared_variables(false))
            .unwrap_or_default()
    }

    /// Evaluates a `fields`/`values` entry to JSON.
    pub(crate) fn value_of(&self, v: &ValueTpl, ctx: &Value) -> Result<serde_json::Value, Error> {
        match v {
            ValueTpl::Literal(v) => Ok(v.clone()),
            ValueTpl::Text(t) => self.render(t, ctx).map(serde_json::Value::String),
            ValueTpl::Expr(e) => to_json(&self.eval(e, ctx)?),
        }
    }
}

/// Converts a template value to JSON (undefined and none become `null`).
pub(crate) fn to_json(v: &Value) -> Result<serde_json::Value, Error> {
    serde_json::to_value(v).map_err(|e| Error::new(ErrorKind::BadSerialization, e.to_string()))
}

fn number_of(value: &Value) -> Result<f64, Error> {
    let parsed = match value.as_str() {
        Some(s) => s.trim().parse::<f64>().ok(),
        None => f64::try_from(value.clone()).ok(),
    };
    parsed.filter(|n| n.is_finite()).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("not a number: {value}"),
        )
    })
}

/// Formats an amount of cents as `1,234.50`.
fn format_cents(cents: i128) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    let whole = (cents / 100).to_string();
    let mut grouped = String::with_capacity(whole.len() + whole.len() / 3);
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{sign}{grouped}.{:02}", cents % 100)
}

fn with_currency(amount: String, currency: Option<String>) -> String {
    match currency {
        Some(c) => format!("{c} {amount}"),
        None => amount,
    }
}

/// `x|money` -> `1,234.50`; `x|money("KES")` -> `KES 1,234.50`.
fn money(value: Value, currency: Option<String>) -> Result<String, Error> {
    let cents = (number_of(&value)? * 100.0).round() as i128;
    Ok(with_currency(format_cents(cents), currency))
}

/// `x|cents` -> like `money` of `x / 100`, in integer arithmetic.
fn cents(value: Value, currency: Option<String>) -> Result<String, Error> {
    let cents = match value.as_str() {
        Some(s) => s.trim().parse::<i128>().ok(),
        None => i128::try_from(value.clone()).ok(),
    }
    .ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("not whole cents: {value}"),
        )
    })?;
    Ok(with_currency(format_cents(cents), currency))
}

/// `"100.5"|to_cents` -> 10050: a decimal amount (string or number) to integer cents, exactly
/// (no floating point for strings). More than two decimals, a sign or anything else is an error.
fn to_cents(value: Value) -> Result<i64, Error> {
    let text = match value.as_str() {
        Some(s) => s.trim().to_string(),
        None => value.to_string(),
    };
    parse_cents(&text).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("not an amount with at most two decimals: {text}"),
        )
    })
}

/// Parses `123`, `123.4`, `123.45` into cents.
pub(crate) fn parse_cents(text: &str) -> Option<i64> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty()
        || whole.len() > 15
        || frac.len() > 2
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let frac: i64 = match frac.len() {
        0 => 0,
        1 => frac.parse::<i64>().ok()? * 10,
        _ => frac.parse().ok()?,
    };
    whole.checked_mul(100)?.checked_add(frac)
}

/// `x|msisdn("254")` -> the canonical MSISDN (digits, country code, no `+`), or none when `x`
/// is not a phone number: the same normalisation the fronts apply.
fn msisdn(value: String, country_code: String) -> Value {
    match crate::msisdn::Msisdn::parse(&value, &country_code) {
        Ok(m) => Value::from(m.as_str()),
        Err(_) => Value::from(()),
    }
}

fn time_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::InvalidOperation, format!("{what}: {e}"))
}

/// `"2026-01-05T09:00:00+10:00"|epoch_ms`: milliseconds since the epoch, to compare times
/// written with different offsets (`now` is UTC).
pub(crate) fn epoch_ms(value: String) -> Result<i64, Error> {
    let ts: jiff::Timestamp = value.parse().map_err(|e| time_error("epoch_ms", e))?;
    Ok(ts.as_millisecond())
}

/// `"2026-01-05"|add_days(3)` -> `"2026-01-08"` (also on the date part of a datetime).
pub(crate) fn add_days(value: String, days: i64) -> Result<String, Error> {
    let date: Date = match value.parse::<Date>() {
        Ok(d) => d,
        Err(_) => value
            .parse::<DateTime>()
            .map_err(|e| time_error("add_days", e))?
            .date(),
    };
    let shifted = date
        .checked_add(jiff::Span::new().days(days))
        .map_err(|e| time_error("add_days", e))?;
    Ok(shifted.to_string())
}

/// `start|shift_hours(-24)`: a timestamp moved by whole hours, as RFC 3339 UTC (reminders).
fn shift_hours(value: String, hours: i64) -> Result<String, Error> {
    let ts: jiff::Timestamp = value.parse().map_err(|e| time_error("shift_hours", e))?;
    let shifted = ts
        .checked_add(jiff::Span::new().hours(hours))
        .map_err(|e| time_error("shift_hours", e))?;
    Ok(shifted.to_string())
}

/// `x|date` / `x|date("%d %b %Y")`: strftime on an RFC 3339 timestamp, ISO datetime or date.
fn date(value: String, format: Option<String>) -> Result<String, Error> {
    date_in(&value, format, None)
}

/// [`date`], with timestamps shown in `tz` when the flow has a time zone.
fn date_in(
    value: &str,
    format: Option<String>,
    tz: Option<&jiff::tz::TimeZone>,
) -> Result<String, Error> {
    let format = format.as_deref().unwrap_or("%d/%m/%Y");
    let bad = |e: jiff::Error| Error::new(ErrorKind::InvalidOperation, format!("date: {e}"));
    if let Some(tz) = tz
        && let Ok(ts) = value.parse::<jiff::Timestamp>()
    {
        return jiff::fmt::strtime::format(format, ts.to_zoned(tz.clone()).datetime()).map_err(bad);
    }
    let when: DateTime = match value.parse::<DateTime>() {
        Ok(dt) => dt,
        Err(_) => match value.parse::<Date>() {
            Ok(d) => d.to_datetime(jiff::civil::Time::midnight()),
            Err(_) => {
                let ts = value.parse::<jiff::Timestamp>().map_err(bad)?;
                ts.to_zoned(jiff::tz::TimeZone::UTC).datetime()
            }
        },
    };
    jiff::fmt::strtime::format(format, when).map_err(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expression_holding_a_closing_tag_is_refused_not_a_panic() {
        let mut t = Templates::new();
        for src in ["r }} {{ price | rou{{me | upw", "a }} b", "{{ a }} }}"] {
            let e = t.expr(src).unwrap_err();
            assert!(e.contains("cannot contain `}}`"), "{src}: {e}");
        }
        assert!(t.expr("{{ n > 2 }}").is_ok());
        assert!(t.expr("n > 2").is_ok());
    }

    #[test]
    fn money_formats() {
        assert_eq!(format_cents(123450), "1,234.50");
        assert_eq!(format_cents(-100000001), "-1,000,000.01");
        assert_eq!(format_cents(5), "0.05");
        assert_eq!(
            money(Value::from("45000.00"), Some("KES".into())).unwrap(),
            "KES 45,000.00"
        );
        assert_eq!(cents(Value::from(123450), None).unwrap(), "1,234.50");
    }

    #[test]
    fn amounts_become_cents_exactly() {
        assert_eq!(to_cents(Value::from("100")).unwrap(), 10000);
        assert_eq!(to_cents(Value::from("100.5")).unwrap(), 10050);
        assert_eq!(to_cents(Value::from("0.07")).unwrap(), 7);
        assert_eq!(to_cents(Value::from(12)).unwrap(), 1200);
        for bad in ["", "1.234", "-5", "1e3", "abc", ".5"] {
            assert!(to_cents(Value::from(bad)).is_err(), "{bad}");
        }
        assert_eq!(
            msisdn("0700000002".into(), "254".into()),
            Value::from("254700000002")
        );
        assert!(msisdn("hello".into(), "254".into()).is_none());
    }

    #[test]
    fn time_arithmetic() {
        assert_eq!(epoch_ms("1970-01-01T10:00:01+10:00".into()).unwrap(), 1000);
        assert_eq!(add_days("2026-12-30".into(), 3).unwrap(), "2027-01-02");
        assert_eq!(
            add_days("2026-12-30T09:00:00".into(), 1).unwrap(),
            "2026-12-31"
        );
        assert_eq!(
            shift_hours("2026-01-05T09:00:00+10:00".into(), -24).unwrap(),
            "2026-01-03T23:00:00Z"
        );
        assert!(epoch_ms("tomorrow".into()).is_err());
    }

    #[test]
    fn dates_format() {
        assert_eq!(date("2024-03-15".into(), None).unwrap(), "15/03/2024");
        assert_eq!(
            date("2024-03-15T10:30:00Z".into(), Some("%H:%M".into())).unwrap(),
            "10:30"
        );
        assert!(date("soon".into(), None).is_err());
    }

    #[test]
    fn static_text() {
        assert_eq!(
            static_parts("Hi {{ name }}, {% if x %}yes{% endif %}!"),
            "Hi  ,  yes !"
        );
        assert_eq!(single_expr("{{ a.b }}"), Some("a.b"));
        assert_eq!(single_expr("{{ a }} and {{ b }}"), None);
    }
}
