//! The one canonical form of a subscriber's number, made once at the edge of every front.
//!
//! Canonical means digits only, country code first, no `+`: `+254700000001`, `254700000001`,
//! `00254700000001` and (with default country code 254) `0700000001` are all `254700000001`,
//! so a subscriber's records are the same whichever front they came through.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A canonical MSISDN (E.164 digits without `+`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Msisdn(Box<str>);

/// Why a phone number was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("phoneNumber is not a valid phone number")]
pub struct InvalidMsisdn;

impl Msisdn {
    /// Normalises `raw`: spaces, dashes, dots and parentheses are dropped; `+` or `00` marks an
    /// international number; a single leading `0` marks a national number, which gets
    /// `default_cc`; anything else is taken as already carrying its country code.
    ///
    /// # Errors
    /// Anything that is not 8 to 15 digits once normalised.
    pub fn parse(raw: &str, default_cc: &str) -> Result<Msisdn, InvalidMsisdn> {
        let trimmed = raw.trim();
        let mut digits = String::with_capacity(trimmed.len() + default_cc.len());
        let mut plus = false;
        for (i, c) in trimmed.chars().enumerate() {
            match c {
                '+' if i == 0 => plus = true,
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(InvalidMsisdn),
            }
        }
        let canonical = if plus {
            digits
        } else if let Some(rest) = digits.strip_prefix("00") {
            rest.to_string()
        } else if let Some(rest) = digits.strip_prefix('0') {
            format!("{default_cc}{rest}")
        } else {
            digits
        };
        if !(8..=15).contains(&canonical.len()) || canonical.starts_with('0') {
            return Err(InvalidMsisdn);
        }
        Ok(Msisdn(canonical.into_boxed_str()))
    }

    /// The canonical digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `+` international form that AT-style apps expect.
    pub fn international(&self) -> String {
        format!("+{}", self.0)
    }

    /// A masked form for logs: the country code and the last three digits stay.
    pub fn masked(&self) -> Masked<'_> {
        Masked(&self.0)
    }
}

impl fmt::Display for Msisdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Displays an MSISDN with its middle digits hidden: `254*****001`.
#[derive(Debug, Clone, Copy)]
pub struct Masked<'a>(&'a str);

impl fmt::Display for Masked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        let (head, tail) = (3.min(n), 3.min(n.saturating_sub(3)));
        f.write_str(&self.0[..head])?;
        for _ in 0..n - head - tail {
            f.write_str("*")?;
        }
        f.write_str(&self.0[n - tail..])
    }
}

/// `text` with every phone number in it masked as [`Msisdn::masked`] does: every run of eight
/// or more digits (a national number with its country code has 8 to 15). For identifiers that
/// carry a number, such as an SMPP session key `smpp:<bind>:<msisdn>:<n>`, before they leave
/// the gateway.
pub fn mask_numbers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| c.is_ascii_digit()) {
        out.push_str(&rest[..start]);
        let digits = &rest[start..];
        let end = digits
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(digits.len());
        let run = &digits[..end];
        if run.len() >= 8 {
            out.push_str(&Masked(run).to_string());
        } else {
            out.push_str(run);
        }
        rest = &digits[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_inside_identifiers_are_masked() {
        assert_eq!(
            mask_numbers("smpp:op:254700000001:7"),
            "smpp:op:254******001:7"
        );
        assert_eq!(mask_numbers("http:ATUid_12345"), "http:ATUid_12345");
        assert_eq!(
            mask_numbers("a25470000000b0700000001"),
            "a254*****000b070****001"
        );
        assert_eq!(mask_numbers(""), "");
    }

    #[test]
    fn the_same_subscriber_whatever_the_spelling() {
        for raw in [
            "+254700000001",
            "254700000001",
            "0700000001",
            "00254700000001",
            " +254 700-000-001 ",
        ] {
            assert_eq!(
                Msisdn::parse(raw, "254").unwrap().as_str(),
                "254700000001",
                "{raw}"
            );
        }
    }

    #[test]
    fn garbage_is_refused() {
        for raw in [
            "",
            "+",
            "abc",
            "07",
            "+2547000000011234567",
            "2547x0000001",
            "0+254",
        ] {
            assert_eq!(Msisdn::parse(raw, "254"), Err(InvalidMsisdn), "{raw}");
        }
    }

    #[test]
    fn masking_keeps_only_the_ends() {
        let m = Msisdn::parse("+254700000001", "254").unwrap();
        assert_eq!(m.masked().to_string(), "254******001");
        assert_eq!(m.international(), "+254700000001");
    }
}
