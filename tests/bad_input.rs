//! The bad-input corpus, `tests/bad_inputs/cases.toml` (its header explains a case): each
//! case runs through the real `dpo` binary and must exit 2 with exactly one line on stderr
//! that names the file, the line or tensor, and the field; no panic, no backtrace, and nothing
//! written to the run folder.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use dpo::io::Saved;
use dpo::model::LoraConfig;
use dpo::model::lora::{self, FreshFactors};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Manifest {
    case: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    args: String,
    expect: Vec<String>,
    #[serde(default)]
    generate: Option<String>,
    #[serde(default)]
    remove: Vec<String>,
}

/// The folders one case runs with.
struct Folders {
    case: PathBuf,
    model: PathBuf,
    out: PathBuf,
    pairs: PathBuf,
}

#[test]
fn every_bad_input_is_refused_with_one_clear_line() {
    let root = root();
    let corpus = root.join("tests/bad_inputs");
    let manifest = fs::read_to_string(corpus.join("cases.toml")).unwrap();
    let manifest: Manifest = toml::from_str(&manifest).unwrap();
    let work = common::temp_dir("bad-inputs");
    let base_model = work.join("base-model");
    common::write_model_folder(&base_model);
    let pairs = root.join("examples/data/formats/standard.jsonl");

    let mut failures = Vec::new();
    for case in &manifest.case {
        let started = std::time::Instant::now();
        let folders = Folders {
            case: work.join(&case.name).join("case"),
            model: work.join(&case.name).join("model"),
            out: work.join(&case.name).join("out"),
            pairs: pairs.clone(),
        };
        set_up(case, &corpus.join(&case.name), &base_model, &folders);
        let result = run(case, &folders);
        let seconds = started.elapsed().as_secs_f64();
        match result {
            Ok(line) => println!("{} ({seconds:.2} s) {line}", case.name),
            Err(problem) => failures.push(format!("{}: {problem}", case.name)),
        }
    }
    // A folder that no case names would never run.
    for entry in fs::read_dir(&corpus).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if !name.ends_with(".toml") && !manifest.case.iter().any(|c| c.name == name) {
            failures.push(format!("{name}: a folder without an entry in cases.toml"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        manifest.case.len(),
        failures.join("\n")
    );
    assert!(manifest.case.len() >= 40, "{} cases", manifest.case.len());
    fs::remove_dir_all(work).unwrap();
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs one case and checks what it must show; returns its error line.
fn run(case: &Case, folders: &Folders) -> Result<String, String> {
    let path = |p: &Path| p.display().to_string();
    let mut args: Vec<String> = case
        .args
        .split_whitespace()
        .map(|arg| {
            arg.replace("{case}", &path(&folders.case))
                .replace("{model}", &path(&folders.model))
                .replace("{pairs}", &path(&folders.pairs))
                .replace("{fixtures}", &path(&root().join("tests/fixtures/hf")))
        })
        .collect();
    let defaults = match args[0].as_str() {
        "train" => vec![
            "--out",
            &*path(&folders.out),
            "--samples",
            "0",
            "--sft-steps",
            "1",
            "--steps",
            "1",
        ]
        .into_iter()
        .map(String::from)
        .collect(),
        _ => Vec::new(),
    };
    args.extend(defaults);
    args.extend(["--backend".into(), "cpu".into()]);

    let before = snapshot(&folders.out);
    let (code, stdout, stderr) = common::dpo(&args);
    let lines: Vec<&str> = stderr.lines().collect();
    let problem = if code != 2 {
        format!("exit status {code}")
    } else if lines.len() != 1 || !lines[0].starts_with("error: ") {
        format!("{} lines on stderr, not one error line", lines.len())
    } else if let Some(missing) = case.expect.iter().find(|e| !lines[0].contains(e.as_str())) {
        format!("`{missing}` missing")
    } else if !stdout.is_empty() {
        "something on stdout".into()
    } else if snapshot(&folders.out) != before {
        "the run folder changed".into()
    } else {
        return Ok(lines[0].to_string());
    };
    Err(format!(
        "{problem}\n  dpo {}\n  stderr: {stderr}",
        args.join(" ")
    ))
}

/// Lays out a case's folders: its committed files, the good model with the case's `model/`
/// files over it, then whatever `generate` builds.
fn set_up(case: &Case, committed: &Path, base_model: &Path, folders: &Folders) {
    fs::create_dir_all(&folders.case).unwrap();
    if committed.exists() {
        copy_dir(committed, &folders.case);
    }
    copy_dir(base_model, &folders.model);
    let overlay = folders.case.join("model");
    if overlay.exists() {
        for entry in fs::read_dir(&overlay).unwrap() {
            let file = entry.unwrap().path();
            let name = file.file_name().unwrap().to_str().unwrap();
            match name.strip_suffix(".patch.json") {
                Some(stem) => patch_json(&folders.model.join(format!("{stem}.json")), &file),
                None => {
                    fs::copy(&file, folders.model.join(name)).unwrap();
                }
            }
        }
    }
    for name in &case.remove {
        fs::remove_file(folders.model.join(name)).unwrap();
    }
    if let Some(builder) = &case.generate {
        generate(builder, folders);
    }
}

/// Builds the cases too large or too binary to commit.
fn generate(builder: &str, folders: &Folders) {
    let weights = folders.model.join("model.safetensors");
    let tensor = |name: &str| format!("transformer.{name}");
    match builder {
        "100mb-line" => {
            let (head, tail) = (r#"{"prompt": ""#, r#"", "chosen": " a", "rejected": " b"}"#);
            let fill = "x".repeat(100 * 1024 * 1024 - head.len() - tail.len());
            let good = r#"{"prompt": "p", "chosen": " a", "rejected": " b"}"#;
            let text = format!("{good}\n{head}{fill}{tail}\n");
            fs::write(folders.case.join("pairs.jsonl"), text).unwrap();
        }
        "directory" => fs::create_dir_all(folders.case.join("pairs.jsonl")).unwrap(),
        "truncate" => {
            let bytes = fs::read(&weights).unwrap();
            fs::write(&weights, &bytes[..bytes.len() * 6 / 10]).unwrap();
        }
        "header-length" => {
            let mut bytes = fs::read(&weights).unwrap();
            bytes[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
            fs::write(&weights, bytes).unwrap();
        }
        "offsets" => common::edit_safetensors_header(&weights, |header| {
            let offsets = &mut header[&tensor("wte.weight")]["data_offsets"][1];
            *offsets = (offsets.as_u64().unwrap() - 4).into();
        }),
        "shape" => common::edit_safetensors_header(&weights, |header| {
            let shape = header[&tensor("wpe.weight")]["shape"]
                .as_array_mut()
                .unwrap();
            shape.reverse();
        }),
        "dtype" => common::edit_safetensors_header(&weights, |header| {
            header[&tensor("wte.weight")]["dtype"] = "I32".into();
        }),
        "dtype-size" => common::edit_safetensors_header(&weights, |header| {
            header[&tensor("ln_f.bias")]["dtype"] = "F64".into();
        }),
        "missing-tensor" => common::edit_safetensors_header(&weights, |header| {
            let entry = header.remove(&tensor("ln_f.bias")).unwrap();
            header.insert(tensor("ln_f.bias_renamed"), entry);
        }),
        "out-file" => fs::write(&folders.out, "not a folder").unwrap(),
        "adapter" => {
            // A good adapter for the model, with `adapter-patch.json` merged into its config.
            let device = burn::tensor::Device::flex();
            let (info, model) = dpo::io::hf::load_dir(&folders.model, &device).unwrap();
            let lora = LoraConfig::default();
            let mut fresh = FreshFactors::new(&lora, &info.config, 1).unwrap();
            let model = lora::attach(model, &mut fresh).unwrap();
            let export = dpo::io::peft::export(&model, &lora, &info.config, "model");
            let files = burn::tensor::read_sync(export).unwrap();
            let dir = folders.case.join("adapter");
            Saved::Adapter(files).write_dir(&dir).unwrap();
            patch_json(
                &dir.join("adapter_config.json"),
                &folders.case.join("adapter-patch.json"),
            );
        }
        "out-run" => {
            // A run folder of the same command line, as far as the settings go.
            let config = dpo::config::TrainConfig {
                sft_steps: 1,
                steps: 1,
                ..Default::default()
            };
            fs::create_dir_all(&folders.out).unwrap();
            let json = serde_json::to_vec_pretty(&config).unwrap();
            fs::write(folders.out.join("train_config.json"), json).unwrap();
        }
        other => panic!("no builder `{other}`"),
    }
}

/// Merges a JSON merge patch (RFC 7386: objects merge, `null` deletes) into the file `target`.
fn patch_json(target: &Path, patch: &Path) {
    fn merge(target: &mut Value, patch: &Value) {
        let Value::Object(patch) = patch else {
            *target = patch.clone();
            return;
        };
        if !target.is_object() {
            *target = Value::Object(Default::default());
        }
        let object = target.as_object_mut().unwrap();
        for (key, value) in patch {
            match value {
                Value::Null => drop(object.remove(key)),
                _ => merge(object.entry(key).or_insert(Value::Null), value),
            }
        }
    }
    let mut value: Value = serde_json::from_slice(&fs::read(target).unwrap()).unwrap();
    merge(
        &mut value,
        &serde_json::from_slice(&fs::read(patch).unwrap()).unwrap(),
    );
    fs::write(target, serde_json::to_vec_pretty(&value).unwrap()).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        match path.is_dir() {
            true => copy_dir(&path, &target),
            false => drop(fs::copy(&path, &target).unwrap()),
        }
    }
}

/// `dir` and everything under it, files with their contents (nothing when it does not exist).
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    if dir.is_file() {
        return vec![(dir.to_path_buf(), fs::read(dir).unwrap())];
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    // The folder itself counts: creating an empty run folder is a change too.
    let mut files = vec![(dir.to_path_buf(), Vec::new())];
    files.extend(entries.flat_map(|entry| snapshot(&entry.unwrap().path())));
    files.sort();
    files
}
