//! Hub ids from the local Hugging Face cache: a cache laid out here as huggingface_hub lays it
//! out (refs, snapshots of links into blobs), then `dpo` run with `HF_HUB_CACHE` pointing at
//! it and no network.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

const OLD: &str = "1111111111111111111111111111111111111111";
const NEW: &str = "2222222222222222222222222222222222222222";

/// Stores `files` (name, source) as repository `id`'s snapshot at `commit`: blobs, links.
fn add_snapshot(cache: &Path, repo_dir: &str, commit: &str, files: &[(&str, PathBuf)]) {
    let repo = cache.join(repo_dir);
    for (name, source) in files {
        let blob_name = format!("{commit}-{}", name.replace('/', "_"));
        let blob = repo.join("blobs").join(&blob_name);
        std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
        std::fs::copy(source, &blob).unwrap();
        let link = repo.join("snapshots").join(commit).join(name);
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        let depth = name.matches('/').count() + 2;
        let target = format!("{}blobs/{blob_name}", "../".repeat(depth));
        std::os::unix::fs::symlink(target, &link).unwrap();
    }
}

fn cache() -> PathBuf {
    let cache = common::temp_dir("hub-cache");
    let fixtures = common::hf_fixtures();
    let model = |family: &str| -> Vec<(&'static str, PathBuf)> {
        [
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json",
        ]
        .into_iter()
        .map(|name| (name, fixtures.join(family).join(name)))
        .collect()
    };
    // The old commit is another model (the reference fixture), so a revision shows.
    add_snapshot(&cache, "models--Org--Tiny-Qwen", OLD, &model("qwen2-ref"));
    add_snapshot(&cache, "models--Org--Tiny-Qwen", NEW, &model("qwen2"));
    std::fs::create_dir_all(cache.join("models--Org--Tiny-Qwen/refs")).unwrap();
    std::fs::write(cache.join("models--Org--Tiny-Qwen/refs/main"), NEW).unwrap();
    let pairs = fixtures.join("pairs.jsonl");
    let data = [
        ("data/train-00000-of-00001.jsonl", pairs.clone()),
        ("data/test-00000-of-00001.jsonl", pairs),
    ];
    add_snapshot(&cache, "datasets--Org--Pairs", NEW, &data);
    std::fs::create_dir_all(cache.join("datasets--Org--Pairs/refs")).unwrap();
    std::fs::write(cache.join("datasets--Org--Pairs/refs/main"), NEW).unwrap();
    cache
}

