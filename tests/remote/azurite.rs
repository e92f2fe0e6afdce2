//! Against Azurite, Azure Blob Storage's emulator, on loopback.

use super::*;

/// `azurite-blob`, or why the Azure test skips (a failure under `TARUN_REQUIRE_AZURE=1`).
fn azurite() -> Option<PathBuf> {
    let found = std::env::var_os("TARUN_AZURITE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|p| p.join("azurite-blob"))
                    .find(|p| p.is_file())
            })
        });
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let why = match (&found, node) {
        (None, _) => "no `azurite-blob` on PATH or in TARUN_AZURITE (npm install azurite)",
        (_, false) => "no `node` to run Azurite",
        _ => return found,
    };
    assert!(
        std::env::var("TARUN_REQUIRE_AZURE").as_deref() != Ok("1"),
        "TARUN_REQUIRE_AZURE=1 but {why}"
    );
    eprintln!("skipping the Azure test: {why}");
    None
}

/// Creates a container in Azurite: a `Create Container` request signed with the emulator's
/// well-known account key (Shared Key), by `node`, which Azurite needs anyway. object_store
/// has no call that creates one.
const CREATE_CONTAINER_JS: &str = r"
const crypto = require('crypto'), http = require('http');
const [port, container] = process.argv.slice(2);
const account = 'devstoreaccount1';
const key = Buffer.from('Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==', 'base64');
const date = new Date().toUTCString(), version = '2021-08-06';
const toSign = ['PUT', '', '', '', '', '', '', '', '', '', '', '', `x-ms-date:${date}`, `x-ms-version:${version}`,
  `/${account}/${account}/${container}`, 'restype:container'].join('\n');
const signature = crypto.createHmac('sha256', key).update(toSign, 'utf8').digest('base64');
const req = http.request({ host: '127.0.0.1', port, method: 'PUT', path: `/${account}/${container}?restype=container`,
  headers: { 'x-ms-date': date, 'x-ms-version': version, 'Content-Length': 0,
             Authorization: `SharedKey ${account}:${signature}` } },
  res => { console.log(res.statusCode); process.exit(res.statusCode === 201 ? 0 : 1); });
req.on('error', e => { console.error(e.message); process.exit(1); });
req.end();
";

/// Azure Blob Storage through Azurite: A pushes (checkpoints in blocks, the multipart
/// threshold lowered), an empty B pulls everything as a hit, and two stores pushing the same
/// keys at once under a new prefix each create every record once: Azurite honours
/// `If-None-Match: *`, and the prefix of an `az://container/prefix` URL is where objects go.
#[test]
fn azure_round_trip_through_azurite() {
    let Some(bin) = azurite() else { return };
    let tmp = tempfile::tempdir().unwrap();
    // An ephemeral port, away from the range the SeaweedFS tests take theirs from.
    let port = std::net::TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tmp.path().join("azurite");
    std::fs::create_dir_all(&dir).unwrap();
    let log = std::fs::File::create(dir.join("azurite.log")).unwrap();
    let mut server = std::process::Command::new(&bin)
        .args([
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            &port.to_string(),
            "--location",
            dir.to_str().unwrap(),
            "--disableTelemetry",
            "--skipApiVersionCheck",
        ])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    struct Kill<'a>(&'a mut Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _kill = Kill(&mut server);
    let script = tmp.path().join("create-container.js");
    std::fs::write(&script, CREATE_CONTAINER_JS).unwrap();
    let t0 = Instant::now();
    loop {
        let made = std::process::Command::new("node")
            .arg(&script)
            .args([&port.to_string(), "tarun"])
            .output()
            .unwrap();
        if made.status.success() {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "Azurite did not start: {}{}",
            String::from_utf8_lossy(&made.stderr),
            std::fs::read_to_string(dir.join("azurite.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let endpoint = format!("http://127.0.0.1:{port}");
    let env = [
        ("AZURE_STORAGE_USE_EMULATOR", "true"),
        ("AZURITE_BLOB_STORAGE_URL", endpoint.as_str()),
        ("TARUN_MULTIPART_THRESHOLD", "65536"),
        ("TARUN_LOG", "debug"),
    ];
    let url = "az://tarun/study";
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let out = run_small(&a, url, &env, &[]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(ran(&last_run(&a)).len(), 5, "{log}");
    assert!(!log.contains("could not push"), "{log}");
    assert_eq!(log.matches("in 3 parts").count(), 3, "{log}");
    run_small(&b, url, &env, &["--no-push"]);
    let entries = last_run(&b);
    assert!(
        entries
            .values()
            .all(|(o, d)| o == "cached" && d == "remote"),
        "{entries:?}"
    );
    assert_intact(&b, "after pulling through Azure");
    assert_eq!(fresh_outputs(&a, TINY), fresh_outputs(&b, TINY));

    // Two stores race to create the same records under a new prefix.
    assert_eq!(race_pushes(&a, &b, &env, "az://tarun/race"), 5);
}
