"""Pure functions on strings: the sbatch script (golden file), SLURM and nvidia-smi parsers, names, states."""

from __future__ import annotations

import pytest
from paths import GOLDEN

from trainer.gpus import GpuInfo, choose_gpu, parse_nvidia_smi
from trainer.names import InvalidNameError, validate_name
from trainer.runner import ProcessIdentity, parse_proc_stat
from trainer.slurm_text import (
    SchedulerRecord,
    SlurmOptions,
    map_slurm_state,
    parse_sacct,
    parse_sbatch_parsable,
    parse_scontrol_jobs,
    parse_squeue,
    render_sbatch_script,
)
from trainer.states import JobState

GOLDEN = GOLDEN / "trainer_extend.sbatch"


def _golden_script() -> str:
    return render_sbatch_script(
        job_name="nnwatch-0123456789ab",
        output="/shared/nnwatch/jobs/0123456789ab/job.log",
        options=SlurmOptions(partition="gpu", time="2-00:00:00", gres="gpu:a100:1", account="lab42",
                             extra=("--qos=high", "--mem=64G")),
        argv=["/opt/venv/bin/nnUNetv2_train", "Dataset004_Hippocampus", "3d_fullres", "0",
              "-tr", "nnUNetTrainer_2000epochs", "-p", "nnUNetPlans", "-device", "cuda"],
        env={"nnUNet_results": "/shared/results with space", "nnUNet_raw": "/shared/raw",
             "nnUNet_preprocessed": "/shared/pre$processed"},
        exit_code_path="/shared/nnwatch/jobs/0123456789ab/exit_code",
    )


def test_sbatch_script_matches_golden_file() -> None:
    assert _golden_script() == GOLDEN.read_text()


def test_sbatch_script_quotes_values_a_shell_would_expand() -> None:
    script = _golden_script()
    assert "export nnUNet_results='/shared/results with space'" in script
    assert "export nnUNet_preprocessed='/shared/pre$processed'" in script  # no expansion of $processed


def test_sbatch_script_omits_gres_when_empty() -> None:
    script = render_sbatch_script(job_name="nnwatch-abcdef", output="/tmp/x.log", options=SlurmOptions(gres=""),
                                  argv=["true"], env={}, exit_code_path="/tmp/code")
    assert "--gres" not in script
    assert "--partition" not in script


@pytest.mark.parametrize("kwargs", [
    {"partition": "gpu; rm -rf ~"},
    {"time": "$(reboot)"},
    {"gres": "gpu:1 --wrap=x"},
    {"account": "a b"},
    {"extra": ("-p", "other")},
    {"extra": ("--output=/etc/passwd",)},
    {"extra": ("--comment=`id`",)},
])
def test_slurm_options_refuse_unsafe_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SlurmOptions(**kwargs)  # type: ignore[arg-type]


def test_slurm_options_from_cli_split_extra_options() -> None:
    options = SlurmOptions.from_cli("gpu", "1:00:00", None, None, "--qos=high --mem=8G")
    assert options.extra == ("--qos=high", "--mem=8G")
    assert options.gres == "gpu:1"
    assert SlurmOptions.from_cli(None, None, "", None, None).gres == ""


def test_sbatch_script_refuses_log_path_with_spaces() -> None:
    with pytest.raises(ValueError, match="spaces or quotes"):
        render_sbatch_script(job_name="nnwatch-abcdef", output="/tmp/my jobs/x.log", options=SlurmOptions(),
                             argv=["true"], env={}, exit_code_path="/tmp/code")


def test_parse_sbatch_parsable() -> None:
    assert parse_sbatch_parsable("4242\n") == "4242"
    assert parse_sbatch_parsable("4242;cluster1\n") == "4242"
    with pytest.raises(ValueError):
        parse_sbatch_parsable("sbatch: error: Batch job submission failed\n")


def test_parse_squeue_real_output() -> None:
    text = "2|k.sh|FAILED|NonZeroExitCode\n1|nnwatch-abc|RUNNING|None\n3|nnwatch-def|PENDING|Resources\n"
    records = parse_squeue(text)
    assert records["1"] == SchedulerRecord("1", "RUNNING", name="nnwatch-abc")
    assert map_slurm_state(records["3"]) == (JobState.QUEUED, "Resources")
    assert map_slurm_state(records["2"])[0] is JobState.FAILED


