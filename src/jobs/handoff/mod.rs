//! `dpo handoff`: a run folder turned into TRL + accelerate files, for when one machine is not
//! enough. Every `TrainConfig` field is written as its TRL/PEFT/accelerate counterpart
//! (`trl.rs`) or listed as having none, printed and in the README: none is dropped silently.
//!
//! TRL's own `trl/scripts/dpo.py` runs it, under `accelerate launch`: the pairs go to `data/`
//! as `train.*` and `test.*`, split names `datasets` infers from a local folder, so
//! `dataset_name: <that folder>` loads them and no launcher script of ours is needed.

mod trl;

use std::fmt::Display;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::config::TrainConfig;
use crate::io::{atomic, hf, json};
use crate::model::Precision;
use crate::task::{SHIPPED_HELDOUT, SHIPPED_TRAIN};

/// The run folder's record of what `dpo train` read besides its settings.
pub const INPUTS: &str = "run_inputs.json";

/// Absolute paths; `None`: not given (`data`: the shipped task).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunInputs {
    pub data: Option<PathBuf>,
    pub eval_data: Option<PathBuf>,
    pub model: Option<PathBuf>,
    pub adapter: Option<PathBuf>,
    /// The device it trained on, in words (`cpu (flex)`, `wgpu on …`): for the page's viewer.
    pub backend: Option<String>,
}

impl RunInputs {
    pub fn of(job: &super::TrainJob, backend: &str) -> RunInputs {
        let abs = |p: &Option<PathBuf>| {
            p.as_ref()
                .map(|p| std::path::absolute(p).unwrap_or(p.clone()))
        };
        let (data, eval_data) = (abs(&job.data), abs(&job.eval_data));
        let (model, adapter) = (abs(&job.model), abs(&job.adapter));
        RunInputs {
            data,
            eval_data,
            model,
            adapter,
            backend: Some(backend.into()),
        }
    }
}

pub struct HandoffOptions {
    pub run: PathBuf,
    /// Default: `RUN/handoff`.
    pub out: Option<PathBuf>,
    /// GPUs over all machines (accelerate's `num_processes`); the global batch stays the run's.
    pub processes: usize,
    pub machines: usize,
    /// `auto`, `ddp`, `fsdp` or `deepspeed` (ZeRO-3).
    pub strategy: String,
    /// Hand SFT off too, from the run's starting model, instead of starting DPO from `RUN/sft`.
    pub redo_sft: bool,
    /// Replace what `run_inputs.json` says (or stand in for it in older runs).
    pub inputs: RunInputs,
}

/// Everything `dpo handoff` writes and says; [`Handoff::write`] puts it in `out`.
pub struct Handoff {
    pub out: PathBuf,
    /// File name in `out` and text: `dpo_config.yaml`, `accelerate_config.yaml`, ...
    pub files: Vec<(String, String)>,
    /// File name in `out/data` and bytes.
    pub data: Vec<(String, Vec<u8>)>,
    /// The shell commands that run the same training, in order.
    pub commands: Vec<String>,
    /// "`field` value: why TRL has no counterpart".
    pub unmapped: Vec<String>,
    pub readme: String,
}

/// Per-GPU bytes above which a whole copy per GPU (DDP) is not planned: half of a 40 GB GPU,
/// the rest left for activations. Beyond it FSDP shards weights, gradients and moments.
const DDP_BUDGET: u64 = 20 << 30;

fn bad(path: &Path, what: impl Display) -> Error {
    Error::Input(format!("{}: {what}", path.display()))
}

