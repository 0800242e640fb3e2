//! Screen text rules: GSM 03.38 septet counting and automatic pagination.
//!
//! A USSD string is at most 160 octets: 182 GSM-7 septets (where the extension characters such
//! as `{}[]~|^€\` take two), or 80 characters when any character needs UCS-2. Every screen the
//! gateway sends goes through [`paginate`], so nothing is ever truncated silently.

pub mod gsm;
pub mod paginate;

pub use gsm::{Encoding, encoding_of, is_gsm7, screen_units};
pub use paginate::{Limit, Nav, fits, line_fits_any_page, paginate, paginate_blocks};
