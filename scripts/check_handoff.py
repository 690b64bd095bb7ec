"""Checks a `dpo handoff` folder against the installed TRL, accelerate and datasets.

    /var/tmp/venv/bin/python scripts/check_handoff.py RUN_DIR/handoff

Each `*_config.yaml` (DPOConfig + ModelConfig + ScriptArguments) goes through TRL's own parser
as `trl dpo --config` / `trl/scripts/dpo.py` reads it, but with unknown keys refused (the
script itself only warns). TrlParser sets YAML values as argparse defaults, which argparse
converts only when they are strings, so each value is also checked here against its
argument's type and choices, and read back from the parsed dataclasses. Then the LoRA
section becomes a PEFT config, `accelerate_config.yaml` loads as accelerate's ClusterConfig
(which refuses unknown keys), and `data/` loads with `datasets` into the named splits.
Exits 1 with every problem listed.
"""

import argparse
import sys
from pathlib import Path

import yaml


def type_ok(value, action):
    """Whether argparse would have produced `value` for this argument from a string."""
    if action.type.__name__ == "string_to_bool":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    kinds = {int: (int,), float: (int, float), str: (str,)}.get(action.type, (object,))
    return isinstance(value, kinds)


def check_trl(path, problems):
    from trl import DatasetMixtureConfig, DPOConfig, ModelConfig, ScriptArguments, TrlParser
    from trl.trainer.utils import get_peft_config

    parser = TrlParser((ScriptArguments, DPOConfig, ModelConfig, DatasetMixtureConfig))
    values = yaml.safe_load(path.read_text())
    actions = {a.dest: a for a in parser._actions}
    for key, value in values.items():
        action = actions.get(key)
        if action is None:
            problems.append(f"{path.name}: `{key}`: not a DPOConfig/ModelConfig/ScriptArguments field")
            continue
        items = value if isinstance(value, list) and action.nargs in ("+", "*") else [value]
        if value is not None and action.choices and not all(v in action.choices for v in items):
            problems.append(f"{path.name}: `{key}`: {value!r} not one of {list(action.choices)}")
        if value is None or action.type is None or isinstance(value, str):
            continue  # None is the "unset" of optional fields; strings argparse converts itself
        if isinstance(value, dict) and key in DPOConfig._VALID_DICT_FIELDS:
            continue  # dict fields take a mapping in YAML (a JSON string on the command line)
        if not all(type_ok(v, action) for v in items):
            problems.append(f"{path.name}: `{key}`: {value!r} is not of type {action.type.__name__}")
    try:
        script, training, model, _ = parser.parse_args_and_config(
            ["--config", str(path)], fail_with_unknown_args=True
        )
    except (ValueError, TypeError, SystemExit) as error:
        problems.append(f"{path.name}: TRL refused it: {error}")
        return
    for key, value in values.items():
        for parsed in (script, training, model):
            if hasattr(parsed, key):
                got = getattr(parsed, key)
                if key != "report_to" and got != value and str(got) != str(value):
                    problems.append(f"{path.name}: `{key}`: wrote {value!r}, TRL read {got!r}")
                break
    if model.use_peft:
        lora = get_peft_config(model)
        print(f"{path.name}: PEFT {type(lora).__name__} r={lora.r} alpha={lora.lora_alpha} "
              f"dropout={lora.lora_dropout} targets={sorted(lora.target_modules)}")
    print(f"{path.name}: {len(values)} keys read by TRL: beta={training.beta} "
          f"loss_type={training.loss_type} lr={training.learning_rate} max_steps={training.max_steps}")
    return script


def main():
    cli = argparse.ArgumentParser(description="Check a `dpo handoff` folder.")
    cli.add_argument("folder", type=Path)
    folder = cli.parse_args().folder
    problems = []
    configs = sorted(folder.glob("*_config.yaml"))
    script = None
    for path in configs:
        if path.name != "accelerate_config.yaml":
            script = check_trl(path, problems) or script

    from accelerate.commands.config.config_args import ClusterConfig

    try:
        cluster = ClusterConfig.from_yaml_file(str(folder / "accelerate_config.yaml"))
        print(f"accelerate_config.yaml: {cluster.distributed_type} x {cluster.num_processes} "
              f"on {cluster.num_machines} machine(s), mixed_precision {cluster.mixed_precision}")
    except Exception as error:  # noqa: BLE001 - any failure to load is the finding
        problems.append(f"accelerate_config.yaml: {type(error).__name__}: {error}")

    if script is not None:
        from datasets import load_dataset

        data = load_dataset(script.dataset_name)
        for split in (script.dataset_train_split, script.dataset_test_split):
            if split in data:
                print(f"data: {split}: {len(data[split])} pairs, columns {data[split].column_names}")
        if script.dataset_train_split not in data:
            problems.append(f"data: no `{script.dataset_train_split}` split in {script.dataset_name}")

    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    if not configs:
        print(f"problem: no *_config.yaml in {folder}", file=sys.stderr)
    sys.exit(1 if problems or not configs else 0)


if __name__ == "__main__":
    main()