/// Reads the run folder and decides every file; writes nothing.
pub fn plan(o: &HandoffOptions) -> Result<Handoff, Error> {
    let path = o.run.join(super::CONFIG);
    let bytes = fs::read(&path).map_err(|e| bad(&path, e))?;
    let c: TrainConfig = json::from_slice(&bytes).map_err(|e| bad(&path, e))?;
    c.validate().map_err(|e| bad(&path, e))?;
    if c.steps == 0 {
        return Err(bad(&path, "field `steps`: 0, no DPO phase to hand off"));
    }
    let i = read_inputs(o)?;
    let abs = |p: &Path| std::path::absolute(p).map_err(|e| bad(p, e));
    let out = abs(&o.out.clone().unwrap_or_else(|| o.run.join("handoff")))?;
    let sft = abs(&o.run.join("sft"))?;
    let at = |name: &str| out.join(name).display().to_string();
    let (p, m) = (o.processes.max(1), o.machines.max(1));
    if !c.batch.is_multiple_of(p) {
        let message = format!("--processes {p}: must divide the run's batch {}", c.batch);
        return Err(Error::Input(message));
    }

    // Where DPO starts: dpo's DPO starts from its SFT model, also its reference: `sft/` when
    // it holds a model. An adapter there (LoRA on a --model) is merged first, so the merged
    // model is TRL's reference and a fresh adapter on it the policy. No `sft/` (or
    // --redo-sft): SFT is handed off too, from the model the run started from.
    let no_model = || bad(&o.run.join(INPUTS), "no `model` recorded: pass --model");
    let base = || i.model.clone().ok_or_else(no_model);
    let model = sft.join(hf::CONFIG).exists();
    let adapter = sft.join("adapter_config.json").exists();
    let redo = (o.redo_sft || !model && !adapter) && c.sft_steps > 0;
    if redo && (i.model.is_none() || i.adapter.is_some()) {
        let why = match i.model {
            None => format!(
                "no SFT model: the fresh `{}` model exists only in this run; resume it past \
                 SFT (dpo train --resume)",
                c.preset.name()
            ),
            Some(_) => {
                "SFT of a continued --adapter is not handed off: `dpo merge` it first".into()
            }
        };
        return Err(bad(&sft, why));
    }
    let merge = if redo {
        c.lora.is_some().then(|| out.join("trl-sft"))
    } else if model {
        None
    } else if adapter && (c.sft_steps > 0 || i.adapter.is_some()) {
        Some(sft.clone())
    } else {
        i.adapter.clone()
    };
    let start = match (&merge, redo, model) {
        (Some(_), ..) => at("sft-merged"),
        (None, true, _) => at("trl-sft"),
        (None, false, true) => sft.display().to_string(),
        (None, false, false) => base()?.display().to_string(),
    };
    let counted = if model && !redo { sft.clone() } else { base()? };
    let params = count_params(&counted)?;

    // Full fine-tuning holds 16 bytes a parameter (f32 weights, gradients, two AdamW moments)
    // and 4 more for a reference model unless precomputed; LoRA only the frozen f32 weights.
    let per_param: u64 = match (&c.lora, c.precompute_ref) {
        (Some(_), _) => 4,
        (None, true) => 16,
        (None, false) => 20,
    };
    let strategy = match o.strategy.as_str() {
        "auto" if params * per_param > DDP_BUDGET => "fsdp",
        "auto" => "ddp",
        s @ ("ddp" | "fsdp" | "deepspeed") => s,
        s => {
            let message = format!("--strategy {s}: one of auto, ddp, fsdp, deepspeed");
            return Err(Error::Input(message));
        }
    };
    let asked = [" (--strategy)", ""][(o.strategy == "auto") as usize];
    let why = format!(
        "{strategy}{asked}; {params} parameters x {per_param} bytes (f32 weights, gradients, AdamW \
         moments{}) = {:.3} GiB on each GPU holding a whole copy; DDP up to {} GiB",
        if per_param == 20 { ", reference" } else { "" },
        (params * per_param) as f64 / (1u64 << 30) as f64,
        DDP_BUDGET >> 30
    );

    let data = data_files(&i)?;
    let per_process = c.batch / p;
    // Micro-batches no larger than the run's, which fitted its device.
    let micro = (1..=per_process.min(c.batch / c.grad_accum))
        .rev()
        .find(|d| per_process.is_multiple_of(*d))
        .unwrap_or(1);
    let hf_config = fs::read(counted.join(hf::CONFIG)).unwrap_or_default();
    let place = trl::Place {
        start,
        out: &out,
        batch: (micro, per_process / micro, p),
        eval: data.len() > 1,
        strategy,
        hf_config: &hf_config,
    };
    let (keys, mut rows, unmapped) = trl::dpo_config(&c, &place);
    let preset = match &i.model {
        None => format!("the fresh model, trained by SFT into {}", sft.display()),
        Some(model) => format!("unused: the run started from {}", model.display()),
    };
    rows.insert(0, ("preset".into(), preset));
    if merge.is_some() {
        let how = "merged into sft-merged/ (TRL's reference); DPO trains a fresh adapter on it, \
                   where dpo went on training the SFT one";
        rows.push(("the SFT adapter".into(), how.into()));
    }
    let title = format!(
        "TRL 1.16 DPOConfig + ModelConfig + ScriptArguments, from {}",
        path.display()
    );
    let bf16 = c.precision == Precision::Bf16;
    let mut files = vec![
        ("dpo_config.yaml".to_string(), trl::yaml(&title, &keys)),
        (
            "accelerate_config.yaml".into(),
            trl::accelerate(strategy, p, m, bf16, &why),
        ),
    ];
    let rank = match m {
        1 => "",
        _ => " --machine_rank $MACHINE_RANK --main_process_ip $MAIN_HOST --main_process_port 29500",
    };
    let launch = |config: &str| {
        let accelerate = sh(&at("accelerate_config.yaml"));
        format!(
            "accelerate launch --config_file {accelerate}{rank} -m trl.scripts.dpo --config {}",
            sh(&at(config))
        )
    };
    let mut commands = Vec::new();
    let sft_row = if redo {
        let keys = trl::sft_config(&keys, &c, &base()?, &out);
        let title = "Stage 1, dpo's SFT phase: DPOTrainer with loss_type [sft]";
        files.push(("sft_config.yaml".into(), trl::yaml(title, &keys)));
        commands.push(launch("sft_config.yaml"));
        "sft_config.yaml: max_steps, learning_rate, loss_type [sft]".into()
    } else if c.sft_steps == 0 {
        "no SFT phase".into()
    } else {
        format!(
            "done by the run ({} steps): DPO starts from its SFT model",
            c.sft_steps
        )
    };
    rows.push(("sft_steps, sft_lr".into(), sft_row));
    if let Some(adapter) = &merge {
        let (model, adapter) = (
            sh(&base()?.display().to_string()),
            sh(&adapter.display().to_string()),
        );
        commands.push(format!(
            "dpo merge --model {model} --adapter {adapter} --out {}",
            sh(&at("sft-merged"))
        ));
    }
    commands.push(launch("dpo_config.yaml"));
    let readme = trl::readme(&commands, &rows, &unmapped, &why, m);
    Ok(Handoff {
        out,
        files,
        data,
        commands,
        unmapped,
        readme,
    })
}

