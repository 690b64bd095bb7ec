//! `dpo frontier` end to end at a test-sized scale: every loss x beta point lands in the data
//! file with finite numbers, and the plot draws each loss's line and each beta's label. (The
//! science, reward rising with KL, is shown by the committed docs/reward_kl.json at full scale.)

mod common;

#[test]
fn frontier_writes_every_point_and_the_plot() {
    let out = common::temp_dir("frontier");
    let run = common::dpo_cli(&[
        "frontier",
        "--preset",
        "micro",
        "--sft-steps",
        "10",
        "--steps",
        "4",
        "--betas",
        "0.1,1",
        "--losses",
        "sigmoid,hinge",
        "--prompts",
        "3",
        "--samples",
        "2",
        "--evals",
        "2",
        "--backend",
        "cpu",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(run.status, 0, "{}", run.stderr);
    let data: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("reward_kl.json")).unwrap()).unwrap();
    let points = data["points"].as_array().unwrap();
    let keys: Vec<(String, f64, u64)> = points
        .iter()
        .map(|p| {
            let loss = p["loss"].as_str().unwrap().to_owned();
            (
                loss,
                p["beta"].as_f64().unwrap(),
                p["step"].as_u64().unwrap(),
            )
        })
        .collect();
    // Each run scored twice: halfway (step 2) and at its end (step 4).
    let expected: Vec<(String, f64, u64)> = ["sigmoid", "hinge"]
        .iter()
        .flat_map(|l| [0.1, 1.0].map(|b| [(l.to_string(), b, 2), (l.to_string(), b, 4)]))
        .flatten()
        .collect();
    assert_eq!(keys, expected);
    // The point with the least KL of each loss is on its frontier by definition.
    for loss in ["sigmoid", "hinge"] {
        let nearest = points
            .iter()
            .filter(|p| p["loss"] == loss)
            .min_by(|a, b| {
                a["kl"]
                    .as_f64()
                    .unwrap()
                    .total_cmp(&b["kl"].as_f64().unwrap())
            })
            .unwrap();
        assert_eq!(nearest["frontier"], true, "{nearest}");
    }
    for p in points {
        assert_eq!(p["samples"], 6, "{p}");
        assert!(p["kl"].as_f64().unwrap().is_finite() && p["reward"].as_f64().unwrap().is_finite());
    }
    assert_eq!(data["sft"]["samples"], 6);
    let svg = std::fs::read_to_string(out.join("reward_kl.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(
        svg.matches("<circle").count(),
        points.len(),
        "every scored point"
    );
    assert_eq!(svg.matches("β=").count(), 4, "one label per run");
    for loss in ["sigmoid", "hinge", "SFT (reference)"] {
        assert!(
            svg.contains(&format!("\n{loss}\n</text>")),
            "{loss} in the legend"
        );
    }
    let _ = std::fs::remove_dir_all(out);
}
