//! `smpp_decode`: see `ussd_gateway_fuzz::checks::smpp_decode` for the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ussd_gateway_fuzz::checks::smpp_decode(data);
});
