//! `flow_load`: see `ussd_gateway_fuzz::checks::flow_load` for the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ussd_gateway_fuzz::checks::flow_load(data);
});
