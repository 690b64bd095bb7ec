#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| dpo_fuzz::tokenizer(bytes));