fn dpo(cache: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dpo"))
        .args(args)
        .env("HF_HUB_CACHE", cache)
        .env("HF_HUB_OFFLINE", "1")
        .current_dir(cache)
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

fn eval_loss(cache: &Path, extra: &[&str]) -> f64 {
    let mut args = vec!["eval", "--model", "Org/Tiny-Qwen", "--data", "Org/Pairs"];
    args.extend(["--backend", "cpu", "--json"]);
    args.extend_from_slice(extra);
    let (status, stdout, stderr) = dpo(cache, &args);
    assert_eq!(status, 0, "{stderr}");
    let metrics: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    metrics["loss"].as_f64().unwrap()
}

#[test]
fn models_and_datasets_come_from_the_cache() {
    let cache = cache();
    let out = cache.join("run");
    let (status, _, stderr) = dpo(
        &cache,
        &[
            "train",
            "--model",
            "Org/Tiny-Qwen",
            "--data",
            "Org/Pairs",
            "--eval-data",
            "Org/Pairs",
            "--sft-steps",
            "1",
            "--steps",
            "2",
            "--batch",
            "4",
            "--max-length",
            "64",
            "--backend",
            "cpu",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(status, 0, "{stderr}");
    assert!(out.join("final/model.safetensors").exists());

    // main and the new commit are the same model; the old commit is another.
    let main = eval_loss(&cache, &["--ref", "Org/Tiny-Qwen"]);
    assert_eq!(
        main,
        eval_loss(&cache, &["--revision", NEW, "--ref", "Org/Tiny-Qwen"])
    );
    let old = eval_loss(&cache, &["--revision", OLD, "--ref", "Org/Tiny-Qwen"]);
    assert_ne!(main, old);

    let refused = |args: &[&str], expect: &str| {
        let (status, _, stderr) = dpo(&cache, args);
        assert_eq!(status, 2, "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(expect), "{expect:?} not in {stderr}");
    };
    let eval = [
        "eval",
        "--model",
        "Org/Missing",
        "--data",
        "Org/Pairs",
        "--backend",
        "cpu",
    ];
    refused(&eval, "`hf download Org/Missing`");
    let branch = [
        "eval",
        "--model",
        "Org/Tiny-Qwen",
        "--revision",
        "v2",
        "--data",
        "Org/Pairs",
    ];
    refused(&branch, "revision `v2` is not in the cache");
    let split = [
        "eval",
        "--model",
        "Org/Tiny-Qwen",
        "--data",
        "Org/Pairs",
        "--split",
        "dev",
    ];
    refused(&split, "no data file for split `dev`");
    let _ = std::fs::remove_dir_all(cache);
}

/// A stand-in for the hub's HTTP API, as much of it as a download uses: a repository's file
/// list (`/api/models/ID/revision/REV`) and its files (`/ID/resolve/REV/NAME`, with the
/// `Range` requests, ETag and commit headers clients read). Serves until the test ends;
/// returns its address and the paths it was asked for.
fn fake_hub(
    files: Vec<(&'static str, Vec<u8>)>,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = asked.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            // `Range: bytes=START-[END]`: the first byte alone for metadata, the rest for data.
            let (mut request, mut range) = (String::new(), (0, None));
            reader.read_line(&mut request).unwrap();
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap() == 0 || header.trim().is_empty() {
                    break;
                }
                let lower = header.to_ascii_lowercase();
                if let Some((start, end)) = lower
                    .strip_prefix("range: bytes=")
                    .and_then(|r| r.trim().split_once('-'))
                {
                    range = (start.parse().unwrap_or(0), end.parse::<usize>().ok());
                }
            }
            let path = request.split(' ').nth(1).unwrap_or("").to_string();
            log.lock().unwrap().push(path.clone());
            let listing = format!(
                "{{\"sha\": \"{NEW}\", \"siblings\": [{}]}}",
                files
                    .iter()
                    .map(|(name, _)| format!("{{\"rfilename\": \"{name}\"}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let repo = ["/Org/Remote/", "/datasets/Org/Remote/"];
            let file = files.iter().find(|(name, _)| {
                repo.iter()
                    .any(|r| path == format!("{r}resolve/main/{name}"))
            });
            let api = ["/api/models/Org/Remote/", "/api/datasets/Org/Remote/"];
            let mut out = stream;
            let response = match (api.iter().any(|a| path.starts_with(a)), file) {
                (true, _) => format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{listing}",
                    listing.len()
                )
                .into_bytes(),
                (false, Some((name, bytes))) => {
                    let end = range.1.map_or(bytes.len(), |last| (last + 1).min(bytes.len()));
                    let start = range.0.min(end);
                    let body = &bytes[start..end];
                    let mut head = format!(
                        "HTTP/1.1 206 Partial Content\r\netag: \"etag-{}\"\r\nx-repo-commit: {NEW}\r\ncontent-range: bytes {start}-{}/{}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        name.replace('/', "_"),
                        end.saturating_sub(1),
                        bytes.len(),
                        body.len()
                    )
                    .into_bytes();
                    head.extend_from_slice(body);
                    head
                }
                (false, None) => b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_vec(),
            };
            let _ = out.write_all(&response);
        }
    });
    (address, asked)
}

/// Without HF_HUB_OFFLINE, an id missing from the cache is downloaded (only the files dpo
/// reads) into the cache's layout; the next run finds it there with the server gone quiet.
#[test]
fn missing_ids_are_downloaded_into_the_cache() {
    let cache = common::temp_dir("hub-download");
    let fixture = common::hf_fixtures().join("qwen3");
    let read = |name: &str| std::fs::read(fixture.join(name)).unwrap();
    let files = vec![
        ("config.json", read("config.json")),
        ("model.safetensors", read("model.safetensors")),
        ("tokenizer.json", read("tokenizer.json")),
        ("tokenizer_config.json", read("tokenizer_config.json")),
        ("README.md", b"# not read".to_vec()),
        (
            "data/train-00000-of-00001.jsonl",
            std::fs::read(common::hf_fixtures().join("pairs.jsonl")).unwrap(),
        ),
    ];
    let (endpoint, asked) = fake_hub(files);
    let run = |offline: bool, args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_dpo"));
        command
            .args(args)
            .env("HF_HUB_CACHE", &cache)
            .env("HF_ENDPOINT", &endpoint);
        command.env_remove("HF_HUB_OFFLINE").current_dir(&cache);
        for proxy in [
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "http_proxy",
            "https_proxy",
            "all_proxy",
        ] {
            command.env_remove(proxy);
        }
        if offline {
            command.env("HF_HUB_OFFLINE", "1");
        }
        let out = command.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let eval = [
        "eval",
        "--model",
        "Org/Remote",
        "--data",
        "Org/Remote",
        "--split",
        "train",
    ];
    let eval = [&eval[..], &["--backend", "cpu", "--json"]].concat();
    // A model repo holding a data file too keeps the test to one fake repository; the
    // dataset id is fetched from /api/datasets/..., which this server answers alike.
    let (status, stderr) = run(false, &eval);
    assert_eq!(status, Some(0), "{stderr}");
    let snapshot = cache.join("models--Org--Remote/snapshots").join(NEW);
    assert!(snapshot.join("model.safetensors").exists());
    assert_eq!(
        std::fs::read_to_string(cache.join("models--Org--Remote/refs/main")).unwrap(),
        NEW
    );
    let asked = asked.lock().unwrap().clone();
    assert!(!asked.iter().any(|p| p.contains("README.md")), "{asked:?}");
    assert!(
        asked
            .iter()
            .any(|p| p.starts_with("/api/datasets/Org/Remote")),
        "{asked:?}"
    );
    // Offline now: everything comes from the cache.
    let (status, stderr) = run(true, &eval);
    assert_eq!(status, Some(0), "{stderr}");
    let missing = [
        "eval",
        "--model",
        "Org/Absent",
        "--data",
        "Org/Remote",
        "--split",
        "train",
    ];
    let (status, stderr) = run(false, &missing);
    assert_eq!(status, Some(2), "{stderr}");
    assert!(
        stderr.contains("Org/Absent: not in the Hugging Face cache"),
        "{stderr}"
    );
    assert!(stderr.contains("404"), "{stderr}");
    let _ = std::fs::remove_dir_all(cache);
}
