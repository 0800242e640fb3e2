//! `voice_callback`: see `ussd_gateway_fuzz::checks::voice_callback` for the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ussd_gateway_fuzz::checks::voice_callback(data);
});
