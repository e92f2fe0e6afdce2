//! Thousands of random mutations of a valid manifest, and thousands of random TOML documents,
//! never panic, and every error they cause has a location. Seeded: a failure names its round,
//! and the same round replays it. (Hand-made hostile cases are in `manifest_hostile.rs`.)

use tarun_core::manifest;

const MUTATION_ROUNDS: usize = 10_000;
const RANDOM_DOCUMENTS: usize = 10_000;

/// Numbers that overflow, round, or mean nothing as a count or a rate.
const ODD_NUMBERS: &[&str] = &[
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "99999999999999999999999",
    "1e308",
    "1e309",
    "-1e-400",
    "-0.0",
    "nan",
    "-inf",
    "0x7fffffffffffffff",
    "0o777",
    "1_000_000_000_000",
    "4294967296",
    "-1",
    "0",
];

/// Text that trips byte/char confusion, bidi, normalisation and terminals.
const ODD_TEXT: &[&str] = &[
    "é",
    "e\u{301}",
    "日本",
    "🦀",
    "\u{202e}",
    "\u{feff}",
    "\u{200b}",
    "\u{0}",
    "\t",
    "${🦀}",
    "${",
    "\\",
    "ǅ",
    "𝔘𝔫𝔦",
];

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
/// insert a character that TOML cares about, replace a value with an odd number, insert odd
/// text.
fn mutate(text: &str, rng: &mut Rng) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    match rng.below(6) {
        4 => {
            let keyed: Vec<usize> = (0..lines.len())
                .filter(|&i| lines[i].contains(" = "))
                .collect();
            let at = keyed[rng.below(keyed.len())];
            let key = lines[at].split_once(" = ").unwrap().0.to_owned();
            let number = ODD_NUMBERS[rng.below(ODD_NUMBERS.len())];
            lines[at] = format!("{key} = {number}");
        }
        5 => {
            let chars: Vec<char> = text.chars().collect();
            let at = rng.below(chars.len());
            let mut out: String = chars[..at].iter().collect();
            out.push_str(ODD_TEXT[rng.below(ODD_TEXT.len())]);
            out.extend(&chars[at..]);
            return out;
        }
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

/// Parses `text`; asserts that it did not panic and that every error has a location.
/// Returns whether it was rejected.
fn check(round: usize, name: &str, text: &str) -> bool {
    let result = std::panic::catch_unwind(|| manifest::parse_str(name, text, &[]));
    let Ok(result) = result else {
        panic!("round {round}: the parser panicked on:\n{text}");
    };
    let Err(errors) = result else {
        return false;
    };
    assert!(!errors.errors().is_empty());
    for e in errors.errors() {
        assert!(
            e.location().is_some(),
            "round {round}: `{e}` has no location in:\n{text}"
        );
    }
    true
}

#[test]
fn mutations_never_panic_and_errors_are_located() {
    let original = std::fs::read_to_string("tests/fixtures/study.toml").unwrap();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut failures = 0;
    for round in 0..MUTATION_ROUNDS {
        let mut text = mutate(&original, &mut rng);
        for _ in 0..round % 4 {
            text = mutate(&text, &mut rng);
        }
        if check(round, "tests/fixtures/study.toml", &text) {
            failures += 1;
        }
    }
    // Most mutations break something; a test that never sees an error tests nothing.
    assert!(
        failures > MUTATION_ROUNDS / 2,
        "only {failures} of {MUTATION_ROUNDS} mutations were errors"
    );
    eprintln!("{MUTATION_ROUNDS} mutated manifests, {failures} rejected, none panicked");
}

/// Random TOML documents built from tarun's own table and key names (so that they get past the
/// TOML parser and into tarun's checks) and random ones, with random values.
struct Generator {
    rng: Rng,
}

const TABLES: &[&str] = &[
    "study", "data", "matrix", "recipe", "train", "expert", "ablate", "evaluate", "select",
    "report", "trian", "ü",
];
const KEYS: &[&str] = &[
    "name",
    "seed",
    "protocol",
    "include",
    "source",
    "path",
    "arch",
    "width",
    "lr",
    "epochs",
    "batch-size",
    "recipe",
    "for-each",
    "from",
    "only",
    "exclude",
    "base",
    "vectors",
    "expert",
    "alpha",
    "rho",
    "from-select",
    "model",
    "forget",
    "metrics",
    "over",
    "score",
    "require",
    "inputs",
    "title",
    "retries",
    "linspace",
    "a",
    "class",
    "ключ",
    "🦀",
];
const WORDS: &[&str] = &[
    "resnet18",
    "vgg11_bn",
    "base",
    "base[arch=resnet18]",
    "${arch}",
    "${a}",
    "x[a=1]",
    "accuracy",
    "forget-acc",
    "retain-acc - forget-acc",
    "synthetic",
    "seed",
    "corrected",
    "",
    "日本",
    "a,b",
    "[",
    "]=",
    "${",
    "base[arch=${arch}]",
];

const VALID_START: &str = "[study]\nname = \"r\"\n[matrix]\na = [1, 2]\narch = [\"resnet18\"]\n\
    [train.base]\nfor-each = [\"arch\"]\narch = \"${arch}\"\nlr = 0.1\n";

impl Generator {
    fn key(&mut self) -> String {
        let key = KEYS[self.rng.below(KEYS.len())];
        if key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            key.to_owned()
        } else {
            format!("\"{key}\"")
        }
    }

    fn value(&mut self, depth: usize) -> String {
        let choice = if depth > 3 {
            self.rng.below(4)
        } else {
            self.rng.below(7)
        };
        match choice {
            0 => ODD_NUMBERS[self.rng.below(ODD_NUMBERS.len())].to_owned(),
            1 => (self.rng.next() % 20).to_string(),
            2 => format!("{:?}", WORDS[self.rng.below(WORDS.len())]),
            3 => ["true", "false", "0.5", "-1.5", "1979-05-27"][self.rng.below(5)].to_owned(),
            4 | 5 => {
                let n = self.rng.below(4);
                let items: Vec<String> = (0..n).map(|_| self.value(depth + 1)).collect();
                format!("[{}]", items.join(", "))
            }
            _ => {
                let n = self.rng.below(3);
                let items: Vec<String> = (0..n)
                    .map(|_| format!("{} = {}", self.key(), self.value(depth + 1)))
                    .collect();
                format!("{{ {} }}", items.join(", "))
            }
        }
    }

    /// Half of them start valid, so that what follows reaches the checks past the first table.
    fn document(&mut self) -> String {
        let mut out = String::new();
        if self.rng.below(2) == 0 {
            out.push_str(VALID_START);
        }
        for _ in 0..1 + self.rng.below(6) {
            let table = TABLES[self.rng.below(TABLES.len())];
            let header = match table {
                "train" | "expert" | "ablate" | "evaluate" | "select" | "report" | "recipe" => {
                    format!("{table}.{}", ["x", "y", "base", "é"][self.rng.below(4)])
                }
                _ => table.to_owned(),
            };
            if header.is_ascii() {
                out.push_str(&format!("[{header}]\n"));
            } else {
                out.push_str(&format!("[\"{header}\"]\n"));
            }
            for _ in 0..self.rng.below(6) {
                let (key, value) = (self.key(), self.value(0));
                out.push_str(&format!("{key} = {value}\n"));
            }
        }
        out
    }
}

#[test]
fn random_toml_documents_never_panic_and_errors_are_located() {
    let mut generator = Generator {
        rng: Rng(0x0000_ddc0_ffee_0002),
    };
    let mut rejected = 0;
    for round in 0..RANDOM_DOCUMENTS {
        let text = generator.document();
        if check(round, "random.toml", &text) {
            rejected += 1;
        }
    }
    assert!(rejected > RANDOM_DOCUMENTS / 2, "only {rejected} rejected");
    eprintln!("{RANDOM_DOCUMENTS} random documents, {rejected} rejected, none panicked");
}
