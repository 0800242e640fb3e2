//! Untrusted text in log lines.
//!
//! Whatever a peer sends (a voice `sessionId`, a dialled code, an SMPP `system_id`) is logged
//! through [`untrusted`]: Debug-formatted, so quotes, newlines, ESC and NUL come out escaped and
//! one field can never forge a log line or drive a terminal, and cut to [`MAX_LOGGED`] bytes so a
//! long field cannot flood the log. Log it with tracing's `?`: `dialled = ?untrusted(&s)`.

use std::fmt;

/// The longest untrusted field written to a log line, in bytes (before escaping).
pub const MAX_LOGGED: usize = 64;

/// An untrusted string as it is logged: escaped and length-capped.
#[derive(Clone, Copy)]
pub struct Untrusted<'a>(&'a str);

/// Wraps `s` for a log line (see the module's docs).
pub fn untrusted(s: &str) -> Untrusted<'_> {
    Untrusted(s)
}

impl fmt::Debug for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.len() <= MAX_LOGGED {
            return fmt::Debug::fmt(self.0, f);
        }
        let mut cut = MAX_LOGGED;
        while !self.0.is_char_boundary(cut) {
            cut -= 1;
        }
        fmt::Debug::fmt(&self.0[..cut], f)?;
        write!(f, "...(+{} bytes)", self.0.len() - cut)
    }
}

impl fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        let s = format!(
            "{:?}",
            untrusted("*123#\n2026-12-07T00:00:00Z INFO forged\u{1b}[31m\0")
        );
        assert!(
            !s.contains('\n') && !s.contains('\u{1b}') && !s.contains('\0'),
            "{s}"
        );
        assert!(
            s.contains("\\n") && s.contains("\\u{1b}") && s.contains("\\0"),
            "{s}"
        );
    }

    #[test]
    fn long_fields_are_cut_on_a_character_boundary() {
        let long = "é".repeat(100);
        let s = format!("{:?}", untrusted(&long));
        assert!(s.ends_with("...(+136 bytes)"), "{s}");
        assert_eq!(s.matches('é').count(), 32);
        assert_eq!(format!("{:?}", untrusted("*123#")), "\"*123#\"");
    }
}
