"""One paragraph of advice per stop cause, written from nnU-Net's documentation and its maintainers' answers.

The numbers in parentheses are nnU-Net's GitHub issues (MIC-DKFZ/nnUNet) where the problem and its fixes are
discussed; they are cited so a reader can check the advice against the source.
"""

from __future__ import annotations

__all__ = ["ADVICE", "LABELS"]

LABELS: dict[str, str] = {
    "cuda_oom": "CUDA out of memory",
    "host_oom": "host out of memory (killed)",
    "workers_died": "data-augmentation workers died",
    "nan_loss": "NaN or inf loss",
    "time_limit": "scheduler time limit",
    "preempted_or_node_failure": "preempted or node failure",
    "cancelled": "cancelled",
    "disk_full": "disk full",
    "data_missing_or_corrupt": "missing or corrupt preprocessed data",
    "exception": "Python exception",
    "unknown": "cause unknown",
}

ADVICE: dict[str, str] = {
    "cuda_oom": (
        "The GPU ran out of memory. nnU-Net sizes its patch and batch for a card with roughly 10-11 GB free, "
        "so first make sure nothing else (another training, a notebook, a display server) holds memory on that "
        "GPU and pin the run to a free card with CUDA_VISIBLE_DEVICES (#359). If the card is simply smaller, "
        "plan with a smaller GPU memory target or lower the batch size in the plans and re-run preprocessing "
        "for that configuration (#122, #1701). A run that dies only after many epochs (#2814) usually met a "
        "neighbour process or memory fragmentation; resuming with `--c` from checkpoint_latest.pth loses "
        "at most the epochs since the last save."
    ),
    "host_oom": (
        "The process was killed from outside, almost always by the kernel's out-of-memory killer (exit code "
        "137, SIGKILL, or a scheduler's OUT_OF_MEMORY state): the machine's RAM, not the GPU's, ran out. The "
        "data-augmentation workers are the big consumers, so lower nnUNet_n_proc_DA, ask the scheduler for "
        "more memory, and avoid running several trainings on one small node; nnU-Net's common-problems page "
        "describes RAM that grows during 2D trainings and the remedies (#469, #2162). If nobody ran `kill -9`, "
        "resume with `--c`."
    ),
    "workers_died": (
        "nnU-Net's background data-augmentation processes crashed, and the message about workers no longer "
        "alive is only the consequence: the real error is printed above it, which is why the maintainers keep "
        "asking for the full output (#1887, #2725). The evidence shown here is that earlier exception. When "
        "there is none, a worker was most likely killed for lack of RAM; try fewer workers (nnUNet_n_proc_DA, "
        "0 runs augmentation in the main process and shows the error directly), nnUNet_compile=False where "
        "torch.compile is involved (#2749), and check the host's memory and the data (#2641)."
    ),
    "nan_loss": (
        "The training or validation loss became NaN or infinite, after which nothing is learned (Dice stays "
        "at 0). The maintainers point first at the data: corrupted or empty images, labels outside the "
        "declared classes, or intensities that break normalization; re-run preprocessing with "
        "--verify_dataset_integrity and look at the cases (#1612, #2636). If the data are sound, it can be "
        "numerical instability: retry the fold, lower the initial learning rate in a trainer subclass, or "
        "train in full precision."
    ),
    "time_limit": (
        "The scheduler stopped the job when its wall-clock limit (--time) ran out. nnU-Net saves "
        "checkpoint_latest.pth at regular intervals, so resubmit the same command with `--c` to continue "
        "rather than starting over, and ask for a longer limit or chain jobs with dependencies: a full "
        "1000-epoch 3D run usually needs one to three days."
    ),
    "preempted_or_node_failure": (
        "The job did not fail on its own: the scheduler preempted it for a higher-priority job, or the node it "
        "ran on went down. Nothing is wrong with the run; resubmit it with `--c` to continue from "
        "checkpoint_latest.pth, on another partition or QOS if preemption keeps happening."
    ),
    "cancelled": (
        "Someone stopped the job (scancel, nnwatch's cancel, Ctrl-C or a SIGTERM). If that was not intended, "
        "resubmit it with `--c` to continue from checkpoint_latest.pth."
    ),
    "disk_full": (
        "A write failed because the file system was full or the quota was reached. nnU-Net writes "
        "checkpoints, validation predictions and, when training starts, unpacked copies of the preprocessed "
        "data, so free space on the results and preprocessed folders (or move them), then resume with `--c`; "
        "a checkpoint written while the disk filled up may be truncated, in which case resume from an older "
        "one or start again."
    ),
    "data_missing_or_corrupt": (
        "Reading a preprocessed case failed: a file is missing, truncated or unreadable (EOFError, a bad "
        "zip or pickle, a decompression error). The maintainers' fix is to delete the dataset's folder in "
        "nnUNet_preprocessed and run nnUNetv2_plan_and_preprocess again (#1879, #2277). Files also get "
        "damaged when several folds unpack the same dataset at once or a disk fills up during unpacking "
        "(#2626, #1628): let one fold finish unpacking before starting the others."
    ),
    "exception": (
        "The training ended with a Python exception that is not one of the known kinds; its last line is "
        "shown as evidence, and the full traceback is in the job's output. Search nnU-Net's issue tracker for "
        "that exact line; when asking for help, include the complete output, the command and the versions "
        "of nnU-Net and PyTorch, since the maintainers cannot diagnose a partial message (#1887)."
    ),
    "unknown": (
        "Nothing in the job's output, the scheduler or the run folder says why the run stopped; the last log "
        "lines are shown. Look for the process's console output (the scheduler's output file, a terminal, "
        "`dmesg` for the OOM killer). Runs launched through nnwatch keep that output with the job, which "
        "makes the cause visible next time."
    ),
}
