//! `template_render`: see `ussd_gateway_fuzz::checks::template_render` for the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ussd_gateway_fuzz::checks::template_render(data);
});
