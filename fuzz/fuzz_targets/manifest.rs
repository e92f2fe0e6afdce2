//! Any bytes as a manifest, and as `--set` overrides: no panic, no stack overflow, and every
//! error has a location. Seed with `fuzz/seeds/` (copies of the test fixtures):
//! `cargo +nightly fuzz run manifest fuzz/corpus/manifest fuzz/seeds -- -max_len=8192`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Lines after a line `--set` are overrides.
    let (manifest, overrides) = match text.split_once("\n--set\n") {
        Some((m, o)) => (m, o.lines().map(str::to_owned).collect()),
        None => (text, vec![]),
    };
    // No includes: they read the file system, which would make a crash hard to reproduce.
    // (`include = ["/dev/zero"]` once read forever; `manifest_hostile.rs` tests that now.)
    if manifest.contains("include") {
        return;
    }
    if let Err(errors) = tarun_core::manifest::parse_str("fuzz.toml", manifest, &overrides) {
        assert!(!errors.errors().is_empty());
        for e in errors.errors() {
            assert!(e.location().is_some(), "`{e}` has no location");
        }
    }
});
