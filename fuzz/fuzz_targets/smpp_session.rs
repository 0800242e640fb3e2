//! `smpp_session`: see `ussd_gateway_fuzz::checks::smpp_session` for the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ussd_gateway_fuzz::checks::smpp_session(data);
});
