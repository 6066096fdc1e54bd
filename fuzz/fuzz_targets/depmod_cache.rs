#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kmod_rs::fuzzing::depmod_cache(data));
