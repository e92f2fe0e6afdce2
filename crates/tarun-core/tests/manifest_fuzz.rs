//! Random mutations of a valid manifest never panic, and every error they cause has a location.

use tarun_core::manifest;

/// xorshift64*: deterministic, so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One of: delete a character, duplicate a line, swap the keys of two `key = value` lines,
/// insert a character that TOML cares about.
fn mutate(text: &str, rng: &mut Rng) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    match rng.below(4) {
        0 => {
            let chars: Vec<char> = text.chars().collect();
            let at = rng.below(chars.len());
            return chars
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != at)
                .map(|(_, c)| c)
                .collect();
        }
        1 => {
            let at = rng.below(lines.len());
            let line = lines[at].clone();
            lines.insert(at, line);
        }
        2 => {
            let keyed: Vec<usize> = (0..lines.len())
                .filter(|&i| lines[i].contains(" = "))
                .collect();
            let (a, b) = (keyed[rng.below(keyed.len())], keyed[rng.below(keyed.len())]);
            let (ka, va) = lines[a]
                .split_once(" = ")
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .unwrap();
            let (kb, vb) = lines[b]
                .split_once(" = ")
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .unwrap();
            lines[a] = format!("{kb} = {va}");
            lines[b] = format!("{ka} = {vb}");
        }
        _ => {
            let chars: Vec<char> = text.chars().collect();
            let at = rng.below(chars.len());
            let c = ['[', ']', '"', '=', ',', '{', '$', '\n', '.', '-'][rng.below(10)];
            let mut out: String = chars[..at].iter().collect();
            out.push(c);
            out.extend(&chars[at..]);
            return out;
        }
    }
    lines.join("\n")
}

#[test]
fn mutations_never_panic_and_errors_are_located() {
    let original = std::fs::read_to_string("tests/fixtures/study.toml").unwrap();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut failures = 0;
    for round in 0..200 {
        let mut text = mutate(&original, &mut rng);
        if round % 3 == 0 {
            text = mutate(&text, &mut rng);
        }
        if let Err(errors) = manifest::parse_str("tests/fixtures/study.toml", &text, &[]) {
            failures += 1;
            assert!(!errors.errors().is_empty());
            for e in errors.errors() {
                assert!(
                    e.location().is_some(),
                    "round {round}: `{e}` has no location in:\n{text}"
                );
            }
        }
    }
    // Most mutations break something; a test that never sees an error tests nothing.
    assert!(
        failures > 100,
        "only {failures} of 200 mutations were errors"
    );
}
