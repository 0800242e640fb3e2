//! GSM 03.38 character classification and screen-size measurement.
//!
//! A USSD string travels as at most 160 octets. When every character belongs to the GSM 03.38
//! default alphabet it is packed as 7-bit septets (182 of them), with the extension-table
//! characters (`{}[]~|^\` and `€`) costing two septets each (escape + code). As soon as one
//! character is outside that alphabet the whole string must be sent as UCS-2, where each UTF-16
//! code unit costs two octets (80 of them). This module answers "which encoding" and "how many
//! units" so that pagination can keep every screen within its budget.
//!
//! The table is exactly the one of the encoder the SMPP front sends with (rusmpp's), checked
//! on every character by a test: a screen measured as GSM-7 must go out as GSM-7. So the form
//! feed, which GSM 03.38 puts in the extension table but that encoder lacks, counts as UCS-2.

/// How a screen is encoded on the air interface, which decides how its size is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// GSM 03.38 default alphabet (plus extension table), measured in septets.
    Gsm7,
    /// UCS-2 / UTF-16, measured in 16-bit code units.
    Ucs2,
}

/// Number of septets `c` takes in GSM-7: `Some(1)` for the basic alphabet, `Some(2)` for the
/// extension table (escape + code), `None` when `c` cannot be encoded in GSM-7 at all.
pub fn septets(c: char) -> Option<usize> {
    match c {
        'A'..='Z' | 'a'..='z' | '0'..='9' => Some(1),
        '\n' | '\r' | ' ' | '!' | '"' | '#' | '$' | '%' | '&' | '\'' | '(' | ')' | '*' | '+'
        | ',' | '-' | '.' | '/' | ':' | ';' | '<' | '=' | '>' | '?' | '@' | '_' => Some(1),
        '£' | '¥' | 'è' | 'é' | 'ù' | 'ì' | 'ò' | 'Ç' | 'Ø' | 'ø' | 'Å' | 'å' | 'Æ' | 'æ' | 'ß'
        | 'É' | '¤' | '¡' | 'Ä' | 'Ö' | 'Ñ' | 'Ü' | '§' | '¿' | 'ä' | 'ö' | 'ñ' | 'ü' | 'à' => {
            Some(1)
        }
        // Greek capitals of the default alphabet: Δ Φ Γ Λ Ω Π Ψ Σ Θ Ξ.
        '\u{0394}' | '\u{03A6}' | '\u{0393}' | '\u{039B}' | '\u{03A9}' | '\u{03A0}'
        | '\u{03A8}' | '\u{03A3}' | '\u{0398}' | '\u{039E}' => Some(1),
        // Extension table, reached through the escape septet (the form feed of GSM 03.38's
        // table is left out: the SMPP encoder cannot send it).
        '^' | '{' | '}' | '\\' | '[' | '~' | ']' | '|' | '€' => Some(2),
        _ => None,
    }
}

/// True if `c` is in the GSM 03.38 default alphabet or its extension table.
pub fn is_gsm7(c: char) -> bool {
    septets(c).is_some()
}

/// The encoding a string needs on its own: [`Encoding::Gsm7`] if every character is GSM-7,
/// otherwise [`Encoding::Ucs2`].
pub fn encoding_of(s: &str) -> Encoding {
    if s.chars().all(is_gsm7) {
        Encoding::Gsm7
    } else {
        Encoding::Ucs2
    }
}

/// Size of `s` when the screen it belongs to is sent in `encoding`: septets for
/// [`Encoding::Gsm7`] (a non-GSM character, which cannot really occur there, counts 2),
/// UTF-16 code units for [`Encoding::Ucs2`] (even for characters that are GSM-7).
pub fn units_in(s: &str, encoding: Encoding) -> usize {
    s.chars().map(|c| char_units(c, encoding)).sum()
}

/// Size of one character in `encoding`'s units (see [`units_in`]).
pub fn char_units(c: char, encoding: Encoding) -> usize {
    match encoding {
        Encoding::Gsm7 => septets(c).unwrap_or(2),
        Encoding::Ucs2 => c.len_utf16(),
    }
}

/// The encoding `s` needs and its size in that encoding's units: septets for GSM-7
/// (extension characters count 2), UTF-16 code units for UCS-2.
pub fn screen_units(s: &str) -> (Encoding, usize) {
    // One pass while the text is GSM-7 (most screens are): the encoding and the size together.
    let mut units = 0;
    for c in s.chars() {
        match septets(c) {
            Some(n) => units += n,
            None => return (Encoding::Ucs2, units_in(s, Encoding::Ucs2)),
        }
    }
    (Encoding::Gsm7, units)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alphabet_sizes() {
        let all = (0..=0x10FFFFu32).filter_map(char::from_u32);
        let (mut basic, mut ext) = (0, 0);
        for c in all {
            match septets(c) {
                Some(1) => basic += 1,
                Some(2) => ext += 1,
                Some(_) => panic!("bad septet count for {c:?}"),
                None => {}
            }
        }
        // 128 code points minus the escape (0x1B), which is not a character.
        assert_eq!(basic, 127);
        assert_eq!(ext, 9);
    }

    /// The counter and the encoder the SMPP front sends with (rusmpp's GSM-7 table) agree on
    /// every character: a screen counted as GSM-7 goes out as GSM-7, in as many septets as
    /// counted, and a character the encoder cannot send makes the screen UCS-2 here too.
    #[test]
    fn agrees_with_the_smpp_encoder_on_every_character() {
        let encoder = rusmpp::extra::encoding::gsm7bit::Gsm7BitUnpacked::new();
        let mut buf = [0u8; 4];
        let disagree: Vec<(char, Option<usize>, Option<usize>)> = (0..=0x10FFFFu32)
            .filter_map(char::from_u32)
            .filter_map(|c| {
                let sent = encoder
                    .encode_to_vec(c.encode_utf8(&mut buf))
                    .ok()
                    .map(|octets| octets.len());
                (sent != septets(c)).then_some((c, septets(c), sent))
            })
            .collect();
        assert!(
            disagree.is_empty(),
            "(character, counted, sent): {disagree:?}"
        );
    }

    #[test]
    fn greek_letters_are_the_greek_block() {
        for c in "ΔΦΓΛΩΠΨΣΘΞ".chars() {
            assert!(is_gsm7(c), "{c}");
            assert!((0x0391..=0x03A9).contains(&(c as u32)));
        }
        assert!(!is_gsm7('\u{2126}'), "ohm sign is not Omega");
    }

    #[test]
    fn septet_counts() {
        assert_eq!(screen_units("€"), (Encoding::Gsm7, 2));
        assert_eq!(screen_units("{}"), (Encoding::Gsm7, 4));
        assert_eq!(screen_units("é"), (Encoding::Gsm7, 1));
        assert_eq!(screen_units("Hello [1]\n"), (Encoding::Gsm7, 12));
        assert_eq!(screen_units(""), (Encoding::Gsm7, 0));
        assert_eq!(septets('`'), None);
        assert_eq!(septets('\u{1B}'), None);
    }

    #[test]
    fn ucs2_counts() {
        assert_eq!(encoding_of("ą"), Encoding::Ucs2);
        assert_eq!(screen_units("ą"), (Encoding::Ucs2, 1));
        assert_eq!(screen_units("Жa€"), (Encoding::Ucs2, 3));
        assert_eq!(screen_units("a😀"), (Encoding::Ucs2, 3));
        assert!(!is_gsm7('\t'));
        assert_eq!(screen_units("a\u{0C}b"), (Encoding::Ucs2, 3), "form feed");
    }
}