def test_parse_sacct_states_and_exit_codes() -> None:
    text = ("11|nnwatch-a|CANCELLED by 1000|0:15\n12|nnwatch-b|TIMEOUT|0:0\n13|nnwatch-c|COMPLETED|0:0\n"
            "14|nnwatch-d|FAILED|1:0\n15|nnwatch-e|OUT_OF_MEMORY|0:125\n")
    records = parse_sacct(text)
    assert map_slurm_state(records["11"]) == (JobState.CANCELLED, "cancelled in SLURM (by 1000)")
    state, reason = map_slurm_state(records["12"])
    assert state is JobState.FAILED and "time limit" in (reason or "")
    assert map_slurm_state(records["13"]) == (JobState.SUCCEEDED, None)
    assert records["14"].exit_code == 1
    assert "out of memory" in (map_slurm_state(records["15"])[1] or "")


def test_parse_scontrol_show_job_one_liners() -> None:
    text = (
        "JobId=1 JobName=nnwatch-abc UserId=root(0) GroupId=root(0) JobState=CANCELLED Reason=None "
        "Dependency=(null) ExitCode=0:15 RunTime=00:00:01 Command=/tmp/sl1/j.sh StdOut=/tmp/sl1/j.log\n"
        "JobId=2 JobName=k.sh JobState=FAILED Reason=NonZeroExitCode ExitCode=3:0 NodeList=localhost\n"
        "No jobs in the system\n"
    )
    records = parse_scontrol_jobs(text)
    assert set(records) == {"1", "2"}
    assert records["1"].signal == 15 and records["1"].name == "nnwatch-abc"
    assert map_slurm_state(records["1"])[0] is JobState.CANCELLED
    assert records["2"].exit_code == 3 and records["2"].reason == "NonZeroExitCode"


def test_completed_with_nonzero_exit_code_is_a_failure() -> None:
    assert map_slurm_state(SchedulerRecord("1", "COMPLETED", exit_code=2))[0] is JobState.FAILED


def test_parse_nvidia_smi_and_choose_the_freest_gpu() -> None:
    text = "0, 1024\n1, 40536\n2, 40536\n3, [N/A]\nNVIDIA-SMI has failed\n"
    gpus = parse_nvidia_smi(text)
    assert gpus == [GpuInfo(0, 1024), GpuInfo(1, 40536), GpuInfo(2, 40536)]
    assert choose_gpu(gpus) == 1  # most free memory, lowest index on a tie
    assert choose_gpu([]) is None
    assert parse_nvidia_smi("") == []


@pytest.mark.parametrize("kind,value", [
    ("dataset", "Dataset001_x; rm -rf ~"),
    ("dataset", "Dataset001_$(id)"),
    ("dataset", "../Dataset001_x"),
    ("trainer", "nnUNetTrainer; import os"),
    ("plans", "nnUNetPlans\nrm"),
    ("configuration", "3d fullres"),
    ("fold", "0 1"),
])
def test_names_that_could_reach_a_shell_are_refused(kind: str, value: str) -> None:
    with pytest.raises(InvalidNameError, match="refusing"):
        validate_name(kind, value)


def test_ordinary_nnunet_names_pass() -> None:
    assert validate_name("dataset", "Dataset004_Hippocampus") == "Dataset004_Hippocampus"
    assert validate_name("trainer", "nnUNetTrainerDA5_2000epochs")
    assert validate_name("plans", "nnUNetResEncUNetMPlans")
    assert validate_name("configuration", "3d_cascade_fullres")
    assert validate_name("fold", "all")


def test_proc_stat_parsing_survives_odd_command_names() -> None:
    fields = " ".join(str(n) for n in range(4, 23))  # fields 4..22; field 22 is the start time
    text = f"4242 (evil) S (name)) S {fields} 23 24\n"
    assert parse_proc_stat(text) == ("S", 22)


def test_pid_reuse_is_not_the_same_process() -> None:
    recorded = ProcessIdentity(pid=4242, start_ticks=1000, boot_id="boot-a")
    assert recorded.same_process(ProcessIdentity(4242, 1000, "boot-a", "S"))
    assert not recorded.same_process(ProcessIdentity(4242, 5000, "boot-a", "S"))  # pid reused later
    assert not recorded.same_process(ProcessIdentity(4242, 1000, "boot-b", "S"))  # after a reboot
    assert not recorded.same_process(ProcessIdentity(4242, 1000, "boot-a", "Z"))  # exited, not reaped
    assert not recorded.same_process(None)


def test_job_states_are_one_enum() -> None:
    assert [state.value for state in JobState] == ["queued", "running", "succeeded", "failed", "cancelled"]
    assert JobState.RUNNING.active and not JobState.CANCELLED.active
