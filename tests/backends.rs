//! The same steps on the CPU backend and on wgpu (lavapipe in CI) give the same metrics.
//! This test needs a Vulkan adapter; CI installs Mesa's lavapipe so it always has one.

mod common;

use burn::tensor::Device;
use dpo::dpo::Metrics;
use dpo::model::Preset;
use dpo::train::Start;

fn run_steps(device: Device) -> Vec<Metrics> {
    let prepared = common::shipped_run(common::small_config(Preset::Micro), 16);
    let mut run = prepared.start(&device, Start::Fresh).unwrap();
    common::run_to_end(&mut run)
}

#[test]
fn cpu_and_wgpu_agree_step_for_step() {
    let cpu = run_steps(Device::flex());
    let wgpu = run_steps(Device::wgpu(Default::default()));
    assert_eq!(cpu.len(), 5);
    for (a, b) in cpu.iter().zip(&wgpu) {
        let fields = [
            ("loss", Some(a.loss), Some(b.loss)),
            ("rewards/chosen", a.rewards_chosen, b.rewards_chosen),
            ("rewards/rejected", a.rewards_rejected, b.rewards_rejected),
            ("rewards/margins", a.rewards_margins, b.rewards_margins),
            (
                "rewards/accuracies",
                a.rewards_accuracies,
                b.rewards_accuracies,
            ),
            ("logps/chosen", a.logps_chosen, b.logps_chosen),
            ("logps/rejected", a.logps_rejected, b.logps_rejected),
            ("grad_norm", a.grad_norm, b.grad_norm),
        ];
        for (name, x, y) in fields {
            assert_eq!(x.is_some(), y.is_some(), "{name} at step {}", a.step);
            if name == "rewards/accuracies" && rewards_are_rounding(a) && rewards_are_rounding(b) {
                continue;
            }
            if let (Some(x), Some(y)) = (x, y) {
                assert!(
                    common::close(x, y, 1e-4),
                    "{name} at step {} ({:?}): cpu {x} vs wgpu {y}",
                    a.step,
                    a.phase
                );
            }
        }
    }
    // The DPO steps really moved the policy away from its reference.
    assert!(cpu.last().unwrap().rewards_margins.unwrap().abs() > 0.0);
}

/// At the first DPO step the policy is its reference, so every reward is 0 up to the
/// backend's rounding, and the accuracy (the share of pairs whose chosen reward is strictly
/// above the rejected one) compares two rounding errors: a backend whose kernels differ
/// between the two forwards (autotune, fusion) counts some pairs where the CPU counts none.
fn rewards_are_rounding(m: &Metrics) -> bool {
    let tiny = |r: Option<f64>| r.is_some_and(|r| r.abs() < 1e-4);
    tiny(m.rewards_chosen) && tiny(m.rewards_rejected)
}
