//! `dpo train`'s LoRA flags, applied over a settings file's `[lora]`.

use clap::Args;
use dpo::model::LoraConfig;

/// LoRA adapters (PEFT's LoraConfig); --lora-r turns them on.
#[derive(Args)]
pub struct LoraArgs {
    /// Train rank-R LoRA adapters instead of every weight (a fresh model: SFT trains every weight, DPO the adapters).
    #[arg(long)]
    lora_r: Option<usize>,
    /// Scale of the adapters' update: alpha / r (default 8, as PEFT's).
    #[arg(long, requires = "lora_r")]
    lora_alpha: Option<f64>,
    /// Dropout on the adapters' input while training.
    #[arg(long, requires = "lora_r")]
    lora_dropout: Option<f64>,
    /// Layers to adapt, separated by commas (q_proj,v_proj; attn.c_attn), or all-linear (the default).
    #[arg(long, requires = "lora_r")]
    lora_targets: Option<String>,
}

impl LoraArgs {
    /// The settings with these flags applied over the file's `[lora]`, if any.
    pub fn apply(&self, lora: &mut Option<LoraConfig>) {
        if let Some(r) = self.lora_r {
            let config = lora.get_or_insert_with(LoraConfig::default);
            config.r = r;
            if let Some(alpha) = self.lora_alpha {
                config.alpha = alpha;
            }
            if let Some(dropout) = self.lora_dropout {
                config.dropout = dropout;
            }
            if let Some(targets) = &self.lora_targets {
                config.targets = targets.split(',').map(|t| t.trim().to_string()).collect();
            }
        }
    }
}
