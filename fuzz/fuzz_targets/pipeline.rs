#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ferret_fuzz::pipeline(data));
