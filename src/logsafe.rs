//! Untrusted text in logs.
//!
//! A string that came from outside (a dialled code, a bind's system_id, a header) and is
//! logged as it is can forge log lines (a newline, then a line of the attacker's choosing),
//! drive the terminal of whoever reads the log (ESC sequences) or hide text (NUL, bidi
//! controls); a long one floods the log. Log such a field through [`untrusted`]:
//!
//! ```
//! let dialled = "*123#\n2030-01-01T00:00:00Z  INFO forged";
//! tracing::warn!(dialled = ?ussd_gateway::logsafe::untrusted(dialled), "unknown service code");
//! assert_eq!(
//!     format!("{:?}", ussd_gateway::logsafe::untrusted(dialled)),
//!     r#""*123#\n2030-01-01T00:00:00Z  INFO forged""#,
//! );
//! ```
//!
//! The field is printed quoted, with Rust's escaping of strings (`\n`, `\0`, `\u{1b}`, `\"`,
//! every control, separator and format character as `\u{...}`), and cut after
//! [`MAX_CHARS`] characters with `...(+N bytes)` after the closing quote, where `N` is what
//! was cut, so a cut field cannot be mistaken for a whole one.

use std::fmt;

/// Characters of an untrusted field that a log line shows; the rest is cut and counted.
pub const MAX_CHARS: usize = 64;

/// `s` ready for a log field: its `Debug` (and `Display`, the same) output is quoted,
/// escaped and at most [`MAX_CHARS`] characters of `s`.
pub fn untrusted(s: &str) -> Untrusted<'_> {
    Untrusted(s)
}

/// An untrusted string as a log field; see [`untrusted`].
#[derive(Clone, Copy)]
pub struct Untrusted<'a>(&'a str);

impl fmt::Debug for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cut = self
            .0
            .char_indices()
            .nth(MAX_CHARS)
            .map_or(self.0.len(), |(at, _)| at);
        let (shown, rest) = self.0.split_at(cut);
        write!(f, "{shown:?}")?;
        if !rest.is_empty() {
            write!(f, "...(+{} bytes)", rest.len())?;
        }
        Ok(())
    }
}

/// The same as `Debug`, so that `%` is as safe as `?`.
impl fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// `url` as logs and errors may show it: its password replaced by `***`
/// (`redis://:pw@host:6379` reads `redis://:***@host:6379`; a Unix socket's
/// `redis+unix:///run/redis.sock?pass=pw` reads `...?pass=***`).
pub fn redacted_url(url: &str) -> String {
    if let Some((path, query)) = url.split_once('?') {
        let query = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((key @ ("pass" | "password"), _)) => format!("{key}=***"),
                _ => kv.to_string(),
            })
            .collect::<Vec<_>>()
            .join("&");
        return format!("{}?{query}", redacted_url(path));
    }
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(s: &str) -> String {
        format!("{:?}", untrusted(s))
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(shown("*123#"), r#""*123#""#);
        assert_eq!(
            shown("a\nFORGED\r\x1b[2J\0\x7f\"\\"),
            r#""a\nFORGED\r\u{1b}[2J\0\u{7f}\"\\""#
        );
        // C1 controls, line and paragraph separators, bidi and zero-width format characters.
        for c in [
            '\u{85}', '\u{9b}', '\u{2028}', '\u{2029}', '\u{202e}', '\u{2066}', '\u{200b}',
        ] {
            let s = shown(&format!("a{c}b"));
            assert!(s.is_ascii(), "{c:?} shown as {s}");
            assert_eq!(s, format!("\"a\\u{{{:x}}}b\"", u32::from(c)));
        }
        assert_eq!(shown("Jambo ñ"), r#""Jambo ñ""#, "printable text as it is");
        assert_eq!(format!("{}", untrusted("a\nb")), r#""a\nb""#, "Display too");
    }

    #[test]
    fn long_text_is_cut_and_the_cut_counted() {
        let exact = "x".repeat(MAX_CHARS);
        assert_eq!(shown(&exact), format!("\"{exact}\""));
        let long = format!("{exact}\n{}", "y".repeat(1000));
        assert_eq!(shown(&long), format!("\"{exact}\"...(+1001 bytes)"));
        // Cut on a character, counted in bytes.
        let wide = "é".repeat(MAX_CHARS + 3);
        assert_eq!(
            shown(&wide),
            format!("\"{}\"...(+6 bytes)", "é".repeat(MAX_CHARS))
        );
        assert_eq!(shown(""), r#""""#);
    }

    #[test]
    fn a_urls_password_is_not_shown() {
        assert_eq!(
            redacted_url("redis://:pw@127.0.0.1:6379"),
            "redis://:***@127.0.0.1:6379"
        );
        assert_eq!(
            redacted_url("rediss://gw:p@ss@redis:6380/0"),
            "rediss://gw:***@redis:6380/0"
        );
        assert_eq!(
            redacted_url("redis+unix:///run/redis.sock?db=1&pass=s3cret&user=gw"),
            "redis+unix:///run/redis.sock?db=1&pass=***&user=gw"
        );
        assert_eq!(
            redacted_url(r#"["redis://:pw@a:1"]"#),
            r#"["redis://:***@a:1"]"#
        );
        for kept in [
            "redis://127.0.0.1:6379",
            "redis://gw@redis:6379",
            "0.0.0.0:8080",
        ] {
            assert_eq!(redacted_url(kept), kept);
        }
    }
}
