//! `at_form`: see `ussd_gateway_fuzz::checks::at_form` for the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ussd_gateway_fuzz::checks::at_form(data);
});
