//! Text in and out of SMPP octets.
//!
//! Outbound: GSM 03.38 unpacked (one septet per octet, extension characters as escape + code,
//! `data_coding` 0x00) when every character is in the GSM alphabet, otherwise UCS-2 big-endian
//! (`data_coding` 0x08). The encoders are rusmpp-extra's.
//!
//! Inbound: 0x00 is the operator's default alphabet (GSM 03.38 or Latin-1, per profile); 0x01
//! is IA5 (ASCII); 0x03 Latin-1; 0x08 UCS-2; 0x0F (the USSD data coding scheme "GSM 7-bit,
//! language unspecified" that many centres pass through from MAP) is GSM 03.38. Anything else
//! is read as GSM 03.38, the most common truth behind a wrong value. rusmpp-extra has no
//! decoders, so the GSM table here is built once from its encoder, which keeps both
//! directions on the same table.

use crate::config::smpp::profile::DefaultAlphabet;
use rusmpp::extra::encoding::gsm7bit::Gsm7BitUnpacked;
use rusmpp::extra::encoding::ucs2::Ucs2;
use std::collections::HashMap;
use std::sync::OnceLock;

/// data_coding of GSM 03.38 text.
pub const DC_GSM7: u8 = 0x00;
/// data_coding of UCS-2 text.
pub const DC_UCS2: u8 = 0x08;

/// The escape septet of the extension table.
const ESCAPE: u8 = 0x1B;

/// Encodes `text` for the wire: `(data_coding, octets)`.
pub fn encode(text: &str) -> (u8, Vec<u8>) {
    if let Ok(bytes) = Gsm7BitUnpacked::new().encode_to_vec(text) {
        return (DC_GSM7, bytes);
    }
    match Ucs2::new().encode_to_vec(text) {
        Ok(bytes) => (DC_UCS2, bytes),
        // Outside the BMP (emoji): UTF-16 code units, surrogates included, which is what
        // handsets render for UCS-2 in practice.
        Err(_) => (
            DC_UCS2,
            text.encode_utf16().flat_map(u16::to_be_bytes).collect(),
        ),
    }
}

/// Decodes octets received with `data_coding`.
pub fn decode(data_coding: u8, bytes: &[u8], default: DefaultAlphabet) -> String {
    match data_coding {
        0x00 if default == DefaultAlphabet::Latin1 => latin1(bytes),
        0x01 => bytes.iter().map(|&b| char::from(b & 0x7F)).collect(),
        0x03 => latin1(bytes),
        0x08 => {
            let units = bytes
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]));
            char::decode_utf16(units)
                .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect()
        }
        _ => gsm7(bytes),
    }
}

fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// The GSM 03.38 tables: (basic code -> char, extension code -> char).
fn tables() -> &'static ([char; 128], HashMap<u8, char>) {
    static TABLES: OnceLock<([char; 128], HashMap<u8, char>)> = OnceLock::new();
    TABLES.get_or_init(|| {
        let mut basic = ['?'; 128];
        let mut ext = HashMap::new();
        let enc = Gsm7BitUnpacked::new();
        // Every character of the alphabet lies below U+0400, except the euro sign.
        let candidates = (0u32..0x400)
            .filter_map(char::from_u32)
            .chain(std::iter::once('€'));
        let mut buf = [0u8; 4];
        for c in candidates {
            match enc.encode_to_vec(c.encode_utf8(&mut buf)).as_deref() {
                Ok([code]) if *code < 128 && *code != ESCAPE => basic[usize::from(*code)] = c,
                Ok([ESCAPE, code]) => {
                    ext.insert(*code, c);
                }
                _ => {}
            }
        }
        (basic, ext)
    })
}

/// GSM 03.38 unpacked (one septet per octet; the top bit is ignored).
fn gsm7(bytes: &[u8]) -> String {
    let (basic, ext) = tables();
    let mut out = String::with_capacity(bytes.len());
    let mut it = bytes.iter().map(|b| b & 0x7F);
    while let Some(b) = it.next() {
        if b == ESCAPE {
            match it.next() {
                Some(code) => out.push(ext.get(&code).copied().unwrap_or(basic[usize::from(code)])),
                None => out.push(' '),
            }
        } else {
            out.push(basic[usize::from(b)]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm_text_round_trips_unpacked() {
        let s = "Hello @£$¥ èé {€} [1]\n~|^\\ ÄÖÑÜ§ ΔΦΓΛΩΠΨΣΘΞ";
        let (dc, bytes) = encode(s);
        assert_eq!(dc, DC_GSM7);
        assert_eq!(&bytes[..5], b"Hello");
        assert_eq!(bytes[6], 0x00, "@ is septet 0");
        assert_eq!(decode(0x00, &bytes, DefaultAlphabet::Gsm7), s);
        assert_eq!(decode(0x0F, &bytes, DefaultAlphabet::Gsm7), s);
        assert_eq!(encode("{").1, vec![0x1B, 0x28]);
    }

    #[test]
    fn non_gsm_text_goes_ucs2() {
        let (dc, bytes) = encode("Habari ✓");
        assert_eq!(dc, DC_UCS2);
        assert_eq!(&bytes[..2], &[0x00, b'H']);
        assert_eq!(decode(0x08, &bytes, DefaultAlphabet::Gsm7), "Habari ✓");
        let (_, bytes) = encode("ok 😀");
        assert_eq!(decode(0x08, &bytes, DefaultAlphabet::Gsm7), "ok 😀");
    }

    #[test]
    fn inbound_codings() {
        assert_eq!(decode(0x01, b"*123#", DefaultAlphabet::Gsm7), "*123#");
        assert_eq!(
            decode(0x03, &[0x63, 0x61, 0x66, 0xE9], DefaultAlphabet::Gsm7),
            "café"
        );
        assert_eq!(decode(0x00, &[0xE9], DefaultAlphabet::Latin1), "é");
        assert_eq!(decode(0x00, &[0x05], DefaultAlphabet::Gsm7), "é");
        // An odd UCS-2 length and a lone surrogate do not panic.
        assert_eq!(
            decode(0x08, &[0x00, 0x41, 0x00], DefaultAlphabet::Gsm7),
            "A\u{0}"
        );
        assert_eq!(
            decode(0x08, &[0xD8, 0x00], DefaultAlphabet::Gsm7),
            "\u{FFFD}"
        );
        assert_eq!(decode(0x00, &[0x1B], DefaultAlphabet::Gsm7), " ");
    }
}