impl Handoff {
    /// Writes each file atomically, `data/` as a whole; TRL's outputs beside them
    /// (`trl-dpo/`, `trl-sft/`) are left alone.
    pub fn write(&self) -> Result<(), Error> {
        let failed =
            |p: PathBuf| move |e| Error::Runtime(format!("writing {} failed: {e}", p.display()));
        fs::create_dir_all(&self.out).map_err(failed(self.out.clone()))?;
        let data: Vec<(&str, &[u8])> = self
            .data
            .iter()
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect();
        let dir = self.out.join("data");
        atomic::write_dir(&dir, &data).map_err(failed(dir))?;
        let readme = ("README.md".to_string(), self.readme.clone());
        for (name, text) in self.files.iter().chain([&readme]) {
            let path = self.out.join(name);
            atomic::write_file(&path, text.as_bytes()).map_err(failed(path))?;
        }
        Ok(())
    }
}

/// The record in the run folder, each field replaced by its flag when one is given.
fn read_inputs(o: &HandoffOptions) -> Result<RunInputs, Error> {
    let path = o.run.join(INPUTS);
    let r: RunInputs = match fs::read(&path) {
        Ok(bytes) => json::from_slice(&bytes).map_err(|e| bad(&path, e))?,
        Err(_) if o.inputs.data.is_some() => RunInputs::default(),
        Err(e) => {
            let what = format!(
                "{e} (a run from before `dpo handoff`): pass --data, and \
                --eval-data and --model as given to `dpo train`"
            );
            return Err(bad(&path, what));
        }
    };
    let f = o.inputs.clone();
    Ok(RunInputs {
        data: f.data.or(r.data),
        eval_data: f.eval_data.or(r.eval_data),
        model: f.model.or(r.model),
        adapter: f.adapter.or(r.adapter),
        backend: r.backend,
    })
}

/// `data/`'s files: the pairs trained on and held out, by dpo's rule (the held-out file, the
/// shipped task's, or the last tenth of the training pairs, then not trained on). Copies, so
/// that the folder moves to a cluster whole.
fn data_files(i: &RunInputs) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let Some(data) = &i.data else {
        let (train, test) = (SHIPPED_TRAIN.1.into(), SHIPPED_HELDOUT.1.into());
        return Ok(vec![
            ("train.jsonl".into(), train),
            ("test.jsonl".into(), test),
        ]);
    };
    let read = |split: &str, p: &Path| {
        let name = p.display().to_string();
        let kinds = [".jsonl.gz", ".json.gz", ".parquet", ".json"];
        let ext = kinds
            .into_iter()
            .find(|e| name.ends_with(e))
            .unwrap_or(".jsonl");
        Ok::<_, Error>((format!("{split}{ext}"), fs::read(p).map_err(|e| bad(p, e))?))
    };
    if let Some(eval) = &i.eval_data {
        return Ok(vec![read("train", data)?, read("test", eval)?]);
    }
    let (name, bytes) = read("train", data)?;
    if name != "train.jsonl" && name != "train.json" {
        let what = "the run held out its last tenth, and `dpo handoff` splits only plain JSONL: \
            split the file and pass --data and --eval-data";
        return Err(bad(data, what));
    }
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    let keep = lines.len() - lines.len() / 10;
    let mut files = vec![(
        "train.jsonl".to_string(),
        lines[..keep].concat().into_bytes(),
    )];
    if keep < lines.len() {
        files.push(("test.jsonl".into(), lines[keep..].concat().into_bytes()));
    }
    Ok(files)
}

/// Parameters in a model folder's `model.safetensors`, from its header alone.
fn count_params(dir: &Path) -> Result<u64, Error> {
    use std::io::Read;
    let path = dir.join(hf::WEIGHTS);
    let mut file = fs::File::open(&path).map_err(|e| bad(&path, e))?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(|e| bad(&path, e))?;
    let mut header = vec![0; u64::from_le_bytes(len).min(100 << 20) as usize];
    file.read_exact(&mut header).map_err(|e| bad(&path, e))?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| bad(&path, e))?;
    let shapes = header.values().filter_map(|t| t["shape"].as_array());
    Ok(shapes
        .map(|s| s.iter().filter_map(|d| d.as_u64()).product::<u64>())
        .sum())
}

/// A word for a shell command line: quoted unless it holds only safe characters.
fn sh(s: &str) -> String {
    match s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c))
    {
        true => s.to_string(),
        false => format!("'{}'", s.replace('\'', r"'\''")),
    }
}
