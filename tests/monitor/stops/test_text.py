"""Each stop cause recognised in console text alone: real nnU-Net output kept as fixtures, and the exact
lines SLURM, the kernel and Python write."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.stops import StopCause, Strength, classify_text

FIXTURES = Path(__file__).parent / "fixtures"


def test_cuda_out_of_memory_from_a_real_nnunet_traceback() -> None:
    found = classify_text((FIXTURES / "cuda_oom.txt").read_text(), "job output")
    assert found is not None and found.cause is StopCause.CUDA_OOM
    assert found.strength is Strength.STRONG and found.source == "job output"
    assert found.evidence.splitlines()[-1].startswith("torch.cuda.OutOfMemoryError: CUDA out of memory")
    assert "train_step" in found.evidence  # where it happened, not only what
    assert "Tried to allocate 1.67 GiB" in found.summary


def test_dead_workers_show_the_real_exception_printed_above() -> None:
    found = classify_text((FIXTURES / "workers_died.txt").read_text(), "job output")
    assert found is not None and found.cause is StopCause.WORKERS_DIED
    first, last = found.evidence.splitlines()[0], found.evidence.splitlines()[-1]
    assert first == "Exception in background worker 10:"
    assert "region_labels" in found.evidence and "region_labels" in found.summary
    assert "no longer alive" in last
    assert found.evidence.index("region_labels") < found.evidence.index("no longer alive")


def test_dead_workers_without_an_exception_above_say_so() -> None:
    text = ("2024-01-01 10:00:00.000000: Epoch 12\nusing pin_memory on device 0\n"
            "RuntimeError: One or more background workers are no longer alive. Exiting. Please check the print "
            "statements above for the actual error message\n")
    found = classify_text(text, "job output")
    assert found is not None and found.cause is StopCause.WORKERS_DIED
    assert "no exception printed above" in found.summary


def test_dead_workers_killed_by_the_oom_killer_are_host_oom() -> None:
    text = ("slurmstepd: error: Detected 1 oom_kill event in StepId=123.batch. Some of the step tasks have been "
            "OOM Killed.\nTraceback (most recent call last):\n  File \"x.py\", line 1, in results_loop\n"
            "RuntimeError: One or more background workers are no longer alive. Exiting.\n")
    found = classify_text(text, "slurm-123.out")
    assert found is not None and found.cause is StopCause.HOST_OOM
    assert "oom_kill" in found.evidence


def test_a_corrupt_case_behind_dead_workers_is_corrupt_data() -> None:
    text = ("Exception in background worker 0:\n No data left in file\nTraceback (most recent call last):\n"
            "  File \"/env/nnunetv2/training/dataloading/nnunet_dataset.py\", line 86, in load_case\n"
            "    data = np.load(entry['data_file'][:-4] + \".npy\", 'r')\n"
            "EOFError: No data left in file\n"
            "Traceback (most recent call last):\n"
            "RuntimeError: One or more background workers are no longer alive. Exiting.\n")
    found = classify_text(text, "job output")
    assert found is not None and found.cause is StopCause.DATA_MISSING_OR_CORRUPT
    assert "No data left in file" in found.evidence and found.notes


@pytest.mark.parametrize(("line", "cause"), [
    ("slurmstepd: error: *** JOB 4242 ON node17 CANCELLED AT 2026-12-07T03:10:00 DUE TO TIME LIMIT ***",
     StopCause.TIME_LIMIT),
    ("slurmstepd: error: *** JOB 4242 ON node17 CANCELLED AT 2026-12-07T03:10:00 DUE TO PREEMPTION ***",
     StopCause.PREEMPTED_OR_NODE_FAILURE),
    ("slurmstepd: error: *** JOB 4242 ON node17 CANCELLED AT 2026-12-07T03:10:00 DUE TO NODE FAILURE ***",
     StopCause.PREEMPTED_OR_NODE_FAILURE),
    ("slurmstepd: error: *** JOB 4242 ON node17 CANCELLED AT 2026-12-07T03:10:00 ***", StopCause.CANCELLED),
])
def test_slurm_stepd_lines(line: str, cause: StopCause) -> None:
    found = classify_text(f"2026-12-07 03:09:58.000000: Epoch 40\n{line}\n", "slurm-4242.out")
    assert found is not None and found.cause is cause and found.evidence == line


@pytest.mark.parametrize(("last", "cause"), [
    ("OSError: [Errno 28] No space left on device", StopCause.DISK_FULL),
    ("RuntimeError: [enforce fail at inline_container.cc:595] . unexpected pos 64 vs 0: No space left on device",
     StopCause.DISK_FULL),
    ("_pickle.UnpicklingError: invalid load key, '\\x00'.", StopCause.DATA_MISSING_OR_CORRUPT),
    ("zipfile.BadZipFile: File is not a zip file", StopCause.DATA_MISSING_OR_CORRUPT),
    ("EOFError: Ran out of input", StopCause.DATA_MISSING_OR_CORRUPT),
    ("MemoryError", StopCause.HOST_OOM),
    ("numpy.core._exceptions._ArrayMemoryError: Unable to allocate 3.1 GiB for an array with shape (1, 900, 900, 900)",
     StopCause.HOST_OOM),
    ("KeyboardInterrupt", StopCause.CANCELLED),
    ("AssertionError: The fold folder does not exist", StopCause.EXCEPTION),
    ("ValueError: too many values to unpack (expected 2)", StopCause.EXCEPTION),
])
def test_the_last_exception_decides(last: str, cause: StopCause) -> None:
    text = ("2026-12-07 03:00:00.000000: Epoch 3\nTraceback (most recent call last):\n"
            "  File \"/env/nnunetv2/run/run_training.py\", line 204, in run_training\n"
            "    nnunet_trainer.run_training()\n" + last + "\n")
    found = classify_text(text, "job output")
    assert found is not None and found.cause is cause
    assert found.evidence.splitlines()[-1] == last
    assert "run_training" in found.evidence


def test_a_missing_preprocessed_file_is_missing_data() -> None:
    text = ("Traceback (most recent call last):\n"
            "  File \"/env/nnunetv2/training/dataloading/nnunet_dataset.py\", line 80, in load_case\n"
            "FileNotFoundError: [Errno 2] No such file or directory: "
            "'/data/nnUNet_preprocessed/Dataset001/nnUNetPlans_3d_fullres/case_17.npz'\n")
    found = classify_text(text, "job output")
    assert found is not None and found.cause is StopCause.DATA_MISSING_OR_CORRUPT


def test_other_files_missing_are_an_ordinary_exception() -> None:
    text = ("Traceback (most recent call last):\n  File \"/env/train.py\", line 3, in <module>\n"
            "FileNotFoundError: [Errno 2] No such file or directory: '/home/me/config.yaml'\n")
    found = classify_text(text, "job output")
    assert found is not None and found.cause is StopCause.EXCEPTION
    assert found.summary.endswith("No such file or directory: '/home/me/config.yaml'")


def test_the_oom_killer_and_a_bare_killed_line() -> None:
    for text in ("epoch 3\nKilled\n", "[12345.6] Out of memory: Killed process 4711 (python)\n"):
        found = classify_text(text, "console")
        assert found is not None and found.cause is StopCause.HOST_OOM


def test_plain_progress_shows_no_cause() -> None:
    text = "2026-12-07 03:00:00.000000: Epoch 3\n2026-12-07 03:00:01.000000: train_loss -0.52\n"
    assert classify_text(text, "training log") is None
    assert classify_text("", "training log") is None


def test_training_log_strength_is_kept() -> None:
    found = classify_text("Traceback (most recent call last):\nMemoryError\n", "training log", Strength.MEDIUM)
    assert found is not None and found.strength is Strength.MEDIUM


def test_every_cause_has_a_label_and_advice_citing_nnunet_issues() -> None:
    for cause in StopCause:
        assert cause.label and len(cause.advice) > 150
    for cause in (StopCause.CUDA_OOM, StopCause.WORKERS_DIED, StopCause.NAN_LOSS, StopCause.DATA_MISSING_OR_CORRUPT):
        assert "#" in cause.advice
    assert "#2814" in StopCause.CUDA_OOM.advice and "#1612" in StopCause.NAN_LOSS.advice
    assert all(f"#{n}" in StopCause.WORKERS_DIED.advice for n in (2725, 2749, 2641, 1887))


def test_real_corrupt_preprocessed_case_behind_dead_workers() -> None:
    """nnU-Net 2.x output after a preprocessed ``.b2nd`` case was overwritten mid-run (recorded here)."""
    found = classify_text((FIXTURES / "corrupt_b2nd.txt").read_text(), "job output")
    assert found is not None and found.cause is StopCause.DATA_MISSING_OR_CORRUPT
    lines = found.evidence.splitlines()
    assert lines[0] == "Exception in background worker 0:" and "case_008.b2nd" in lines[1]
    assert "no longer alive" in lines[-1] and len(lines) <= 10
    assert "case_008.b2nd" in found.summary
